"""Readouts from decoder states to token logits: a `Dense(vocab)` or the tied `TiedReadout`."""

from __future__ import annotations

import keras
import tensorflow as tf

# Rows up to which a step's logits are computed as (E·hᵀ)ᵀ (see `TiedReadout.call`).
SMALL_STEP_ROWS = 128


@keras.saving.register_keras_serializable(package="tfode")
class TiedReadout(keras.layers.Layer):
    """Token logits scored against an embedding matrix (Press & Wolf 2017, "Using the Output
    Embedding to Improve Language Models").

    logits = (W h + c) · Eᵀ + b, with E the `[vocab, embedding_dim]` matrix of `embedding`.
    Sharing E with the encoder makes the autoencoder's copy task one map: a rare word's
    readout row is the vector its embedding is trained to be, and the readout costs
    `embedding_dim / units` of an untied `Dense(vocab)`.

    The logits are float32 whatever the compute dtype (the loss and the search read them).

    Args:
      embedding: the `keras.layers.Embedding` whose matrix scores the tokens. It is shared,
        not copied: the layer that owns it saves it.

    Call arguments:
      states: `[..., units]`.

    Returns:
      `[..., vocab]` float32 logits.
    """

    def __init__(self, embedding: keras.layers.Embedding, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.embedding = embedding
        self.projection = keras.layers.Dense(embedding.output_dim, dtype="float32", name="projection")

    def build(self, states_shape):
        if not self.embedding.built:
            self.embedding.build((None,))
        self.projection.build(states_shape)
        self.bias = self.add_weight(
            name="bias", shape=(self.embedding.input_dim,), initializer="zeros"
        )

    def call(self, states):
        projected = self.projection(tf.cast(states, tf.float32))
        matrix = tf.cast(self.embedding.embeddings, tf.float32)
        # One 2-D matmul: `einsum("...d,vd->...v")` broadcasts the matrix over the batch axes.
        flat = tf.reshape(projected, [-1, tf.shape(projected)[-1]])
        if len(states.shape) == 2:
            # A decoding step's few rows: E·hᵀ (the large matrix untransposed) then a transpose of
            # the small result is up to 1.5× faster on CPU at 16–64 rows, even at 128, slower past it.
            logits = tf.cond(
                tf.shape(flat)[0] <= SMALL_STEP_ROWS,
                lambda: tf.transpose(tf.matmul(matrix, flat, transpose_b=True)),
                lambda: tf.matmul(flat, matrix, transpose_b=True),
            )
        else:
            logits = tf.matmul(flat, matrix, transpose_b=True)
        logits = logits + self.bias
        return tf.reshape(logits, tf.concat([tf.shape(projected)[:-1], [-1]], axis=0))
