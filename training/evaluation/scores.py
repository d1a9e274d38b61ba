"""Evaluation metrics on free-running decodes and on hidden trajectories (NumPy in, floats out)."""

from __future__ import annotations

import numpy as np
import sacrebleu


def align(decoded: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pads or cuts both `[batch, steps]` id arrays to one width."""
    width = max(decoded.shape[1], targets.shape[1])
    pad = lambda array: np.pad(array, [[0, 0], [0, width - array.shape[1]]])  # noqa: E731
    return pad(decoded), pad(targets)


def token_matches(decoded: np.ndarray, targets: np.ndarray) -> tuple[int, int, int]:
    """`(correct tokens, target tokens, exactly reconstructed sentences)`: position-wise over the
    non-padding target tokens (`<eos>` included), a sentence exact when every one matches and
    nothing follows its `<eos>`."""
    decoded, targets = align(decoded, targets)
    mask = targets != 0
    correct = (decoded == targets) & mask
    exact = np.all(decoded == targets, axis=1)
    return int(correct.sum()), int(mask.sum()), int(exact.sum())


ERROR_KINDS = ("exact", "one wrong token", "several wrong tokens", "wrong length")


def error_kinds(decoded: np.ndarray, targets: np.ndarray, eos_id: int = 2) -> dict:
    """How the sentences went wrong: `{kind: [sentences, target tokens missed]}` for each of
    `ERROR_KINDS`. A decode has the wrong length when its first `<eos>` is not where the
    target's is (or it has none); otherwise it is exact, or has one or several tokens wrong at
    their positions. Several wrong tokens with the length right is typically one mistake that
    the following tokens go on from."""
    decoded, targets = align(decoded, targets)
    mask = targets != 0
    missed = ((decoded != targets) & mask).sum(axis=1)
    target_length = mask.sum(axis=1)
    is_eos = decoded == eos_id
    decoded_length = np.where(is_eos.any(axis=1), is_eos.argmax(axis=1) + 1, -1)
    kinds = np.where(decoded_length != target_length, 3, np.minimum(missed, 2))
    return {kind: [int((kinds == index).sum()), int(missed[kinds == index].sum())]
            for index, kind in enumerate(ERROR_KINDS)}


def rank_bands(vocabulary_size: int, edges=(100, 1000)) -> list[tuple[str, int, int]]:
    """`(label, first id, end id)` bands of a frequency-ranked vocabulary (ids from 4 up are the
    words, most frequent first): the `edges[0]` most frequent words, the next ones up to
    `edges[1]`, then the rest; `<unk>` (3) and `<eos>` (2) are bands of their own."""
    first_word = 4
    bounds = [first_word, *(first_word + edge for edge in edges if first_word + edge < vocabulary_size),
              vocabulary_size]
    bands = [("<eos>", 2, 3), ("<unk>", 3, 4)]
    for start, end in zip(bounds, bounds[1:]):
        bands.append((f"words ranked {start - first_word + 1}–{end - first_word}", start, end))
    return bands


def matches_by_band(decoded: np.ndarray, targets: np.ndarray, bands) -> list[tuple[int, int]]:
    """`(correct, count)` of the target tokens whose id falls in each `(label, first, end)` band."""
    decoded, targets = align(decoded, targets)
    correct = decoded == targets
    return [(int((correct & (targets >= first) & (targets < end)).sum()),
             int(((targets >= first) & (targets < end)).sum())) for _, first, end in bands]


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu) of `hypotheses` against one reference each. Both come out of the
    text pipeline already tokenised (words and punctuation separated by spaces), so sacrebleu
    splits on spaces alone (`tokenize="none"`)."""
    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True).score)


def midpoint_hits(probabilities: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    """`(hits, midpoints)`. `probabilities` `[batch, n, vocab]` at the midpoints between target
    tokens k and k+1 (k = 1 … n); a hit is a midpoint whose most likely token is one of the two."""
    predicted = probabilities.argmax(-1)
    count = min(predicted.shape[1], targets.shape[1] - 1)
    left, right = targets[:, :count], targets[:, 1 : count + 1]
    valid = right != 0
    hits = ((predicted[:, :count] == left) | (predicted[:, :count] == right)) & valid
    return int(hits.sum()), int(valid.sum())


def mass_transfer(probabilities: np.ndarray, targets: np.ndarray, fractions: np.ndarray) -> dict:
    """Mean probability of token k and of token k+1 at times (k + f)·Δt, f in `fractions`.

    `probabilities` is `[batch, n, len(fractions), vocab]` for k = 1 … n."""
    count = min(probabilities.shape[1], targets.shape[1] - 1)
    left, right = targets[:, :count], targets[:, 1 : count + 1]
    valid = right != 0
    p_left = np.take_along_axis(probabilities[:, :count], left[:, :, None, None], axis=-1)[..., 0]
    p_right = np.take_along_axis(probabilities[:, :count], right[:, :, None, None], axis=-1)[..., 0]
    weights = valid[..., None].astype(float)
    total = max(weights.sum(), 1.0)
    return {
        "fractions": [float(f) for f in fractions],
        "token_k": [float(v) for v in (p_left * weights).sum((0, 1)) / total],
        "token_k_plus_1": [float(v) for v in (p_right * weights).sum((0, 1)) / total],
    }
