"""How reproducible `--deterministic` runs are: several runs of one seed side by side, compared.

    python -m training.benchmarks.determinism [--rounds 5] [--side-by-side 3] [--seed 3] \\
        [-- extra training.train flags]

Each round starts `--side-by-side` `python -m training.train --deterministic` processes of the
same seed at once (they compete for the cores, as runs on a loaded machine do), waits for them,
and reads each run's weight digest (train_summary.json). Prints the distinct digests and how many
runs ended with each: one digest means every run was bit-identical. The default job is the
`tiny` preset's ODE-RNN with dropout, scheduled sampling and word dropout (every random stream).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile


DEFAULT_JOB = ["--data", "synthetic", "--preset", "tiny", "--decoder", "odernn", "--epochs", "1",
               "--dropout", "0.2", "--scheduled-sampling", "0.5", "--word-dropout", "0.1"]


def round_of_runs(count: int, seed: int, extra: list[str], folder: str) -> list[str]:
    """The weight digests of `count` runs of `seed` started together."""
    processes = []
    for index in range(count):
        run_dir = os.path.join(folder, f"run-{index}")
        processes.append((run_dir, subprocess.Popen(
            [sys.executable, "-m", f"{__package__.split('.')[0]}.train", *DEFAULT_JOB, *extra, "--seed", str(seed),
             "--deterministic", "--quiet", "--overwrite", "--run-dir", run_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})))
    digests = []
    for run_dir, process in processes:
        _, errors = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a run failed (exit {process.returncode}):\n{errors[-2000:]}")
        with open(os.path.join(run_dir, "train_summary.json")) as handle:
            digests.append(json.load(handle)["weights_sha1"])
    return digests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.determinism", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of runs, one after the other (default: %(default)s)")
    parser.add_argument("--side-by-side", type=int, default=3, help="runs started together in each round (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=3, help="the seed of every run (default: %(default)s)")
    parser.add_argument("extra", nargs="*", help="further training.train flags (after --)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.side_by_side < 1:
        parser.error("--rounds and --side-by-side must be >= 1")
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        for number in range(args.rounds):
            digests = round_of_runs(args.side_by_side, args.seed, args.extra, folder)
            counts.update(digests)
            print(f"round {number + 1}: " + " ".join(digest[:10] for digest in digests), flush=True)
    runs = args.rounds * args.side_by_side
    print(f"{len(counts)} distinct weight digest(s) in {runs} runs of seed {args.seed} "
          f"({args.side_by_side} side by side, {args.rounds} rounds):")
    for digest, count in counts.most_common():
        print(f"  {digest}  {count} runs")
    return 0 if len(counts) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
