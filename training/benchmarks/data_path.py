"""The streaming data path at growing corpus sizes, in one run.

    python -m training.benchmarks.data_path [--lines 100000 1000000 5000000] [--source grammar|PATH]

For each N, writes a corpus of N lines into a temporary folder (sentences of the built-in
grammar, or lines drawn from the corpus file PATH, e.g. ../shared/data/fra-eng-dev.zip), then,
in a fresh process each, runs what training does with a file over the streaming threshold
(training/streaming.py): the counting pass that gives the vocabulary and the splits' sizes, and
the pipeline up to its first training batch. Prints lines/s of the counting pass, the seconds to
the first batch after it, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time


POOL = 200_000


def write_corpus(path: str, lines: int, source: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    if source == "grammar":
        from .. import grammar

        pool = [grammar.sentence(rng) for _ in range(min(POOL, lines))]
    else:
        from .. import data

        pool = data.load_sentences(source).sentences
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, lines, 10_000):
            handle.write("\n".join(rng.choice(pool) for _ in range(min(10_000, lines - start))) + "\n")


def measure(path: str) -> dict:
    """Run in a fresh process: the counting pass, then the first batch; peak RSS."""
    import resource

    from tfode.text import TextProcessor
    from .. import pipeline, streaming

    started = time.monotonic()
    scan = streaming.scan(path)
    counted = time.monotonic() - started
    with tempfile.TemporaryDirectory() as folder:
        text = TextProcessor.from_counts(scan.counts, folder, 20, 20000, 2)
        started = time.monotonic()
        batches = pipeline.batches(streaming.token_rows(path, "train", text), 64, shuffle=True)
        next(iter(batches))
        first_batch = time.monotonic() - started
    return {"lines": sum(1 for _ in open(path, "rb")), "count_seconds": counted, "first_batch_seconds": first_batch,
            "sentences": scan.sizes, "vocabulary": text.vocabulary_size,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.data_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000],
                        help="corpus sizes to measure, one fresh process each (default: %(default)s)")
    parser.add_argument("--source", default="grammar", help="grammar, or a corpus file to draw lines from (default: %(default)s)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    if any(n < 1 for n in args.lines):
        parser.error("--lines must be positive")
    if args.source != "grammar" and not os.path.exists(args.source):
        parser.error(f"no corpus file at {args.source}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.lines:
            path = os.path.join(folder, f"corpus-{lines}.txt")
            write_corpus(path, lines, args.source)
            result = subprocess.run([sys.executable, "-m", f"{__package__}.data_path", "--measure", path],
                                    capture_output=True, text=True,
                                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            if result.returncode != 0:
                print(result.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append((lines, os.path.getsize(path), json.loads(result.stdout.strip().splitlines()[-1])))
            os.remove(path)
    print(f"source {args.source}; {os.cpu_count()} CPU cores; one fresh process per size")
    print("| lines | file MiB | counting pass s | lines/s | first batch s | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for lines, size, result in rows:
        print(f"| {lines:,} | {size / 2**20:.0f} | {result['count_seconds']:.1f} | "
              f"{lines / result['count_seconds']:,.0f} | {result['first_batch_seconds']:.1f} | "
              f"{result['peak_rss_mib']:.0f} |")
    if len(rows) > 1:
        growth = rows[-1][2]["peak_rss_mib"] - rows[0][2]["peak_rss_mib"]
        print(f"peak memory from {rows[0][0]:,} to {rows[-1][0]:,} lines: {growth:+.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
