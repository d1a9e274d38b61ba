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


@keras.saving.register_keras_serializable(package="tfode")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose most likely prediction is right."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        correct, mask = _correct_and_mask(y_true, y_pred)
        self.correct.assign_add(tf.reduce_sum(tf.cast(correct & mask, self.dtype)))
        self.total.assign_add(tf.reduce_sum(tf.cast(mask, self.dtype)))

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
        correct, mask = _correct_and_mask(y_true, y_pred)
        sentence_ok = tf.reduce_all(correct | ~mask, axis=-1)
        self.matches.assign_add(tf.reduce_sum(tf.cast(sentence_ok, self.dtype)))
        self.total.assign_add(tf.cast(tf.shape(sentence_ok)[0], self.dtype))

    def result(self):
        return tf.math.divide_no_nan(self.matches, self.total)
