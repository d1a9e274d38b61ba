"""From sentences to `tf.data`: dedupe, length filter, deterministic split, bucketing, padding."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import tensorflow as tf

from tfode.text import TextProcessor
from tfode.tokens import append_eos

SPLITS = ("train", "validation", "test")


class Splits(NamedTuple):
    train: list[str]
    validation: list[str]
    test: list[str]


def split_of(sentence: str, validation_percent: int = 5, test_percent: int = 5) -> str:
    """The split a sentence belongs to, from a hash of its text: the same on every machine."""
    bucket = int(hashlib.sha1(sentence.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + validation_percent:
        return "validation"
    return "train"


def prepare(sentences, min_words: int = 5, max_words: int = 14, validation_percent=5, test_percent=5) -> Splits:
    """Deduplicates (case and spacing folded), keeps `min_words`–`max_words` words, splits."""
    seen, parts = set(), {name: [] for name in SPLITS}
    for sentence in sentences:
        key = " ".join(sentence.casefold().split())
        if key in seen or not min_words <= len(key.split()) <= max_words:
            continue
        seen.add(key)
        parts[split_of(key, validation_percent, test_percent)].append(sentence)
    return Splits(**parts)


class EncodedCorpus(NamedTuple):
    ids: tf.RaggedTensor  # [sentences, (tokens)] int32
    truncated: int  # sentences cut to the processor's max_length


def encode_corpus(text: TextProcessor, sentences: list[str], batch_size: int = 8192) -> EncodedCorpus:
    rows, truncated = [], 0
    for start in range(0, len(sentences), batch_size):
        encoded = text.encode(sentences[start : start + batch_size])
        rows.append(tf.RaggedTensor.from_tensor(encoded.ids, lengths=encoded.lengths))
        truncated += int(tf.reduce_sum(tf.cast(encoded.truncated, tf.int32)))
    return EncodedCorpus(tf.concat(rows, axis=0), truncated)


def make_dataset(
    ids: tf.RaggedTensor,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    bucket_width: int = 4,
    max_length: int = 20,
) -> tf.data.Dataset:
    """`(tokens [batch, L], targets [batch, L + 1])` batches, 0-padded, bucketed by length."""
    rows = tf.data.Dataset.from_tensor_slices(ids).map(lambda row: row)  # ragged row → dense
    return batches(rows, batch_size, shuffle, seed, int(ids.nrows()), bucket_width, max_length)


def batches(
    rows: tf.data.Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 16384,
    bucket_width: int = 4,
    max_length: int = 20,
) -> tf.data.Dataset:
    """Token id rows `[(tokens)]` → `(tokens [batch, L], targets [batch, L + 1])` batches,
    shuffled within `shuffle_buffer` rows, bucketed by length, 0-padded."""
    if shuffle:
        rows = rows.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))
    rows = rows.bucket_by_sequence_length(
        lambda row: tf.shape(row)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,
    )
    rows = rows.map(lambda tokens: (tokens, append_eos(tokens)), num_parallel_calls=tf.data.AUTOTUNE)
    return rows.prefetch(tf.data.AUTOTUNE)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Marks `dataset` to be shared among workers by its elements (every worker reads the same
    batches and keeps every n-th), as `AutoShardPolicy.DATA` does; the default policy would try
    files first, and these datasets are built from memory."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
