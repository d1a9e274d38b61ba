"""How good a path between two sentences is, measured on the sentences decoded along it.

A path is the list of sentences decoded at α = 0, …, 1 (tokens separated by spaces); A′ and B′
are its two ends, d the word edit distance (Levenshtein over tokens). Over a set of paths:

    gradual    mean of (the largest single step's d) / d(A′, B′): 1.0 = the path flips in one step
    smooth     mean of d(A′, B′) / (Σ of the steps' d): 1.0 = no detour
    smooth_bound  mean of min(1, d(A′, B′) / (K − 1)): the most `smooth` can be when each of the
               K − 1 steps changes at least one word (every point new), on the same paths
    monotone   share of paths whose distance to A′ never falls and to B′ never rises
    distinct   mean number of distinct interior sentences other than A′ and B′
    endpoints  share of paths whose two ends equal their inputs
    new        interior points that differ from both ends (the points a person sees as new),
               counted over all paths: `real`, `fluent` and `grammatical` are shares of these
    real       share of new points that are sentences of the corpus
    steps      the mean word edit distance of each step (α_k → α_k+1), over the paths: where along
               the way the words change
    fluent     share of new points that the reference language model finds at least as likely
               per token as the 5th-percentile real sentence (95 % of real sentences pass)
    real_interior, fluent_interior
               the same over every interior point, repeats of A′ and B′ included

On a fine grid of a straight path (`grid_metrics`, every point of α = 0, 1/(G-1), …, 1):

    grid_distinct  mean number of distinct sentences strictly between A′ and B′ along the grid
    grid_fluent    share of the grid's interior points whose sentence is fluent (the rest of the
                   line runs through holes)
    floor          mean of the largest change between neighbouring grid points over d(A′, B′):
                   no placement of points on that line can make `gradual` lower

Paths whose ends decode to the same sentence have no way to go: gradual and smooth leave them
out, and say how many they kept. Every share comes with a 95 % Wilson interval and every mean with
a normal one, beside the count it rests on.
"""

from __future__ import annotations

import math

import numpy as np
from rapidfuzz.distance import Levenshtein


def distance(first: str, second: str) -> int:
    """Word edit distance between two sentences."""
    return Levenshtein.distance(first.split(), second.split())


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a share."""
    if total == 0:
        return (math.nan, math.nan)
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def share(flags) -> dict:
    flags = [bool(flag) for flag in flags]
    low, high = wilson(sum(flags), len(flags))
    return {"value": sum(flags) / len(flags) if flags else math.nan, "low": low, "high": high, "n": len(flags)}


def mean(values) -> dict:
    values = np.asarray(list(values), dtype=float)
    if not len(values):
        return {"value": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return {"value": float(values.mean()), "low": float(values.mean() - half),
            "high": float(values.mean() + half), "n": len(values)}


def changed_words(before: str, after: str) -> set[int]:
    """Positions of `after`'s words that the edit alignment from `before` replaces or inserts."""
    changed = set()
    for tag, _, _, start, end in Levenshtein.opcodes(before.split(), after.split()):
        if tag in ("replace", "insert"):
            changed.update(range(start, end))
    return changed


def path_shape(path: list[str]) -> dict:
    """One path's figures: `span` d(A′, B′), `steps` (each step's d), `largest_step`, `length`
    (Σ steps), `monotone`, `distinct` interior sentences other than the ends."""
    start, end = path[0], path[-1]
    steps = [distance(a, b) for a, b in zip(path, path[1:])]
    to_start = [distance(sentence, start) for sentence in path]
    to_end = [distance(sentence, end) for sentence in path]
    monotone = (all(b >= a for a, b in zip(to_start, to_start[1:]))
                and all(b <= a for a, b in zip(to_end, to_end[1:])))
    return {"span": distance(start, end), "steps": steps, "largest_step": max(steps, default=0), "length": sum(steps),
            "monotone": monotone, "distinct": len(set(path[1:-1]) - {start, end})}


def path_metrics(paths: list[list[str]], inputs: list[tuple[str, str]], corpus: set[str],
                 fluent=None) -> dict:
    """The figures above over `paths` (each K ≥ 3 sentences), `inputs` their `(A, B)` as the text
    pipeline prints them, `corpus` every sentence of the corpus printed the same way, and
    `fluent` (optional) a function from a list of sentences to a list of booleans."""
    shapes = [path_shape(path) for path in paths]
    moving = [shape for shape in shapes if shape["span"] > 0]
    interior = [sentence for path in paths for sentence in path[1:-1]]
    new = new_points(paths)
    metrics = {
        "paths": len(paths),
        "points": len(paths[0]) if paths else 0,
        "gradual": mean(shape["largest_step"] / shape["span"] for shape in moving),
        "smooth": mean(shape["span"] / shape["length"] for shape in moving),
        "smooth_bound": mean(min(1.0, shape["span"] / max(len(path) - 1, 1))
                             for shape, path in zip(shapes, paths) if shape["span"] > 0),
        "monotone": share(shape["monotone"] for shape in shapes),
        "distinct": mean(shape["distinct"] for shape in shapes),
        "endpoints": share(path[0] == a and path[-1] == b for path, (a, b) in zip(paths, inputs)),
        "new": len(new),
        "real": share(sentence in corpus for sentence in new),
        "real_interior": share(sentence in corpus for sentence in interior),
        "steps": np.mean([shape["steps"] for shape in shapes], axis=0).tolist() if shapes else [],
    }
    if fluent is not None:
        judged = fluent(interior)
        metrics["fluent_interior"] = share(judged)
        metrics["fluent"] = share(flag for flag, is_new in zip(judged, new_flags(paths)) if is_new)
    return metrics


def new_flags(paths: list[list[str]]) -> list[bool]:
    """For each interior point of `paths`, in order: whether it differs from both of its path's ends."""
    return [sentence not in (path[0], path[-1]) for path in paths for sentence in path[1:-1]]


def new_points(paths: list[list[str]]) -> list[str]:
    """The interior points of `paths` that differ from both of their path's ends, in order."""
    return [sentence for path in paths for sentence in path[1:-1] if sentence not in (path[0], path[-1])]


def grid_metrics(paths: list[list[str]], fluent=None) -> dict:
    """`grid_distinct`, `grid_fluent` (with `fluent`) and `floor` of paths decoded on a fine grid."""
    shapes = [path_shape(path) for path in paths]
    moving = [shape for shape in shapes if shape["span"] > 0]
    metrics = {
        "grid_points": len(paths[0]) if paths else 0,
        "grid_distinct": mean(shape["distinct"] for shape in shapes),
        "floor": mean(shape["largest_step"] / shape["span"] for shape in moving),
    }
    if fluent is not None:
        metrics["grid_fluent"] = share(fluent([sentence for path in paths for sentence in path[1:-1]]))
    return metrics


def swapped(sentence: str, rng) -> str:
    """`sentence` with two adjacent words (not the final punctuation) exchanged."""
    words = sentence.split()
    body = len(words) - 1 if len(words) > 2 and not words[-1].isalnum() else len(words)
    if body < 2:
        return sentence
    index = int(rng.integers(0, body - 1))
    words[index], words[index + 1] = words[index + 1], words[index]
    return " ".join(words)


def spliced(first: str, second: str) -> str:
    """The first half of `first` joined to the second half of `second`."""
    a, b = first.split(), second.split()
    return " ".join(a[: len(a) // 2] + b[len(b) // 2 :])


SHARES = ("monotone", "endpoints", "real", "fluent", "grammatical", "real_interior", "fluent_interior",
          "grammatical_interior", "grid_fluent")
ORDER = ("fluent", "grammatical", "real", "new", "gradual", "smooth", "smooth_bound", "monotone", "distinct", "endpoints",
         "fluent_interior", "real_interior", "grid_distinct", "grid_fluent", "floor")


def formatted(name: str, figure: dict, interval: bool = True) -> str:
    """"73.5 % [70.1, 76.7]" for a share, "0.62 [0.58, 0.66]" for a mean, "812" for a count."""
    if isinstance(figure, int):
        return str(figure)
    scale, unit, digits = (100, " %", 1) if name in SHARES else (1, "", 2)
    text = f"{scale * figure['value']:.{digits}f}{unit}"
    if interval and not math.isnan(figure["low"]):
        text += f" [{scale * figure['low']:.{digits}f}, {scale * figure['high']:.{digits}f}]"
    return text


def summary_line(metrics: dict) -> str:
    """The figures of one mode on one line, in `ORDER`, without intervals."""
    return ", ".join(f"{name} {formatted(name, metrics[name], interval=False)}"
                     for name in ORDER if name in metrics)
