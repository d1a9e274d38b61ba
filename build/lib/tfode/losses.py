"""Losses over padded token sequences (id 0 is padding and never counts)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="tfode")
class MaskedCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy on logits, padding (id 0) ignored, with optional label smoothing.

    With `label_smoothing` ε the target is `1 − ε` on the right token plus `ε / vocab` spread
    over the whole vocabulary (Szegedy et al. 2016): per token, `(1 − ε)·(−log p_y) +
    ε·mean_v(−log p_v)`. With ε = 0 it is Keras' `SparseCategoricalCrossentropy(from_logits=True,
    ignore_class=0)`, value and reduction alike: the loss is the mean over non-padding tokens.

    `call(y_true [batch, L] ids, y_pred [batch, L, vocab] logits)` → `[batch, L]` losses.
    """

    def __init__(self, label_smoothing: float = 0.0, name="masked_cross_entropy", **kwargs):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.int32)
        logits = tf.cast(y_pred, tf.float32)
        is_token = tf.not_equal(y_true, PAD_ID)
        # Padding's label, PAD_ID = 0, is a valid class: its loss is computed, then masked.
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
        if self.label_smoothing:
            # mean_v(−log p_v) = logsumexp(logits) − mean(logits)
            uniform = tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_mean(logits, axis=-1)
            losses = (1.0 - self.label_smoothing) * losses + self.label_smoothing * uniform
        # Keras' own masked losses weight real tokens by positions / tokens, so that the
        # "sum_over_batch_size" reduction averages over the tokens alone: the same here.
        positions = tf.cast(tf.size(y_true), tf.float32)
        tokens = tf.reduce_sum(tf.cast(is_token, tf.float32))
        return tf.where(is_token, losses * tf.math.divide_no_nan(positions, tokens), 0.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
