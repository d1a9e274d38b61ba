"""A small trained model, exported once per session, and a server subprocess over it."""

import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import MODEL_NAME, ServerProcess  # noqa: E402


@pytest.fixture(scope="session")
def trained(tiny_text, tiny_tokens):
    import tfode
    from tfode.text import append_eos

    keras.utils.set_random_seed(0)
    model = tfode.Seq2SeqODE(tiny_text.vocabulary_size, decoder="odernn", units=32, embedding_dim=16,
                             max_length=tiny_text.max_length, solver={"name": "rk4", "steps_per_unit": 1})
    model.compile(keras.optimizers.Adam(1e-2, clipnorm=1.0))
    model.fit(tiny_tokens, append_eos(tiny_tokens), epochs=60, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="session")
def export_base(tmp_path_factory, trained, tiny_text):
    from tfode.export import export_saved_model

    base = tmp_path_factory.mktemp("exports")
    export_saved_model(trained, tiny_text, str(base), MODEL_NAME, version=1)
    return base


@pytest.fixture(scope="module")
def server(export_base):
    process = ServerProcess(export_base, "--max_batch_size", "16")
    yield process
    process.stop()


@pytest.fixture
def sentences():
    return np.array(["the cat sat on the mat .", "I like your style.", "he has a red car ."], dtype=object)
