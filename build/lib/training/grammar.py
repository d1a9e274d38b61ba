"""The built-in corpus: a small seeded English-like grammar, and its acceptance check.

    sentence  → subject verb_phrase "."
    subject   → determiner [adjective] noun | pronoun
    verb_phrase → transitive object [place] | intransitive [adverb] [place]
    object    → determiner [adjective] noun
    place     → preposition determiner [adjective] noun

Every word belongs to exactly one category, so `accepts` checks a sentence by mapping words to
categories and matching the category sequence against the grammar's regular expression.
"""

from __future__ import annotations

import random
import re

LEXICON = {
    "D": ["the", "a", "my", "your", "his", "her", "our", "this"],
    "A": ["big", "small", "red", "old", "young", "happy", "quiet", "green", "lazy", "clever"],
    "N": ["cat", "dog", "man", "woman", "child", "teacher", "bird", "car", "book", "house",
          "garden", "river", "city", "friend", "doctor", "horse"],
    "P": ["he", "she", "it", "tom", "mary"],
    "T": ["sees", "likes", "finds", "follows", "paints", "wants", "visits", "watches", "helps"],
    "I": ["sleeps", "runs", "sings", "waits", "smiles", "walks", "laughs", "swims"],
    "R": ["quickly", "slowly", "often", "quietly", "today"],
    "L": ["near", "behind", "under", "beside", "in"],
}
_CATEGORY = {word: category for category, words in LEXICON.items() for word in words}
_SENTENCE = re.compile(r"(DA?N|P)(TDA?N(LDA?N)?|IR?(LDA?N)?)\.")


def _noun_phrase(rng: random.Random) -> list[str]:
    words = [rng.choice(LEXICON["D"])]
    if rng.random() < 0.5:
        words.append(rng.choice(LEXICON["A"]))
    return words + [rng.choice(LEXICON["N"])]


def sentence(rng: random.Random) -> str:
    """One random sentence of the grammar."""
    words = rng.choice([_noun_phrase(rng), [rng.choice(LEXICON["P"])]])
    if rng.random() < 0.6:
        words += [rng.choice(LEXICON["T"])] + _noun_phrase(rng)
    else:
        words.append(rng.choice(LEXICON["I"]))
        if rng.random() < 0.5:
            words.append(rng.choice(LEXICON["R"]))
    if rng.random() < 0.4:
        words += [rng.choice(LEXICON["L"])] + _noun_phrase(rng)
    return " ".join(words + ["."])


def corpus(size: int = 6000, seed: int = 0) -> list[str]:
    """`size` distinct sentences, the same for the same seed."""
    rng = random.Random(seed)
    sentences: dict[str, None] = {}
    attempts = 0
    while len(sentences) < size:
        sentences[sentence(rng)] = None
        attempts += 1
        if attempts > 50 * size:
            raise ValueError(f"The grammar cannot produce {size} distinct sentences.")
    return list(sentences)


def accepts(text: str) -> bool:
    """Whether `text` (tokens separated by spaces, as the text pipeline prints them) is a
    sentence of the grammar."""
    categories = []
    for word in text.split():
        if word == ".":
            categories.append(".")
        elif word in _CATEGORY:
            categories.append(_CATEGORY[word])
        else:
            return False
    return _SENTENCE.fullmatch("".join(categories)) is not None
