"""Noise on the encoder's input words in training: a denoising autoencoder's corruption.

Shen et al. 2020 ("Educating Text Autoencoders") show that an encoder which must map corrupted
sentences near their clean ones lays similar sentences close together, so that the points between
two codes decode to sentences; deleting words (p ≈ 0.3) does most of it. Lample et al. 2018 add
local shuffling. Inference never corrupts anything.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.checks import check_rate, derive_seed
from tfode.tokens import BLANK_ID, PAD_ID, UNK_ID

BLANK_TOKENS = ("mask", "unk")


@keras.saving.register_keras_serializable(package="tfode")
class TokenNoise(keras.layers.Layer):
    """Corrupts a batch of 0-padded ids `[batch, L]` in training; returns it unchanged otherwise.

    Args:
      delete: probability of deleting each word (the words after it move up; padding fills
        the end). A sentence keeps at least its first word.
      blank: probability of blanking out each remaining word.
      blank_token: what a blanked word becomes. "mask": `BLANK_ID` (-1), which the encoder reads
        as a learned vector of its own (BERT's [MASK]), so that a real `<unk>` still tells the
        encoder that a rare word was there; "unk": `<unk>`, which a real unknown word shares.
      shuffle_distance: each word moves at most this many places (Lample et al.'s local
        shuffle: positions plus uniform noise in [0, k + 1), sorted); 0 keeps the order.
      fades: when True, the layer holds a non-trainable scalar `strength` (initially 1) that
        scales the deletion and blanking probabilities, so that a schedule
        (`training.callbacks.NoiseFade`) can turn the corruption down as training ends; the
        shuffle is not scaled.
      seed: seed of the draws; None draws one from Keras' global seed.

    Call arguments:
      tokens: `[batch, L]` int ids, 0 for padding.

    Returns:
      `[batch, L]` ids of the same dtype, 0-padded.
    """

    def __init__(self, delete: float = 0.0, blank: float = 0.0, shuffle_distance: int = 0,
                 fades: bool = False, seed: int | None = None, blank_token: str = "unk", **kwargs):
        super().__init__(**kwargs)
        self.delete = check_rate("delete", delete)
        self.blank = check_rate("blank", blank)
        if blank_token not in BLANK_TOKENS:
            raise ValueError(f"blank_token must be one of {BLANK_TOKENS}, got {blank_token!r}.")
        self.blank_token = blank_token
        if int(shuffle_distance) < 0:
            raise ValueError(f"shuffle_distance must be >= 0, got {shuffle_distance}.")
        self.shuffle_distance = int(shuffle_distance)
        self.fades = bool(fades)
        if self.fades and not (self.delete or self.blank):
            raise ValueError("fades scales delete and blank: give one of them.")
        self.seed = seed
        # Created only when used, so models saved without a fade keep their variables.
        self.strength = (self.add_weight(shape=(), initializer="ones", trainable=False, name="strength")
                         if self.fades else None)
        self.seed_generator = keras.random.SeedGenerator(derive_seed(seed, "token_noise"), name="noise_seed")

    @property
    def masks(self) -> bool:
        """Whether blanked words come out as `BLANK_ID` (for which the encoder holds a vector)."""
        return bool(self.blank) and self.blank_token == "mask"

    @property
    def active(self) -> bool:
        return bool(self.delete or self.blank or self.shuffle_distance)

    def call(self, tokens, training=None):
        if not (training and self.active):
            return tokens
        is_word = tf.not_equal(tokens, PAD_ID)
        width = tf.shape(tokens)[1]
        scale = tf.cast(self.strength, tf.float32) if self.fades else 1.0
        if self.delete:
            draw = keras.random.uniform(tf.shape(tokens), seed=self.seed_generator)
            first = tf.equal(tf.range(width)[None], 0)
            keep = is_word & ((draw >= self.delete * scale) | first)
            kept = tf.ragged.boolean_mask(tokens, keep)
            tokens = kept.to_tensor(default_value=PAD_ID, shape=tf.shape(tokens))
            is_word = tf.not_equal(tokens, PAD_ID)
        if self.blank:
            draw = keras.random.uniform(tf.shape(tokens), seed=self.seed_generator)
            blank_id = BLANK_ID if self.blank_token == "mask" else UNK_ID
            tokens = tf.where(is_word & (draw < self.blank * scale), tf.constant(blank_id, tokens.dtype), tokens)
        if self.shuffle_distance:
            draw = keras.random.uniform(tf.shape(tokens), seed=self.seed_generator)
            positions = tf.cast(tf.range(width)[None], tf.float32)
            keys = positions + draw * (self.shuffle_distance + 1)
            keys = tf.where(is_word, keys, 1e9 + positions)  # padding stays at the end, in order
            tokens = tf.gather(tokens, tf.argsort(keys, axis=1, stable=True), batch_dims=1)
        return tokens

    def get_config(self):
        return {**super().get_config(), "delete": self.delete, "blank": self.blank,
                "shuffle_distance": self.shuffle_distance, "fades": self.fades, "seed": self.seed,
                "blank_token": self.blank_token}
