"""Shared fixtures: a tiny made-up corpus and its text pipeline, built in temporary folders."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TINY_CORPUS = [
    "the cat sat on the mat .",
    "a dog ran in the park .",
    "i like your style .",
    "she reads a long book .",
    "we walk to school every day .",
    "the pain was unbearable .",
    "they play football on sunday .",
    "he has a red car .",
]


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory):
    from tfode.text import TextProcessor

    directory = tmp_path_factory.mktemp("text")
    return TextProcessor.from_sentences(TINY_CORPUS, str(directory), max_length=8)


@pytest.fixture(scope="session")
def tiny_tokens(tiny_text):
    return tiny_text.encode(TINY_CORPUS).ids.numpy()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
