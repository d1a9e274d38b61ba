"""Corpora larger than memory: streamed from disk through `tf.data`.

A file larger than `STREAM_BYTES` (uncompressed) is never read into a list. Its lines flow
through one `tf.data` pipeline: the first column of a pair file, whitespace folded, the word-count
filter, and the split — a hash of the case-folded sentence into 100 buckets
(`tf.strings.to_hash_bucket_fast`, 5 % test, 5 % validation), computed in the graph, so a
sentence lands in the same split on every pass and every machine. The vocabulary comes from one
pass over the training split that keeps only token counts (`tf.unique_with_counts` per batch of
lines). Unlike the in-memory loaders, a streamed corpus is used as given: duplicate lines are not
removed (deduplicate a large file beforehand, e.g. `sort -u`).

A plain-text or pair file is read by `tf.data.TextLineDataset`; a zip member is read line by line
from the archive.
"""

from __future__ import annotations

import collections
import os
import zipfile
from typing import NamedTuple

import tensorflow as tf

from tfode.text import tokenize

STREAM_BYTES = 64 << 20
SPLIT_BUCKETS = {"test": (0, 5), "validation": (5, 10), "train": (10, 100)}
_FORMAT_LINES = 1000


def source_bytes(path: str) -> int:
    """The uncompressed size of a corpus file (a zip's one `.txt` member), 0 for "synthetic"."""
    if path in ("synthetic", "tatoeba") or not os.path.isfile(path):
        return 0
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist() if info.filename.endswith(".txt"))
    return os.path.getsize(path)


def is_large(path: str) -> bool:
    return source_bytes(path) > STREAM_BYTES


def _member(path: str) -> str | None:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist()
                 if name.endswith(".txt") and not os.path.basename(name).startswith("_")]
    if len(names) != 1:
        raise ValueError(f"{path}: expected one sentence file in the zip, found {names}.")
    return names[0]


def _raw_lines(path: str) -> tf.data.Dataset:
    member = _member(path)
    if member is None:
        return tf.data.TextLineDataset(path)

    def lines():
        with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
            for line in handle:
                yield line.rstrip(b"\r\n")

    return tf.data.Dataset.from_generator(lines, output_signature=tf.TensorSpec([], tf.string))


def _is_pair_file(path: str) -> bool:
    """Pair format (`English<TAB>French[<TAB>attribution]`) when any of the first lines has a tab."""
    return any(b"\t" in line for line in _raw_lines(path).take(_FORMAT_LINES).as_numpy_iterator())


def _labelled(path: str, min_words: int, max_words: int, batch_size: int = 8192) -> tf.data.Dataset:
    """Batches `(sentences [n], buckets [n])` of the sentences of `min_words`–`max_words` words;
    a sentence's `bucket` (0–99) decides its split (`SPLIT_BUCKETS`). Lines are processed a
    batch at a time (vectorised string ops), in file order."""
    pairs = _is_pair_file(path)

    def label(lines):
        if pairs:
            lines = tf.strings.split(lines, "\t", maxsplit=2)[:, :1].flat_values
        words = tf.strings.split(lines)
        sentences = tf.strings.reduce_join(words, axis=1, separator=" ")
        counts = tf.cast(words.row_lengths(), tf.int32)
        keep = (counts >= min_words) & (counts <= max_words)
        sentences = tf.boolean_mask(sentences, keep)
        return sentences, tf.strings.to_hash_bucket_fast(tf.strings.lower(sentences, encoding="utf-8"), 100)

    return _raw_lines(path).batch(batch_size).map(label, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def sentences(path: str, split: str, min_words: int = 5, max_words: int = 14) -> tf.data.Dataset:
    """The sentences of `split` in file order, `[]` string each."""
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"split must be one of {sorted(SPLIT_BUCKETS)}, got {split!r}")
    low, high = SPLIT_BUCKETS[split]
    return (_labelled(path, min_words, max_words)
            .map(lambda batch, buckets: tf.boolean_mask(batch, (buckets >= low) & (buckets < high)))
            .unbatch())


class Scan(NamedTuple):
    counts: collections.Counter  # tokens of the training split
    sizes: dict  # sentences per split


def scan(path: str, min_words: int = 5, max_words: int = 14, batch_size: int = 8192) -> Scan:
    """One pass: the training split's token counts and every split's size; holds only counts."""
    counts, sizes = collections.Counter(), dict.fromkeys(SPLIT_BUCKETS, 0)
    low, high = SPLIT_BUCKETS["train"]

    def count(batch, buckets):
        training = (buckets >= low) & (buckets < high)
        unique, _, seen = tf.unique_with_counts(tokenize(tf.boolean_mask(batch, training)).flat_values)
        return unique, seen, buckets

    batches = _labelled(path, min_words, max_words, batch_size)
    for unique, seen, buckets in batches.map(count, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2).as_numpy_iterator():
        counts.update(dict(zip((token.decode("utf-8") for token in unique), seen.tolist())))
        for name, (start, stop) in SPLIT_BUCKETS.items():
            sizes[name] += int(((buckets >= start) & (buckets < stop)).sum())
    return Scan(counts, sizes)


def token_rows(path: str, split: str, text, min_words: int = 5, max_words: int = 14,
               batch_size: int = 1024) -> tf.data.Dataset:
    """The split's sentences as token id rows `[(tokens)]` int32 (cut to the text processor's
    `max_length`), ready for `pipeline.batches`."""

    def encode(batch):
        encoded = text.encode(batch)
        return tf.RaggedTensor.from_tensor(encoded.ids, lengths=encoded.lengths)

    return (sentences(path, split, min_words, max_words).batch(batch_size)
            .map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
            .map(lambda row: row))  # a ragged row → a dense one


def load_splits(path: str, min_words: int = 5, max_words: int = 14):
    """Every split as a list of sentences (`pipeline.Splits`), for evaluation, which needs them
    whole (the reference language model, the corpus membership of interpolants)."""
    from .pipeline import Splits

    parts = {name: [] for name in SPLIT_BUCKETS}
    for batch, buckets in _labelled(path, min_words, max_words).as_numpy_iterator():
        for name, (start, stop) in SPLIT_BUCKETS.items():
            chosen = (buckets >= start) & (buckets < stop)
            parts[name].extend(sentence.decode("utf-8") for sentence in batch[chosen])
    return Splits(**parts)
