"""Seconds per path of the exported `path` signature, as the model server runs it.

    python -m serving.benchmarks.path_latency --export-base exports --model-name tfode \
        [--sentences FILE] [--pairs-per-run 25] [--points 9] [--runs 8] [--seed 0]

Loads the newest version through the session loader `serving.server` uses and runs `path` on
`--runs` batches of `--pairs-per-run` seeded pairs of sentences (`--sentences`, one a line; the
load test's sentences without it), `--points` points each. Prints the seconds of each run, the
median seconds per path, and the first path of the first run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from ..cli import add_export_arguments
from ..loadtest import SENTENCES


def pairs(sentences: list[str], count: int, rng) -> tuple[list[str], list[str]]:
    """`count` pairs of two different sentences drawn with `rng`."""
    firsts, seconds = [], []
    for _ in range(count):
        a, b = rng.sample(sentences, 2)
        firsts.append(a)
        seconds.append(b)
    return firsts, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.benchmarks.path_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(parser)
    parser.add_argument("--sentences", help="a file of sentences, one a line (default: the load test's)")
    parser.add_argument("--pairs-per-run", type=int, default=25, help="paths per call of the signature (default: %(default)s)")
    parser.add_argument("--points", type=int, default=9, help="points per path, ends included (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=8, help="measured calls (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.pairs_per_run < 1 or args.runs < 1 or args.points < 2:
        parser.error("--pairs-per-run and --runs must be >= 1 and --points >= 2")
    sentences = SENTENCES
    if args.sentences:
        try:
            with open(args.sentences, encoding="utf-8") as handle:
                sentences = [line.strip() for line in handle if line.strip()]
        except OSError as error:
            parser.error(f"cannot read --sentences: {error}")
        if len(sentences) < 2:
            parser.error("--sentences needs at least two sentences")
    import random

    import numpy as np
    import tensorflow_text  # noqa: F401  (the graphs' text ops; loaded after the arguments are read)

    from ..model_manager import SessionThreads, load_newest

    try:
        version = load_newest(os.path.join(args.export_base, args.model_name), "path", SessionThreads(0, 0))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    number = version.version
    rng = random.Random(args.seed)

    def inputs():
        a, b = pairs(sentences, args.pairs_per_run, rng)
        return {"sentence_a": np.array(a, dtype=object), "sentence_b": np.array(b, dtype=object),
                "points": np.full([args.pairs_per_run], args.points, np.int32)}

    version.run("path", inputs())  # the first run of a shape pays for its set-up
    print(f"path of {args.model_name} version {number}: {args.pairs_per_run} pairs a call, {args.points} points, "
          f"{os.cpu_count()} CPU cores")
    per_path, first = [], None
    for run in range(args.runs):
        batch = inputs()
        began = time.perf_counter()
        answer = version.run("path", batch)
        seconds = time.perf_counter() - began
        per_path.append(seconds / args.pairs_per_run)
        first = first or [s.decode("utf-8") for s in answer["sentences"][0]]
        print(f"run {run + 1}: {seconds:.2f} s, {seconds / args.pairs_per_run:.3f} s per path", flush=True)
    print(f"median over {args.runs} runs: {statistics.median(per_path):.3f} s per path")
    print("a path:")
    for sentence in first:
        print(f"  {sentence}")
    version.retire()
    return 0


if __name__ == "__main__":
    sys.exit(main())
