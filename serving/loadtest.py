"""Load test for a tfode model server (this project's or the stock one), loopback only.

    python -m serving.loadtest --target 127.0.0.1:8500 [--rest] --clients 8 --duration 60 \\
        [--max-requests N] [--server-pid PID]

N client threads send a mix of decode, interpolate and trajectory requests until the duration or
the request count runs out, then it prints requests/s, p50/p99 latency per kind and overall, the
error count by status, and with `--server-pid` the server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import random
import socket
import sys
import threading
import time

import numpy as np

from serving.client import ServingClientError, TFServingClient

SENTENCES = [
    "i like your style .", "the pain was unbearable .", "he has a red car .",
    "we walk to school every day .", "she reads a long book .", "the cat sat on the mat .",
]



class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's docstring as written, and each flag's default."""

def resident_megabytes(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def check_loopback(target: str) -> None:
    host = target.rsplit(":", 1)[0].strip("[]")
    address = ipaddress.ip_address(socket.gethostbyname(host) if host != "::1" else host)
    if not address.is_loopback:
        raise SystemExit(f"error: {target} is not a loopback address; this tool only loads local servers")


def one_request(client: TFServingClient, rng: random.Random):
    kind = rng.choice(["decode", "decode", "interpolate", "trajectory"])
    if kind == "decode":
        client.decode(rng.sample(SENTENCES, 2))
    elif kind == "interpolate":
        a, b = rng.sample(SENTENCES, 2)
        client.interpolate([a], [b], num_steps=5, mode=rng.choice(["linear", "slerp"]))
    else:
        client.trajectory([rng.choice(SENTENCES)], np.linspace(0.0, 6.0, 13))
    return kind


def run(target, rest, clients, duration, max_requests, model_name, seed=0):
    deadline = time.monotonic() + duration
    latencies = collections.defaultdict(list)
    errors = collections.Counter()
    issued = 0
    lock = threading.Lock()

    def worker(index):
        nonlocal issued
        client = TFServingClient(target, model_name, rest=rest, timeout=30)
        rng = random.Random(seed + index)
        while time.monotonic() < deadline:
            with lock:
                if max_requests and issued >= max_requests:
                    return
                issued += 1
            start = time.perf_counter()
            try:
                kind = one_request(client, rng)
            except ServingClientError as error:
                with lock:
                    errors[error.code] += 1
                continue
            except Exception as error:  # transport failures count too
                with lock:
                    errors[type(error).__name__] += 1
                continue
            with lock:
                latencies[kind].append(time.perf_counter() - start)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 60)
    elapsed = time.monotonic() - started
    return latencies, errors, elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:8500", help="host:port, loopback only")
    parser.add_argument("--rest", action="store_true", help="REST instead of gRPC")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (at most 600)")
    parser.add_argument("--max-requests", type=int, default=0, help="stop after this many (0: no cap)")
    parser.add_argument("--model-name", default="tfode")
    parser.add_argument("--server-pid", type=int, help="report this process's RSS before and after")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 0 < args.duration <= 600:
        print("error: --clients must be 1–64 and --duration 0–600 s", file=sys.stderr)
        return 2
    check_loopback(args.target)
    rss_before = resident_megabytes(args.server_pid) if args.server_pid else None
    latencies, errors, elapsed = run(args.target, args.rest, args.clients, args.duration,
                                     args.max_requests, args.model_name)
    rss_after = resident_megabytes(args.server_pid) if args.server_pid else None
    every = [value for values in latencies.values() for value in values]
    protocol = "REST" if args.rest else "gRPC"
    print(f"{protocol} {args.target}: {args.clients} clients, {elapsed:.1f} s, {len(every)} ok, "
          f"{sum(errors.values())} errors {dict(errors) if errors else ''}")
    print(f"throughput {len(every) / elapsed:.1f} requests/s")
    for kind, values in sorted(latencies.items()) + [("all", every)]:
        if values:
            p50, p99 = np.percentile(np.array(values) * 1000, [50, 99])
            print(f"  {kind:11s} n={len(values):5d}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    if rss_before is not None and rss_after is not None:
        print(f"server RSS before {rss_before:.0f} MiB, after {rss_after:.0f} MiB "
              f"({rss_after - rss_before:+.0f} MiB)")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
