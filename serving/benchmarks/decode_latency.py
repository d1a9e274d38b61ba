"""Decode latency in-process, through the gRPC server and through REST, in one run.

    python -m serving.benchmarks.decode_latency --export-base exports --model-name tfode [--requests 200]

Loads the newest version with `tf.saved_model.load` for the in-process figures, starts
`serving.server` on free loopback ports over the same folder, and times `--requests` sequential
decode requests of 1 sentence and of a batch of 32 on each path; prints p50/p99 and the ratios
to in-process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ..cli import add_export_arguments
from ..client import TFServingClient
from ..launch import ServerProcess
from ..loadtest import SENTENCES


def percentiles(seconds):
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return p50, p99


def time_calls(call, requests, warmup=5):
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return percentiles(durations)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.benchmarks.decode_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(parser)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per path (default: %(default)s)")
    args = parser.parse_args(argv)
    import tensorflow as tf  # after the arguments, so that --help answers at once
    import tensorflow_text  # noqa: F401  (the graphs' text ops)

    from ..model_manager import versions_on_disk

    model_dir = os.path.join(args.export_base, args.model_name)
    versions = versions_on_disk(model_dir)
    if not versions:
        print(f"error: no version under {model_dir}", file=sys.stderr)
        return 2
    decode = tf.saved_model.load(versions[max(versions)]).signatures["decode"]
    batches = {1: SENTENCES[:1], 32: (SENTENCES * 6)[:32]}

    server = ServerProcess("--model_name", args.model_name, "--model_base_path", model_dir)
    try:
        grpc_client = TFServingClient(server.grpc, args.model_name)
        rest_client = TFServingClient(server.rest, args.model_name, rest=True)
        rows = []
        for size, sentences in batches.items():
            tensor = tf.constant(sentences)
            local = time_calls(lambda: decode(sentences=tensor), args.requests)
            over_grpc = time_calls(lambda: grpc_client.decode(sentences), args.requests)
            over_rest = time_calls(lambda: rest_client.decode(sentences), args.requests)
            rows.append((size, local, over_grpc, over_rest))
    finally:
        server.stop()
    print(f"decode latency, version {versions[-1]}, {args.requests} sequential requests each, "
          f"{os.cpu_count()} CPU cores")
    print("| batch | path | p50 ms | p99 ms | p50 × in-process |")
    print("|---:|---|---:|---:|---:|")
    for size, local, over_grpc, over_rest in rows:
        for name, (p50, p99) in (("in-process", local), ("gRPC", over_grpc), ("REST", over_rest)):
            print(f"| {size} | {name} | {p50:.1f} | {p99:.1f} | {p50 / local[0]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
