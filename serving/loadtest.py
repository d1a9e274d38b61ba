"""Load test for a tfode model server (this project's or the stock one), loopback only.

Against a running server:

    python -m serving.loadtest --target 127.0.0.1:8500 [--rest | --mixed REST_PORT] \\
        --clients 8 --duration 60 [--workload mix|decode1] [--server-pid PID]

Unbatched against batched, one run, one table (starts the servers itself on free ports):

    python -m serving.loadtest --compare --export-base exports --model-name tfode \\
        --clients 32 --duration 60 [--batching-parameters-file F] [--server-args "FLAGS"]

N client threads (up to 64) send requests until the duration or `--max-requests` runs out:
`decode1` is one sentence per request (the serving case batching is for), `mix` a mix of decode,
interpolate and trajectory requests. It prints requests/s, p50/p95/p99 latency, errors, sheds
(RESOURCE_EXHAUSTED or UNAVAILABLE answers, counted apart from errors) and, where the server
exports Prometheus metrics, the mean batch size it formed (padding included). `--compare` runs
gRPC and REST against an unbatched server, a batched one and a batched one writing its gRPC
outputs as `tensor_content` over the same export, one after the other, and
prints the ratios and the CPU time each answered request cost the server and this client process
(Linux; the two share the machine's cores); `--server-args` gives both servers the same further
flags (for example their TensorFlow thread pools).
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import os
import random
import shlex
import socket
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

from .client import ServingClientError, TFServingClient

SENTENCES = [
    "i like your style .", "the pain was unbearable .", "he has a red car .",
    "we walk to school every day .", "she reads a long book .", "the cat sat on the mat .",
]
SHED_CODES = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
# The batched server of --compare: a batch can hold a request from every client; the timeout is
# a fraction of one batched run; one batch thread leaves the other core to the request threads.
DEFAULT_BATCHING = """max_batch_size { value: 32 }
batch_timeout_micros { value: 5000 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 4 }
"""
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def resident_megabytes(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used, all its threads (Linux `/proc`), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(before, after, requests) -> float | None:
    """Milliseconds of CPU per answered request between two `cpu_seconds` readings."""
    if before is None or after is None or not requests:
        return None
    return 1000.0 * (after - before) / requests


def check_loopback(target: str) -> None:
    host = target.rsplit(":", 1)[0].strip("[]")
    address = ipaddress.ip_address(socket.gethostbyname(host) if host != "::1" else host)
    if not address.is_loopback:
        raise SystemExit(f"error: {target} is not a loopback address; this tool only loads local servers")


def one_request(client: TFServingClient, rng: random.Random, workload: str) -> str:
    if workload == "decode1":
        client.decode([rng.choice(SENTENCES)])
        return "decode"
    kind = rng.choice(["decode", "decode", "interpolate", "trajectory"])
    if kind == "decode":
        client.decode(rng.sample(SENTENCES, 2))
    elif kind == "interpolate":
        a, b = rng.sample(SENTENCES, 2)
        client.interpolate([a], [b], steps=5, mode=rng.choice(["linear", "slerp"]))
    else:
        client.trajectory([rng.choice(SENTENCES)], np.linspace(0.0, 6.0, 13))
    return kind


class Result:
    """What one load run measured."""

    def __init__(self, latencies, errors, sheds, elapsed):
        self.latencies, self.errors, self.sheds, self.elapsed = latencies, errors, sheds, elapsed

    @property
    def every(self):
        return [value for values in self.latencies.values() for value in values]

    @property
    def throughput(self):
        return len(self.every) / self.elapsed

    def percentiles(self, values=None):
        values = self.every if values is None else values
        return np.percentile(np.array(values) * 1000, [50, 95, 99]) if values else (np.nan,) * 3


def run(targets, clients, duration, max_requests, model_name, workload="mix", seed=0) -> Result:
    """`targets`: `[(host:port, rest)]`, client i uses `targets[i % len(targets)]`."""
    deadline = time.monotonic() + duration
    latencies = collections.defaultdict(list)
    errors, sheds = collections.Counter(), collections.Counter()
    issued = 0
    lock = threading.Lock()

    def worker(index):
        nonlocal issued
        target, rest = targets[index % len(targets)]
        client = TFServingClient(target, model_name, rest=rest, timeout=30, tries=1)  # a shed is counted, not retried
        rng = random.Random(seed + index)
        while time.monotonic() < deadline:
            with lock:
                if max_requests and issued >= max_requests:
                    return
                issued += 1
            start = time.perf_counter()
            try:
                kind = one_request(client, rng, workload)
            except ServingClientError as error:
                with lock:
                    (sheds if error.code in SHED_CODES else errors)[error.code] += 1
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
    return Result(latencies, errors, sheds, time.monotonic() - started)


def batch_histogram(rest_target: str) -> tuple[float, float] | None:
    """(sum, count) of the server's processed batch sizes, from its Prometheus page."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://{rest_target}/monitoring/prometheus/metrics", timeout=10) as page:
            text = page.read().decode("utf-8")
    except OSError:
        return None
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == ":tensorflow:serving:batching_session:processed_batch_size":
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
    return total, count


def report_single(args) -> int:
    check_loopback(args.target)
    targets = [(args.target, args.rest)]
    if args.mixed:
        host = args.target.rsplit(":", 1)[0]
        targets = [(args.target, False), (f"{host}:{args.mixed}", True)]
    rss_before = resident_megabytes(args.server_pid) if args.server_pid else None
    result = run(targets, args.clients, args.duration, args.max_requests, args.model_name, args.workload)
    rss_after = resident_megabytes(args.server_pid) if args.server_pid else None
    protocol = "gRPC + REST" if args.mixed else ("REST" if args.rest else "gRPC")
    print(f"{protocol} {args.target}: {args.clients} clients, {result.elapsed:.1f} s, {len(result.every)} ok, "
          f"{sum(result.errors.values())} errors {dict(result.errors) if result.errors else ''}, "
          f"{sum(result.sheds.values())} shed {dict(result.sheds) if result.sheds else ''}")
    print(f"throughput {result.throughput:.1f} requests/s")
    for kind, values in sorted(result.latencies.items()) + [("all", result.every)]:
        if values:
            p50, p95, p99 = result.percentiles(values)
            print(f"  {kind:11s} n={len(values):5d}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms")
    if rss_before is not None and rss_after is not None:
        print(f"server RSS before {rss_before:.0f} MiB, after {rss_after:.0f} MiB "
              f"({rss_after - rss_before:+.0f} MiB)")
    return 0 if not result.errors else 1


def report_compare(args) -> int:
    from .launch import ServerProcess

    model_dir = os.path.join(args.export_base, args.model_name)
    if not os.path.isdir(model_dir):
        print(f"error: no model folder {model_dir}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        monitoring = os.path.join(folder, "monitoring.config")
        with open(monitoring, "w") as handle:
            handle.write(MONITORING)
        batching = args.batching_parameters_file
        if batching is None:
            batching = os.path.join(folder, "batching.config")
            with open(batching, "w") as handle:
                handle.write(DEFAULT_BATCHING)
        # A request waiting for its batch holds a gRPC thread (as in the stock server): enough
        # threads for every client; the third server writes outputs as tensor_content.
        common = ["--monitoring_config_file", monitoring, "--grpc_max_threads", str(max(64, args.clients))]
        batched = [*common, "--enable_batching", "--batching_parameters_file", batching]
        servers = {
            "unbatched": common,
            "batched": batched,
            "batched, tensor_content": [*batched, "--enable_serialization_as_tensor_content"],
        }
        rows = []
        for name, flags in servers.items():
            server = ServerProcess("--model_name", args.model_name, "--model_base_path", model_dir,
                                   "--file_system_poll_wait_seconds", "0", *shlex.split(args.server_args), *flags)
            try:
                for protocol in ("gRPC", "REST"):
                    target = server.rest if protocol == "REST" else server.grpc
                    run([(target, protocol == "REST")], args.clients, min(5.0, args.duration), 0,
                        args.model_name, args.workload)  # warm-up, not counted
                    before = batch_histogram(server.rest)
                    cpu_before = cpu_seconds(server.pid), cpu_seconds(os.getpid())
                    result = run([(target, protocol == "REST")], args.clients, args.duration, args.max_requests,
                                 args.model_name, args.workload)
                    cpu_after = cpu_seconds(server.pid), cpu_seconds(os.getpid())
                    after = batch_histogram(server.rest)
                    mean_batch = None
                    if name.startswith("batched") and before and after and after[1] > before[1]:
                        mean_batch = (after[0] - before[0]) / (after[1] - before[1])
                    cpu = [cpu_per_request(b, a, len(result.every)) for b, a in zip(cpu_before, cpu_after)]
                    rows.append((name, protocol, result, mean_batch, *cpu))
            finally:
                server.stop()
    print(f"workload {args.workload}: {args.clients} concurrent clients, {args.duration:g} s per row, "
          f"{os.cpu_count()} CPU cores, model {args.model_name} from {args.export_base}"
          + (f"; both servers with {args.server_args}" if args.server_args else ""))
    print("| server | API | requests/s | p50 ms | p95 ms | p99 ms | errors | sheds | mean batch "
          "| server CPU ms/request | client CPU ms/request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, protocol, result, mean_batch, server_cpu, client_cpu in rows:
        p50, p95, p99 = result.percentiles()
        batch = f"{mean_batch:.1f}" if mean_batch else "–"
        cpu = " | ".join(f"{value:.2f}" if value is not None else "–" for value in (server_cpu, client_cpu))
        print(f"| {name} | {protocol} | {result.throughput:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
              f"{sum(result.errors.values())} | {sum(result.sheds.values())} | {batch} | {cpu} |")
    table = {(name, protocol): result for name, protocol, result, *_ in rows}
    for protocol in ("gRPC", "REST"):
        plain, batched = table[("unbatched", protocol)], table[("batched", protocol)]
        print(f"{protocol}: batched / unbatched throughput {batched.throughput / plain.throughput:.2f}×; "
              f"p99 {batched.percentiles()[2]:.1f} against {plain.percentiles()[2]:.1f} ms")
    typed, content = table[("batched", "gRPC")], table[("batched, tensor_content", "gRPC")]
    print(f"batched gRPC: typed fields / tensor_content throughput {typed.throughput / content.throughput:.2f}×; "
          f"p99 {typed.percentiles()[2]:.1f} against {content.percentiles()[2]:.1f} ms")
    grpc, rest = table[("batched", "gRPC")], table[("batched", "REST")]
    print(f"batched: REST / gRPC throughput {rest.throughput / grpc.throughput:.2f}×")
    return 0 if not any(result.errors for _, _, result, *_ in rows) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:8500", help="host:port, loopback only (default: %(default)s)")
    parser.add_argument("--rest", action="store_true", help="REST instead of gRPC")
    parser.add_argument("--mixed", type=int, metavar="REST_PORT",
                        help="half the clients on gRPC at --target, half on REST at this port of the same host")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, 1–64 (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run (at most 600) (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=0, help="stop after this many (0: no cap) (default: %(default)s)")
    parser.add_argument("--workload", choices=["mix", "decode1"], default="mix",
                        help="decode1: one sentence per request; mix: decode, interpolate, trajectory (default: %(default)s)")
    parser.add_argument("--model-name", default="tfode", help="the model's name on the server (default: %(default)s)")
    parser.add_argument("--server-pid", type=int, help="report this process's RSS before and after")
    parser.add_argument("--compare", action="store_true",
                        help="start an unbatched and a batched server on --export-base and compare them")
    parser.add_argument("--export-base", help="with --compare: the export folder (holds MODEL_NAME/VERSION)")
    parser.add_argument("--batching-parameters-file", help="with --compare: the batched server's parameters; none: max_batch_size 32, "
                        "batch_timeout_micros 5000, num_batch_threads 1")
    parser.add_argument("--server-args", default="",
                        help="with --compare: more flags for both servers, as one string "
                        "(e.g. \"--tensorflow_intra_op_parallelism 1 --tensorflow_inter_op_parallelism -1\")")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 0 < args.duration <= 600:
        parser.error("--clients must be 1–64 and --duration 0–600 s")
    if args.compare:
        given = [flag for flag, value in (("--rest", args.rest), ("--mixed", args.mixed), ("--server-pid", args.server_pid))
                 if value]
        if given:
            parser.error(f"{', '.join(given)} does not apply with --compare (it starts its own servers)")
        if not args.export_base:
            parser.error("--compare needs --export-base")
        try:
            return report_compare(args)
        except RuntimeError as error:  # a server that did not start: its own message
            print(f"error: {error}", file=sys.stderr)
            return 2
    for flag, value in (("--export-base", args.export_base), ("--batching-parameters-file", args.batching_parameters_file),
                        ("--server-args", args.server_args)):
        if value:
            parser.error(f"{flag} applies only with --compare")
    if args.rest and args.mixed:
        parser.error("--rest and --mixed exclude each other")
    return report_single(args)


if __name__ == "__main__":
    sys.exit(main())
