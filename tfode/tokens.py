"""Reserved token ids and the helpers that work on padded id sequences.

Every stage of the data path (text, decoders, search, losses) speaks in these ids; this module
depends on nothing else in the package, so no stage imports another stage's helpers for them.

    ids 0–3: <pad> <bos> <eos> <unk>; a sentence [batch, L] is 0-padded on the right.
    id -1 (BLANK_ID): a word blanked out by the encoder's input noise in training; it is in no
    vocabulary and never leaves the encoder.
"""

from __future__ import annotations

import tensorflow as tf

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
RESERVED_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
BLANK_ID = -1


def append_eos(ids: tf.Tensor) -> tf.Tensor:
    """Targets of the autoencoder: `[batch, L]` 0-padded ids → `[batch, L + 1]` with `<eos>`
    right after each sentence's last token."""
    ids = tf.convert_to_tensor(ids)
    lengths = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1)
    padded = tf.pad(ids, [[0, 0], [0, 1]])
    eos = tf.one_hot(lengths, tf.shape(padded)[1], dtype=ids.dtype) * EOS_ID
    return padded + eos


def prepend_bos(ids: tf.Tensor) -> tf.Tensor:
    """Teacher-forcing inputs: `[batch, L]` → `[batch, L + 1]` starting with `<bos>`."""
    ids = tf.convert_to_tensor(ids)
    bos = tf.fill([tf.shape(ids)[0], 1], tf.constant(BOS_ID, ids.dtype))
    return tf.concat([bos, ids], axis=1)


def lengths_before_eos(ids: tf.Tensor, eos_id: int = EOS_ID) -> tf.Tensor:
    """`[batch]` int32: the position of the first `<eos>` in `ids` `[batch, steps]`, or `steps`."""
    is_eos = tf.equal(ids, eos_id)
    steps = tf.shape(ids)[1]
    first = tf.argmax(tf.cast(is_eos, tf.int32), axis=1, output_type=tf.int32)
    return tf.where(tf.reduce_any(is_eos, axis=1), first, steps)
