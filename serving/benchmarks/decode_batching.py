"""What batching can give a model before any request handling: its decode alone, in one run.

    python -m serving.benchmarks.decode_batching --export-base exports --model-name tfode \
        [--rows 1 16] [--threads 1 2] [--seconds 5] \
        [--tensorflow_intra_op_parallelism N] [--tensorflow_inter_op_parallelism N]

Loads the newest version through the session loader `serving.server` uses (its thread pools set
as the server's flags of the same names set them), then, for each batch size and number of
calling threads, runs the `decode` signature on the load test's sentences back to back for
`--seconds` and prints sentences/s, milliseconds per run, the cores this process kept busy and its
CPU time per sentence. A server that batches requests of one sentence into runs of R rows can
answer at most R rows' sentences/s; what it reaches below that is the cost of handling requests
(`serving.loadtest --compare` measures it on the same export).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from ..cli import add_export_arguments
from ..loadtest import SENTENCES


def measure(version, rows: int, threads: int, seconds: float) -> dict:
    """Runs `decode` on `rows` sentences from `threads` threads for `seconds`; returns the
    sentences/s, ms per run, cores used and CPU ms per sentence."""
    import numpy as np

    inputs = {"sentences": np.array((SENTENCES * (rows // len(SENTENCES) + 1))[:rows], dtype=object)}
    version.run("decode", inputs)  # the first run of a shape pays for its set-up
    runs = [0] * threads
    stop = time.perf_counter() + seconds

    def work(index):
        while time.perf_counter() < stop:
            version.run("decode", inputs)
            runs[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    cpu, start = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    total = sum(runs)
    return {"sentences_per_second": total * rows / wall, "ms_per_run": 1000 * wall * threads / total,
            "cores": cpu / wall, "cpu_ms_per_sentence": 1000 * cpu / (total * rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.benchmarks.decode_batching", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(parser)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 16], help="sentences per run (default: %(default)s)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="threads calling the session at once (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per setting (default: %(default)s)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="threads inside one op (0: TensorFlow chooses) (default: %(default)s)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="ops at once (0: TensorFlow chooses; negative: every op in the calling thread) (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.rows) < 1 or min(args.threads) < 1 or args.seconds <= 0:
        parser.error("--rows and --threads must be >= 1 and --seconds > 0")
    import tensorflow_text  # noqa: F401  (the graphs' text ops; loaded after the arguments are read)

    from ..model_manager import SessionThreads, load_newest

    threads = SessionThreads(args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism)
    try:
        version = load_newest(os.path.join(args.export_base, args.model_name), "decode", threads)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    version_number = version.version
    print(f"decode of {args.model_name} version {version_number}, session pools intra {threads.intra} "
          f"inter {threads.inter}, {os.cpu_count()} CPU cores, {args.seconds:g} s per row")
    print("| sentences per run | calling threads | sentences/s | ms per run | cores busy | CPU ms per sentence |")
    print("|---:|---:|---:|---:|---:|---:|")
    best = {}
    for rows in args.rows:
        for count in args.threads:
            result = measure(version, rows, count, args.seconds)
            best[rows] = max(best.get(rows, 0.0), result["sentences_per_second"])
            print(f"| {rows} | {count} | {result['sentences_per_second']:.1f} | {result['ms_per_run']:.2f} | "
                  f"{result['cores']:.2f} | {result['cpu_ms_per_sentence']:.3f} |", flush=True)
    smallest, largest = min(best), max(best)
    if largest != smallest:
        print(f"best sentences/s, {largest} rows per run against {smallest}: "
              f"{best[largest] / best[smallest]:.2f}×")
    version.retire()
    return 0


if __name__ == "__main__":
    sys.exit(main())
