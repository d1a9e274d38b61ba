"""A reference language model that judges whether a decoded sentence reads like real text.

A small GRU language model (embedding, one GRU, a softmax over the vocabulary), trained with
Keras `fit` on the training split only, so that it is independent of the autoencoder it judges.
It conditions every word on the whole prefix, so unlike an n-gram model it notices a sentence that
is locally plausible but broken as a whole ("i must have known a odd ."). It is trained once per
training set and settings, and cached under a key made of their hash.

    lm = ReferenceLM.fit_or_load(train_sentences, cache_dir)
    lm.log_likelihood(["i like your style ."])     → mean log-probability per token (<eos> included)
    lm.perplexity(held_out_sentences)

Sentences are read as the text pipeline prints them (tokens separated by spaces); the model's own
vocabulary is the training split's words, and any other word is `<unk>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

VERSION = 1  # part of the cache key: bump when the model or its training changes
SETTINGS = dict(embedding_dim=128, units=256, vocab_size=20000, min_count=2, max_length=20,
                batch_size=128, epochs=4, learning_rate=3e-3)


def cache_key(sentences, settings) -> str:
    digest = hashlib.sha256(json.dumps([VERSION, settings], sort_keys=True).encode())
    for sentence in sentences:
        digest.update(sentence.encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


class ReferenceLM:
    """A trained GRU language model and its vocabulary (`tfode.text.TextProcessor`)."""

    def __init__(self, model, text, directory):
        self.model = model
        self.text = text
        self.directory = directory

    @classmethod
    def fit_or_load(cls, sentences, cache_dir, verbose=0, **overrides) -> "ReferenceLM":
        """The model for these training `sentences` and settings: loaded from
        `cache_dir/lm-KEY/` when trained before, else trained (Keras `fit`) and saved there
        atomically."""
        settings = {**SETTINGS, **overrides}
        directory = os.path.join(cache_dir, f"lm-{cache_key(sentences, settings)}")
        if not os.path.exists(os.path.join(directory, "lm.keras")):
            cls._train(sentences, settings, directory, verbose)
        return cls.load(directory)

    @classmethod
    def load(cls, directory) -> "ReferenceLM":
        import keras

        from tfode.text import TextProcessor

        return cls(keras.models.load_model(os.path.join(directory, "lm.keras")),
                   TextProcessor.load(directory), directory)

    @staticmethod
    def _train(sentences, settings, directory, verbose):
        import keras

        from tfode import atomic
        from tfode.text import TextProcessor

        keras.utils.set_random_seed(0)
        with atomic.replacing(directory) as temporary:
            text = TextProcessor.from_sentences(sentences, temporary, settings["max_length"],
                                                settings["vocab_size"], settings["min_count"])
            inputs, targets = _language_model_pairs(text, sentences)
            model = keras.Sequential([
                keras.layers.Embedding(text.vocabulary_size, settings["embedding_dim"], mask_zero=True),
                keras.layers.GRU(settings["units"], return_sequences=True),
                keras.layers.Dense(text.vocabulary_size),
            ])
            model.compile(keras.optimizers.Adam(settings["learning_rate"], clipnorm=1.0),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
            started = time.monotonic()
            model.fit(inputs, targets, batch_size=settings["batch_size"], epochs=settings["epochs"],
                      verbose=verbose)
            model.save(os.path.join(temporary, "lm.keras"))
            with open(os.path.join(temporary, "lm.json"), "w") as handle:
                json.dump({"settings": settings, "sentences": len(sentences),
                           "seconds": round(time.monotonic() - started, 1)}, handle, indent=2)

    def token_log_probabilities(self, sentences, batch_size=512) -> list[np.ndarray]:
        """For each sentence, the log-probability of each of its tokens and of `<eos>`."""
        inputs, targets = _language_model_pairs(self.text, sentences)
        rows = []
        for start in range(0, len(inputs), batch_size):
            logits = self.model(inputs[start : start + batch_size], training=False).numpy()
            logits = logits - logits.max(-1, keepdims=True)
            log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            batch_targets = targets[start : start + batch_size]
            picked = np.take_along_axis(log_probs, batch_targets[..., None], -1)[..., 0]
            rows += [row[target != 0] for row, target in zip(picked, batch_targets)]
        return rows

    def log_likelihood(self, sentences) -> np.ndarray:
        """`[n]` mean log-probability per token of each sentence (`<eos>` included)."""
        return np.array([row.mean() for row in self.token_log_probabilities(sentences)])

    def perplexity(self, sentences) -> float:
        """exp of the mean negative log-probability over every token of `sentences`."""
        rows = self.token_log_probabilities(sentences)
        return float(np.exp(-np.concatenate(rows).mean()))

    def in_vocabulary(self, sentences) -> list[bool]:
        """Whether every word of each sentence is in the model's vocabulary."""
        from tfode.tokens import UNK_ID

        ids = self.text.encode(list(sentences)).ids.numpy()
        return [bool((row != UNK_ID).all()) for row in ids]


def _language_model_pairs(text, sentences):
    """`(inputs, targets)`, each `[n, max_length + 1]` int32: `<bos>` + ids, and ids + `<eos>`."""
    from tfode.tokens import append_eos, prepend_bos

    ids = text.encode(list(sentences)).ids
    return prepend_bos(ids).numpy(), append_eos(ids).numpy()


class FluencyJudge:
    """Calls a sentence fluent when the reference LM finds it at least as likely per token as the
    5th-percentile real sentence of `real_sentences` that is made of in-vocabulary words (so 95 % of
    those pass by construction).

    `calibration` says how well it separates real text from broken text: the share of the real
    sentences it passes, of the same sentences with two adjacent words swapped, and of sentences
    made of the first half of one and the second half of another; and the LM's perplexity on them.
    """

    def __init__(self, lm: ReferenceLM, real_sentences, seed: int = 0, percentile: float = 5.0):
        from . import path_metrics

        self.lm = lm
        real = [s for s, known in zip(real_sentences, lm.in_vocabulary(real_sentences)) if known]
        if len(real) < 20:
            raise ValueError(f"The fluency threshold needs real in-vocabulary sentences; found {len(real)}.")
        scores = lm.log_likelihood(real)
        self.threshold = float(np.percentile(scores, percentile))
        rng = np.random.default_rng(seed)
        shuffled = [real[i] for i in rng.permutation(len(real))]
        swapped = [path_metrics.swapped(s, rng) for s in real]
        swapped = [s for s, original in zip(swapped, real) if s != original]
        spliced = [path_metrics.spliced(a, b) for a, b in zip(real, shuffled) if a != b]
        self.calibration = {
            "real sentences": path_metrics.share(scores >= self.threshold),
            "two adjacent words swapped": path_metrics.share(self(swapped)),
            "halves of two sentences joined": path_metrics.share(self(spliced)),
            "perplexity on the real sentences": lm.perplexity(real),
            "threshold (mean log-probability per token)": self.threshold,
        }

    def __call__(self, sentences) -> list[bool]:
        sentences = list(sentences)
        if not sentences:
            return []
        return [bool(score >= self.threshold) for score in self.lm.log_likelihood(sentences)]


def default_cache_dir() -> str:
    return os.environ.get("TFODE_CACHE") or os.path.expanduser(os.path.join("~", ".cache", "tfode"))
