"""The in-graph text pipeline: raw UTF-8 strings ↔ token ids, with `tensorflow-text` ops.

    "I like your style."  → normalise → "i like your style ." → tokens → ids [1 .. max_length]
    ids → tokens → "i like your style ."

Normalisation: NFKC, case folding, punctuation split off words (apostrophes inside words stay:
"don't" is one token), whitespace collapsed. The vocabulary is a plain text file, one token a
line, line number = id; ids 0–3 are reserved for `<pad>`, `<bos>`, `<eos>`, `<unk>`. Because
the lookup tables read that file, a SavedModel carries it as an asset.

Sentences longer than `max_length` tokens are cut to `max_length`; `encode` reports which
were cut, so truncation is never silent.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Iterable, NamedTuple

import tensorflow as tf
import tensorflow_text as tf_text

from tfode import atomic
from tfode.tokens import EOS_ID, PAD_ID, RESERVED_TOKENS, UNK, UNK_ID, lengths_before_eos

VOCABULARY_FILE = "vocab.txt"
TEXT_CONFIG_FILE = "text_config.json"

# Anything that is neither a word character, white space nor an apostrophe between letters.
_PUNCTUATION = r"([^\w\s']|'\B|\B')"


def normalize(sentences: tf.Tensor) -> tf.Tensor:
    """`[batch]` strings → `[batch]` normalised strings (NFKC, case-folded, punctuation split)."""
    sentences = tf_text.normalize_utf8(sentences, "NFKC")
    sentences = tf_text.case_fold_utf8(sentences)
    sentences = tf.strings.regex_replace(sentences, _PUNCTUATION, r" \1 ")
    sentences = tf.strings.regex_replace(sentences, r"\s+", " ")
    return tf.strings.strip(sentences)


_TOKENIZER = tf_text.WhitespaceTokenizer()


def tokenize(sentences: tf.Tensor) -> tf.RaggedTensor:
    """`[batch]` raw strings → `[batch, (words)]` ragged string tokens."""
    return _TOKENIZER.tokenize(normalize(sentences))


def build_vocabulary(
    sentences: Iterable[str], max_size: int | None = None, min_count: int = 1, batch_size: int = 4096
) -> list[str]:
    """The vocabulary of `sentences`: reserved tokens, then tokens seen at least `min_count`
    times, most frequent first (ties alphabetical), at most `max_size` entries in all."""
    counts = collections.Counter()
    batch = []

    def count(batch):
        for row in tokenize(tf.constant(batch)).to_list():
            counts.update(token.decode("utf-8") for token in row)

    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == batch_size:
            count(batch)
            batch = []
    if batch:
        count(batch)
    return rank_vocabulary(counts, max_size, min_count)


def rank_vocabulary(counts, max_size: int | None = None, min_count: int = 1) -> list[str]:
    """Reserved tokens, then the tokens of `counts` (`{token: count}`) seen at least `min_count`
    times, most frequent first (ties alphabetical), at most `max_size` entries in all."""
    ranked = sorted(
        (token for token, seen in counts.items() if seen >= min_count and token not in RESERVED_TOKENS),
        key=lambda token: (-counts[token], token),
    )
    if max_size is not None:
        if max_size <= len(RESERVED_TOKENS):
            raise ValueError(f"max_size must exceed the {len(RESERVED_TOKENS)} reserved tokens.")
        ranked = ranked[: max_size - len(RESERVED_TOKENS)]
    return [*RESERVED_TOKENS, *ranked]


class Encoded(NamedTuple):
    """ids: `[batch, max_length]` int32, 0-padded. lengths: `[batch]` int32 tokens kept.
    truncated: `[batch]` bool, the sentence had more than `max_length` tokens."""

    ids: tf.Tensor
    lengths: tf.Tensor
    truncated: tf.Tensor


class TextProcessor(tf.Module):
    """Strings ↔ ids over a vocabulary file. Usable eagerly, in `tf.data` and in SavedModels.

    Args:
      vocabulary_path: the vocabulary file (one token a line, reserved tokens first).
      max_length: the most tokens a sentence keeps.
    """

    def __init__(self, vocabulary_path: str, max_length: int = 20, name: str | None = None):
        super().__init__(name=name)
        self.vocabulary_path = vocabulary_path
        self.max_length = int(max_length)
        with open(vocabulary_path, encoding="utf-8") as handle:
            head = [handle.readline().rstrip("\n") for _ in RESERVED_TOKENS]
        if tuple(head) != RESERVED_TOKENS:
            raise ValueError(
                f"{vocabulary_path} does not start with the reserved tokens {RESERVED_TOKENS}."
            )
        self.vocabulary_size = _count_lines(vocabulary_path)
        self.token_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocabulary_path,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=UNK_ID,
        )
        self.id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocabulary_path,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value=UNK,
        )

    @classmethod
    def from_sentences(cls, sentences, directory, max_length=20, max_size=None, min_count=1):
        """Builds the vocabulary of `sentences`, writes it into `directory`, returns the processor."""
        vocabulary = build_vocabulary(sentences, max_size=max_size, min_count=min_count)
        write_vocabulary(vocabulary, directory, max_length)
        return cls.load(directory)

    @classmethod
    def from_counts(cls, counts, directory, max_length=20, max_size=None, min_count=1):
        """Like `from_sentences`, from token counts (`{token: count}`, e.g. a streamed pass)."""
        write_vocabulary(rank_vocabulary(counts, max_size=max_size, min_count=min_count), directory, max_length)
        return cls.load(directory)

    @classmethod
    def load(cls, directory):
        """The processor saved in `directory` by `from_sentences` or `save`."""
        config_path = os.path.join(directory, TEXT_CONFIG_FILE)
        vocabulary_path = os.path.join(directory, VOCABULARY_FILE)
        for path in (config_path, vocabulary_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"No text pipeline in {directory}: {path} is missing.")
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        return cls(vocabulary_path, max_length=config["max_length"])

    def save(self, directory):
        """Writes the vocabulary and settings into `directory`."""
        write_vocabulary(self.vocabulary(), directory, self.max_length)

    def vocabulary(self) -> list[str]:
        with open(self.vocabulary_path, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle]

    def encode(self, sentences) -> Encoded:
        """`[batch]` raw strings → `Encoded` (ids `[batch, max_length]`)."""
        tokens = tokenize(tf.convert_to_tensor(sentences, tf.string))
        lengths = tf.cast(tokens.row_lengths(), tf.int32)
        ids = tf.cast(self.token_to_id.lookup(tokens), tf.int32)
        ids = ids[:, : self.max_length].to_tensor(
            default_value=PAD_ID, shape=[None, self.max_length]
        )
        return Encoded(
            ids=ids,
            lengths=tf.minimum(lengths, self.max_length),
            truncated=lengths > self.max_length,
        )

    def tokens(self, ids) -> tf.Tensor:
        """`[..., length]` int ids → `[..., length]` token strings."""
        return self.id_to_token.lookup(tf.cast(ids, tf.int64))

    def decode(self, ids, lengths=None) -> tf.Tensor:
        """`[batch, length]` ids → `[batch]` strings: tokens up to the first `<eos>` (or `lengths`
        of them) joined by spaces; padding and `<bos>` are dropped."""
        ids = tf.convert_to_tensor(ids)
        if lengths is None:
            lengths = lengths_before_eos(ids, EOS_ID)
        keep = tf.sequence_mask(lengths, tf.shape(ids)[1]) & (ids > EOS_ID)
        words = tf.ragged.boolean_mask(self.tokens(ids), keep)
        return tf.strings.reduce_join(words, axis=1, separator=" ")


def write_vocabulary(vocabulary: list[str], directory: str, max_length: int) -> None:
    """Writes `vocab.txt` and `text_config.json` into `directory` (each file atomically)."""
    if list(vocabulary[: len(RESERVED_TOKENS)]) != list(RESERVED_TOKENS):
        raise ValueError(f"A vocabulary must start with {RESERVED_TOKENS}.")
    bad = [token for token in vocabulary if not token or "\n" in token or token != token.strip()]
    if bad:
        raise ValueError(f"Vocabulary tokens must be non-empty single words: {bad[:5]}")
    os.makedirs(directory, exist_ok=True)
    atomic.write_text(os.path.join(directory, VOCABULARY_FILE), "\n".join(vocabulary) + "\n")
    atomic.write_text(
        os.path.join(directory, TEXT_CONFIG_FILE),
        json.dumps({"max_length": int(max_length), "vocabulary_size": len(vocabulary)}, indent=2),
    )


def _count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)
