"""The sentences of a run's splits, loaded and split exactly as training loaded and split them.

The one place that turns a run's `config.json` (and an optional other `--data` source) into its
train / validation / test sentences: small sources through `training.pipeline.prepare`, large
ones streamed through `training.streaming.load_splits`, both by `pipeline.split_of`.
"""

from __future__ import annotations

from typing import NamedTuple

SPLIT_CHOICES = ("train", "validation", "test", "all")


class RunSentences(NamedTuple):
    sentences: list[str]  # the split asked for
    source: str
    corpus: list[str]  # every sentence of the data
    train: list[str]  # its training split


def run_sentences(config: dict, data: str | None = None, split: str = "test") -> RunSentences:
    """The `split` ("train", "validation", "test", or "all": every sentence, deduplicated) of
    `data` (default: the run's own source) as the run split it."""
    from . import data as loaders
    from . import pipeline, streaming

    if split not in SPLIT_CHOICES:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLIT_CHOICES}.")
    source = data or config["data"]
    if streaming.is_large(source):
        splits = streaming.load_splits(source, config["min_words"], config["max_words"])
        every = splits.train + splits.validation + splits.test
        chosen = list(dict.fromkeys(every)) if split == "all" else getattr(splits, split)
        return RunSentences(chosen, source, every, splits.train)
    loaded = loaders.load_sentences(source, config["synthetic_size"], config["seed"])
    splits = pipeline.prepare(loaded.sentences, config["min_words"], config["max_words"])
    chosen = list(dict.fromkeys(loaded.sentences)) if split == "all" else getattr(splits, split)
    return RunSentences(chosen, loaded.source, loaded.sentences, splits.train)
