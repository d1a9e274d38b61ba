"""`LanguageModel`: a small GRU language model over an autoencoder's own vocabulary, which the
model's path search asks whether a candidate sentence reads like real text.

It scores a sentence by its mean log-probability per token (`<eos>` included) and carries
`threshold`, the score a real sentence reaches (set by `calibrate` from held-out real sentences:
their `quantile`-th score), so that "fluent" means "at least as likely as most real sentences".
It travels with the exported SavedModel, so the library and the served `path` answer the same.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.tokens import PAD_ID, append_eos, prepend_bos


@keras.saving.register_keras_serializable(package="tfode")
class LanguageModel(keras.Model):
    """`call(ids)` takes `[batch, L]` 0-padded ids and returns next-token logits
    `[batch, L + 1, vocab]` for the sentence followed by `<eos>` (targets: `append_eos(ids)`;
    train it with `compile(optimizer, loss=tfode.MaskedCrossEntropy())`).

    Args:
      vocab_size: number of token ids (the autoencoder's vocabulary).
      units: the GRU's width.
      embedding_dim: width of the token embedding.
    """

    def __init__(self, vocab_size: int, units: int = 256, embedding_dim: int = 128, **kwargs):
        super().__init__(**kwargs)
        if int(vocab_size) < 5:
            raise ValueError(f"vocab_size must be at least 5 (4 reserved ids and a word), got {vocab_size}.")
        if int(units) < 1 or int(embedding_dim) < 1:
            raise ValueError(f"units and embedding_dim must be >= 1, got {units} and {embedding_dim}.")
        self.vocab_size, self.units, self.embedding_dim = int(vocab_size), int(units), int(embedding_dim)
        self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim, mask_zero=True, name="embedding")
        self.gru = keras.layers.GRU(self.units, return_sequences=True, name="gru")
        self.readout = keras.layers.Dense(self.vocab_size, name="readout")
        self.threshold = self.add_weight(shape=(), initializer="zeros", trainable=False, name="threshold")

    def build(self, ids_shape):
        inputs_shape = (ids_shape[0], None)
        self.embedding.build(inputs_shape)
        self.gru.build((ids_shape[0], None, self.embedding_dim))
        self.readout.build((ids_shape[0], None, self.units))
        self.built = True

    def call(self, ids, training=None):
        inputs = prepend_bos(tf.cast(ids, tf.int32))
        # A new tensor without the embedding's padding mask: MaskedCrossEntropy masks padding itself,
        # and Keras would otherwise weight the loss by the mask a second time.
        return tf.identity(self.readout(self.gru(self.embedding(inputs), training=training)))

    def log_likelihood(self, ids) -> tf.Tensor:
        """`[batch, L]` 0-padded ids → `[batch]` mean log-probability per token, `<eos>` included."""
        ids = tf.cast(ids, tf.int32)
        targets = append_eos(ids)
        log_probs = tf.nn.log_softmax(self(ids, training=False))
        picked = tf.gather(log_probs, tf.maximum(targets, 0), batch_dims=2)
        mask = tf.cast(targets != PAD_ID, picked.dtype)
        return tf.reduce_sum(picked * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def fluent(self, ids) -> tf.Tensor:
        """`[batch]` bool: scored at or above `threshold`."""
        return self.log_likelihood(ids) >= self.threshold

    def calibrate(self, ids, quantile: float = 0.05) -> float:
        """Sets `threshold` to the `quantile`-th score of real sentences `ids` `[n, L]`, so that a
        share 1 − `quantile` of such sentences is fluent; returns it."""
        if not 0.0 <= float(quantile) < 1.0:
            raise ValueError(f"quantile must be in [0, 1), got {quantile}.")
        scores = tf.sort(self.log_likelihood(ids))
        index = tf.cast(tf.floor(quantile * tf.cast(tf.size(scores) - 1, tf.float32)), tf.int32)
        self.threshold.assign(scores[index])
        return float(self.threshold.numpy())

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "units": self.units,
                "embedding_dim": self.embedding_dim}
