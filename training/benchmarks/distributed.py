"""Training throughput on one worker against several, on this machine, in one run.

    python -m training.benchmarks.distributed [--workers 1 2] [--preset synthetic] [--decoder odernn] \\
        [--epochs 2] [--synthetic-size 6000] [--batch-size 64]

For each count N, starts N `python -m training.train --distribute multiworker` processes on
127.0.0.1 with their TF_CONFIG (as on N machines) for the same job, waits for them, and prints
the steps/s and sentences/s of the chief's `fit` (its train_summary.json: steps, seconds,
replicas; a step's global batch is `--batch-size` × replicas). On one machine the workers share
its cores: the figure shows the cost of the collectives, not the gain of more machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from ..cluster import free_ports


def run_cluster(workers: int, flags: list[str], folder: str) -> dict:
    ports = free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    run_dir = os.path.join(folder, f"workers-{workers}")
    processes = []
    for index in range(workers):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", f"{__package__.split('.')[0]}.train", *flags, "--distribute", "multiworker", "--run-dir", run_dir,
             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in processes]
    for process, output in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed (exit {process.returncode}):\n{output[-2000:]}")
    with open(os.path.join(run_dir, "train_summary.json")) as handle:
        return json.load(handle)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default: %(default)s)")
    parser.add_argument("--preset", default="synthetic", help="training preset of every run (default: %(default)s)")
    parser.add_argument("--decoder", default="odernn", help="decoder of every run (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--synthetic-size", type=int, default=6000, help="sentences of the built-in grammar (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="per replica (default: %(default)s)")
    args = parser.parse_args(argv)
    if any(count < 1 or count > 8 for count in args.workers):
        parser.error("--workers must be between 1 and 8")
    flags = ["--preset", args.preset, "--decoder", args.decoder, "--epochs", str(args.epochs),
             "--synthetic-size", str(args.synthetic_size), "--batch-size", str(args.batch_size)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in args.workers:
            summary = run_cluster(count, flags, folder)
            steps_per_second = summary["steps"] / summary["seconds"]
            rows.append((count, summary, steps_per_second,
                         steps_per_second * args.batch_size * summary["replicas"]))
    print(f"{args.preset} preset, {args.decoder}, {args.epochs} epochs of {args.synthetic_size} sentences, "
          f"batch {args.batch_size} per replica, {os.cpu_count()} CPU cores shared by all workers")
    print("| workers | replicas | global batch | steps | seconds | steps/s | sentences/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count, summary, steps_per_second, sentences in rows:
        print(f"| {count} | {summary['replicas']} | {args.batch_size * summary['replicas']} | {summary['steps']} | "
              f"{summary['seconds']:.1f} | {steps_per_second:.2f} | {sentences:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
