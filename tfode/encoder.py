"""The GRU encoder: token ids → h(0)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.checks import check_non_negative, check_rate, derive_seed
from tfode.noise import TokenNoise
from tfode.tokens import BLANK_ID, UNK_ID


@keras.saving.register_keras_serializable(package="tfode")
class GRUEncoder(keras.layers.Layer):
    """Embedding + GRU (optionally bidirectional) over a padded batch, giving h(0).

    Padding (id 0) is masked out: appending padding to a batch changes no output.

    With `variational=True` a head maps the GRU summary to a mean and a log-variance; in
    training h(0) is a reparameterised sample and the KL divergence to N(0, I), times the
    non-trainable `kl_weight` (set it from a callback for annealing), is added with `add_loss`.
    At inference h(0) is the mean.

    Args:
      vocab_size: number of token ids.
      units: size of h(0).
      embedding_dim: size of the token embeddings.
      bidirectional: read the sentence both ways and merge the two final states linearly.
      variational: add the variational head.
      kl_weight: initial value of the KL weight.
      dropout: in training, the rate at which the token embeddings' entries are zeroed.
      seed: seed of the encoder's random streams (dropout, the variational sample); None draws
        one from Keras' global seed (`keras.utils.set_random_seed`).
      input_noise: a `TokenNoise` layer that corrupts the input words in training (a denoising
        autoencoder, Shen et al. 2020), or None. When it blanks words out as `BLANK_ID`, the
        encoder holds a trainable `blank_embedding` `[embedding_dim]` that stands for them.
      free_bits: with the variational head, nats of KL divergence per latent dimension that cost
        nothing (Kingma et al. 2016): each dimension's batch-mean KL counts as at least this much,
        so the decoder cannot make the latent useless by driving it to the prior.
      mmd_weight: weight of the maximum mean discrepancy between the batch's h(0) and samples of
        N(0, I) (Wasserstein autoencoder, Tolstikhin et al. 2018; inverse multiquadratic kernel),
        added to the loss in training: the codes fill the prior's ball instead of leaving holes.

    Call arguments:
      tokens: `[batch, length]` int, 0 for padding.

    Returns:
      `(h0, mean, log_variance)`, each `[batch, units]`; without the variational head
      `mean` is `h0` and `log_variance` zeros.
    """

    def __init__(
        self,
        vocab_size: int,
        units: int = 256,
        embedding_dim: int = 128,
        bidirectional: bool = False,
        variational: bool = False,
        kl_weight: float = 1.0,
        dropout: float = 0.0,
        seed: int | None = None,
        input_noise=None,
        free_bits: float = 0.0,
        mmd_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(input_noise, dict):
            input_noise = keras.saving.deserialize_keras_object(input_noise)
        if input_noise is not None and not isinstance(input_noise, TokenNoise):
            raise TypeError(f"input_noise must be a TokenNoise layer, got {type(input_noise).__name__}.")
        if free_bits and not variational:
            raise ValueError("free_bits applies to the variational head (variational=True).")
        if int(vocab_size) < 5:
            raise ValueError(f"vocab_size must be at least 5 (4 reserved ids and a word), got {vocab_size}.")
        if int(units) < 1 or int(embedding_dim) < 1:
            raise ValueError(f"units and embedding_dim must be >= 1, got {units} and {embedding_dim}.")
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
        self.vocab_size = int(vocab_size)
        self.units = int(units)
        self.embedding_dim = int(embedding_dim)
        self.bidirectional = bool(bidirectional)
        self.variational = bool(variational)
        self.initial_kl_weight = float(kl_weight)
        self.dropout = check_rate("dropout", dropout)
        self.seed = seed
        self.input_noise = input_noise
        self.free_bits = check_non_negative("free_bits", free_bits)
        self.mmd_weight = check_non_negative("mmd_weight", mmd_weight)
        # Created only when used, so models saved without the penalty keep their variables.
        self.prior_seed = (keras.random.SeedGenerator(derive_seed(seed, "encoder/prior"), name="prior_seed")
                           if self.mmd_weight else None)
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, mask_zero=True, name="embedding"
        )
        # Created only when used, so models saved without it keep their variables.
        self.blank_embedding = (
            self.add_weight(shape=(self.embedding_dim,), initializer=keras.initializers.RandomNormal(stddev=0.05),
                            name="blank_embedding")
            if input_noise is not None and input_noise.masks else None
        )
        # Created only when used, so models saved without dropout keep their variables.
        self.embedding_dropout = (
            keras.layers.Dropout(dropout, seed=derive_seed(seed, "encoder/embedding_dropout"), name="embedding_dropout")
            if dropout else None
        )
        gru = keras.layers.GRU(units, seed=derive_seed(seed, "encoder/gru"), name="gru")
        if bidirectional:  # the backward copy gets a stream of its own
            backward = keras.layers.GRU(units, go_backwards=True, seed=derive_seed(seed, "encoder/gru_backward"),
                                        name="backward_gru")
            self.rnn = keras.layers.Bidirectional(gru, backward_layer=backward, merge_mode="concat", name="bigru")
            self.merge = keras.layers.Dense(units, name="merge")
        else:
            self.rnn = gru
            self.merge = None
        if variational:
            self.mean_head = keras.layers.Dense(units, name="mean")
            self.log_variance_head = keras.layers.Dense(
                units, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-4.0),
                name="log_variance",
            )
        self.kl_weight = self.add_weight(
            name="kl_weight",
            shape=(),
            initializer=keras.initializers.Constant(kl_weight),
            trainable=False,
        )
        # Created only when used, so models saved without the head keep their variables.
        self.seed_generator = (
            keras.random.SeedGenerator(derive_seed(seed, "encoder/latent"), name="latent_seed") if variational else None
        )

    def build(self, tokens_shape):
        self.embedding.build(tokens_shape)
        self.rnn.build((*tokens_shape, self.embedding_dim))
        summary_size = 2 * self.units if self.bidirectional else self.units
        if self.merge is not None:
            self.merge.build((None, summary_size))
        if self.variational:
            self.mean_head.build((None, self.units))
            self.log_variance_head.build((None, self.units))

    def summarise(self, tokens, training=None):
        """The GRU summary of `tokens`, `[batch, units]` (deterministic unless training with
        dropout or input noise)."""
        if self.input_noise is not None:
            tokens = self.input_noise(tokens, training=training)
        if self.blank_embedding is None:
            embedded = self.embedding(tokens)
        else:
            blanked = tf.equal(tokens, BLANK_ID)
            embedded = self.embedding(tf.where(blanked, tf.constant(UNK_ID, tokens.dtype), tokens))
            blank = tf.cast(self.blank_embedding, embedded.dtype)
            embedded = tf.where(blanked[..., None], blank, embedded)
        if self.embedding_dropout is not None:
            embedded = self.embedding_dropout(embedded, training=training)
        mask = tf.not_equal(tokens, 0)
        summary = self.rnn(embedded, mask=mask)
        if self.merge is not None:
            summary = self.merge(summary)
        return summary

    def call(self, tokens, training=None):
        summary = self.summarise(tokens, training)
        if not self.variational:
            h0, mean, log_variance = summary, summary, tf.zeros_like(summary)
        else:
            mean = self.mean_head(summary)
            log_variance = self.log_variance_head(summary)
            h0 = mean
            if training:
                noise = keras.random.normal(tf.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
                h0 = mean + tf.exp(0.5 * log_variance) * noise
                self.add_loss(tf.cast(self.kl_weight, mean.dtype) * self.kl_divergence(mean, log_variance))
        if training and self.mmd_weight:
            self.add_loss(self.mmd_weight * self.prior_discrepancy(h0))
        return h0, mean, log_variance

    def kl_divergence(self, mean, log_variance):
        """KL(q(h0 | x) || N(0, I)), the sum over dimensions of each dimension's batch mean,
        each counted as at least `free_bits`."""
        per_dimension = -0.5 * tf.reduce_mean(
            1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=0)
        if self.free_bits:
            per_dimension = tf.maximum(per_dimension, self.free_bits)
        return tf.reduce_sum(per_dimension)

    def prior_discrepancy(self, codes):
        """Unbiased MMD² between `codes` `[batch, units]` and as many samples of N(0, I), with
        the inverse multiquadratic kernel C / (C + ||x − y||²), C = 2·units."""
        codes = tf.cast(codes, tf.float32)
        prior = keras.random.normal(tf.shape(codes), seed=self.prior_seed)
        scale = 2.0 * self.units
        n = tf.cast(tf.shape(codes)[0], tf.float32)

        def kernel(x, y):
            squared = (tf.reduce_sum(tf.square(x), 1)[:, None] + tf.reduce_sum(tf.square(y), 1)[None]
                       - 2.0 * tf.matmul(x, y, transpose_b=True))
            return scale / (scale + tf.maximum(squared, 0.0))

        off_diagonal = 1.0 - tf.eye(tf.shape(codes)[0])
        within = tf.reduce_sum((kernel(codes, codes) + kernel(prior, prior)) * off_diagonal)
        within = within / tf.maximum(n * (n - 1.0), 1.0)
        across = 2.0 * tf.reduce_mean(kernel(codes, prior))
        return within - across

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "bidirectional": self.bidirectional,
            "variational": self.variational,
            "kl_weight": self.initial_kl_weight,
            "dropout": self.dropout,
            "seed": self.seed,
            "input_noise": keras.saving.serialize_keras_object(self.input_noise),
            "free_bits": self.free_bits,
            "mmd_weight": self.mmd_weight,
        }
