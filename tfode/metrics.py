"""Teacher-forced metrics over padded token sequences (id 0 is padding and never counts)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.tokens import PAD_ID


def _correct_and_mask(y_true, y_pred):
    y_true = tf.cast(y_true, tf.int32)
    mask = tf.not_equal(y_true, PAD_ID)
    correct = tf.equal(tf.argmax(y_pred, axis=-1, output_type=tf.int32), y_true)
    return correct, mask


def _token_weights(sample_weight, mask, dtype):
    """`[batch, L]` weights of the target tokens: `sample_weight` (None, `[batch]` per sentence
    or `[batch, L]` per token) times the padding mask."""
    weights = tf.cast(mask, dtype)
    if sample_weight is None:
        return weights
    sample_weight = tf.cast(sample_weight, dtype)
    if sample_weight.shape.rank == 1:
        sample_weight = sample_weight[:, None]
    return weights * sample_weight


@keras.saving.register_keras_serializable(package="tfode")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose most likely prediction is right."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """`sample_weight`: None, `[batch]` (per sentence) or `[batch, L]` (per token)."""
        correct, mask = _correct_and_mask(y_true, y_pred)
        weights = _token_weights(sample_weight, mask, self.dtype)
        self.correct.assign_add(tf.reduce_sum(tf.cast(correct, self.dtype) * weights))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)


@keras.saving.register_keras_serializable(package="tfode")
class ExactMatch(keras.metrics.Metric):
    """Share of sentences whose every non-padding token is predicted right."""

    def __init__(self, name="exact_match", **kwargs):
        super().__init__(name=name, **kwargs)
        self.matches = self.add_variable(shape=(), initializer="zeros", name="matches")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """`sample_weight`: None or `[batch]`, one weight a sentence."""
        correct, mask = _correct_and_mask(y_true, y_pred)
        sentence_ok = tf.cast(tf.reduce_all(correct | ~mask, axis=-1), self.dtype)
        weights = tf.ones_like(sentence_ok) if sample_weight is None else tf.cast(sample_weight, self.dtype)
        if weights.shape.rank != 1:
            raise ValueError(f"ExactMatch takes one weight a sentence ([batch]), got rank {weights.shape.rank}.")
        self.matches.assign_add(tf.reduce_sum(sentence_ok * weights))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.matches, self.total)
