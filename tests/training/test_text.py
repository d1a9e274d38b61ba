"""The in-graph text pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from tfode import text, tokens
from training import pipeline


def test_normalisation_and_round_trip(tiny_text):
    encoded = tiny_text.encode(["I like your STYLE.", "  The cat   sat on the mat. "])
    assert tiny_text.decode(encoded.ids).numpy().tolist() == [
        b"i like your style .", b"the cat sat on the mat ."
    ]
    tokens = text.tokenize(tf.constant(["Don't stop, Tom's dog!"])).to_list()[0]
    assert tokens == [b"don't", b"stop", b",", b"tom's", b"dog", b"!"]


def test_unknown_words_and_truncation_are_visible(tiny_text):
    encoded = tiny_text.encode(["the zebra sat .", "a b c d e f g h i j k"])
    assert encoded.ids.numpy()[0, 1] == tokens.UNK_ID
    assert encoded.truncated.numpy().tolist() == [False, True]
    assert encoded.lengths.numpy().tolist() == [4, tiny_text.max_length]
    assert encoded.ids.shape[1] == tiny_text.max_length


def test_vocabulary_save_and_restore(tmp_path, tiny_text):
    tiny_text.save(str(tmp_path))
    restored = text.TextProcessor.load(str(tmp_path))
    sentences = ["the pain was unbearable .", "she has a red car ."]
    np.testing.assert_array_equal(tiny_text.encode(sentences).ids, restored.encode(sentences).ids)
    assert restored.vocabulary() == tiny_text.vocabulary()
    with pytest.raises(FileNotFoundError):
        text.TextProcessor.load(str(tmp_path / "nowhere"))


def test_vocabulary_threshold_and_size():
    sentences = ["a a a b b c", "a b d"]
    assert text.build_vocabulary(sentences)[4:] == ["a", "b", "c", "d"]
    assert text.build_vocabulary(sentences, min_count=2)[4:] == ["a", "b"]
    assert text.build_vocabulary(sentences, max_size=5)[4:] == ["a"]


def test_targets_and_teacher_inputs():
    ids = tf.constant([[5, 6, 7], [8, 0, 0]])
    assert tokens.append_eos(ids).numpy().tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]
    assert tokens.prepend_bos(ids).numpy().tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]


def test_dataset_batches_are_padded_tokens_and_targets(tiny_text):
    sentences = ["the cat sat on the mat .", "i like your style .", "he has a red car ."]
    corpus = pipeline.encode_corpus(tiny_text, sentences)
    assert corpus.truncated == 0
    batches = list(pipeline.make_dataset(corpus.ids, batch_size=8, max_length=8))
    rows = sum(int(ids.shape[0]) for ids, _ in batches)
    assert rows == 3
    for ids, targets in batches:
        np.testing.assert_array_equal(targets.numpy(), tokens.append_eos(ids).numpy())
