"""A model server that speaks TF Serving's API: a stand-in for `tensorflow_model_server`.

    python -m serving.server --model_name NAME --model_base_path BASE/NAME \\
        --port 8500 --rest_api_port 8501 [--enable_batching [--batching_parameters_file F]] \\
        [--monitoring_config_file M]
    python -m serving.server --model_config_file models.config --port 8500 --rest_api_port 8501

gRPC: tensorflow.serving.PredictionService (Predict, GetModelMetadata), ModelService
(GetModelStatus, HandleReloadConfigRequest) and, with --enable_grpc_healthcheck_service,
grpc.health.v1.Health. REST: GET /v1/models/NAME[/versions/N | /labels/L][/metadata] and POST
…:predict with the "instances" (row) or "inputs" (columnar) JSON; with --monitoring_config_file,
GET of its Prometheus path.

Every flag of the stock server is accepted under its name and default (model_servers/main.cc);
those that mean nothing here are named in one warning line at start-up, and the two that would
secure the channel (--ssl_config_file, --use_alts_credentials) are refused rather than ignored.
Like the stock server it listens on every interface; --host narrows that (the tests and
benchmarks use 127.0.0.1). This server's own flags (--host, --max_versions,
--max_request_rows, --max_request_bytes, --max_concurrent, --max_queued, --drain_seconds) share
no name with a stock flag or a batching parameter. SIGTERM or SIGINT stops taking requests, lets
the running ones finish (up to --drain_seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .cli import run_until_stopped

# TensorFlow loads only once the arguments are read (serving.model_server), so --help and
# --version answer at once.

INT32_MAX = 2**31 - 1


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# The stock flags this server does not act on, with their stock types and defaults: accepted,
# named in one warning when given.
NO_EFFECT = {
    "rest_api_num_threads": (int, 4 * _cores()),
    "rest_api_enable_cors_support": (bool, False),
    "allow_version_labels_for_unavailable_models": (bool, False),
    "enable_per_model_batching_parameters": (bool, False),
    "num_load_threads": (int, 0),
    "num_unload_threads": (int, 0),
    "flush_filesystem_caches": (bool, True),
    "tensorflow_session_config_file": (str, ""),
    "platform_config_file": (str, ""),
    "per_process_gpu_memory_fraction": (float, 0.0),
    "remove_unused_fields_from_bundle_metagraph": (bool, True),
    "prefer_tflite_model": (bool, False),
    "num_tflite_pools": (int, 1),
    "num_tflite_interpreters_per_pool": (int, 1),
    "enable_signature_method_name_check": (bool, False),
    "xla_cpu_compilation_enabled": (bool, False),
    "xla_gpu_compilation_enabled": (bool, False),
    "enable_profiler": (bool, True),
    "thread_pool_factory_config_file": (str, ""),
    "mixed_precision": (str, ""),
    "skip_initialize_tpu": (bool, False),
}
# Stock flags that would secure the channel: refused when set, never silently ignored.
REFUSED = {"ssl_config_file": (str, ""), "use_alts_credentials": (bool, False)}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument

    def flag(name, **kwargs):  # a boolean stock flag: --name, --name=true or --name=false
        add(name, nargs="?", const=True, type=_boolean, metavar="BOOL", **kwargs)

    stock = parser.add_argument_group("stock flags (tensorflow_model_server's names and defaults)")
    add = stock.add_argument
    add("--port", type=int, default=8500, help="gRPC port (0: any free port) (default: %(default)s)")
    add("--grpc_socket_path", default="", help="also listen for gRPC on this UNIX socket")
    add("--rest_api_port", type=int, default=0, help="REST port (0: no REST) (default: %(default)s)")
    add("--rest_api_timeout_in_ms", type=int, default=30000, help="time limit of a REST predict (default: %(default)s)")
    add("--model_name", default="default", help="the name clients put in model_spec (with --model_base_path) (default: %(default)s)")
    add("--model_base_path", default="", help="folder of integer version folders (one model); any tf.io.gfile path")
    add("--model_config_file", default="", help="ModelServerConfig text proto: several models, version policies, labels")
    add("--model_config_file_poll_wait_seconds", type=float, default=0,
        help="how often to reread --model_config_file (0: never; fractions allowed here) (default: %(default)s)")
    add("--file_system_poll_wait_seconds", type=float, default=1,
        help="how often to look for versions (0: once at start; negative: never; fractions allowed here) (default: %(default)s)")
    add("--max_num_load_retries", type=int, default=5, help="times a failed load is tried again (default: %(default)s)")
    add("--load_retry_interval_micros", type=int, default=60_000_000,
        help="wait between load retries (negative: none) (default: %(default)s)")
    add("--saved_model_tags", default="serve", help="comma-separated tags of the MetaGraph to load (default: %(default)s)")
    flag("--enable_batching", default=False, help="join concurrent requests into server-side batches (default: %(default)s)")
    add("--batching_parameters_file", default="", help="BatchingParameters text proto (with --enable_batching)")
    flag("--enable_model_warmup", default=True,
         help="replay each version's assets.extra/tf_serving_warmup_requests before serving it (default: %(default)s)")
    add("--num_request_iterations_for_warmup", type=int, default=1, help="times each warm-up record is replayed (default: %(default)s)")
    add("--monitoring_config_file", default="", help="MonitoringConfig text proto enabling Prometheus metrics")
    add("--tensorflow_session_parallelism", type=int, default=0,
        help="threads of each TensorFlow session, both pools (0: TensorFlow's choice) (default: %(default)s)")
    add("--tensorflow_intra_op_parallelism", type=int, default=0, help="threads inside one op (default: %(default)s)")
    add("--tensorflow_inter_op_parallelism", type=int, default=0,
        help="ops run at once; negative: every op in the calling thread (default: %(default)s)")
    add("--grpc_max_threads", type=int, default=4 * _cores(), help="gRPC worker threads (stock: 4 × cores) (default: %(default)s)")
    add("--grpc_channel_arguments", default="", help="comma-separated gRPC server arguments, key=value")
    flag("--enable_grpc_healthcheck_service", default=False, help="serve grpc.health.v1.Health (default: %(default)s)")
    flag("--enable_serialization_as_tensor_content", default=False,
         help="write Predict outputs in tensor_content instead of their typed fields (default: %(default)s)")
    flag("--version", default=False, help="print the version and exit (default: %(default)s)")
    for name, (kind, default) in {**NO_EFFECT, **REFUSED}.items():
        if kind is bool:
            flag(f"--{name}", default=default, help=argparse.SUPPRESS)
        else:
            add(f"--{name}", type=kind, default=default, help=argparse.SUPPRESS)

    own = parser.add_argument_group("this server's own flags")
    add = own.add_argument
    add("--host", default="0.0.0.0", help="address to listen on (every interface, as stock; 127.0.0.1: loopback only) (default: %(default)s)")
    add("--max_versions", type=int, default=None,
        help="with --model_base_path: how many newest versions are served (latest { num_versions }; 1)")
    add("--max_request_rows", type=int, default=0, help="most text rows in one request (0: no bound, as stock) (default: %(default)s)")
    add("--max_request_bytes", type=int, default=INT32_MAX, help="largest request (stock: INT32_MAX) (default: %(default)s)")
    add("--max_concurrent", type=int, default=0,
        help="admission: unbatched requests run at once, more wait and beyond --max_queued are shed "
             "with RESOURCE_EXHAUSTED / 429 (0: off, as stock) (default: %(default)s)")
    add("--max_queued", type=int, default=32, help="admission: requests that may wait (with --max_concurrent) (default: %(default)s)")
    add("--drain_seconds", type=float, default=10.0, help="grace period on SIGTERM (default: %(default)s)")
    return parser


def given_without_effect(args) -> list[str]:
    """The no-effect stock flags set to something other than their default."""
    return sorted(f"--{name}" for name, (_, default) in NO_EFFECT.items() if getattr(args, name) != default)


def version_lines() -> str:
    from importlib import metadata

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return (f"TensorFlow ModelServer: tfode-serving {installed('tfode')} "
            f"(TF Serving API {installed('tensorflow-serving-api')})\n"
            f"TensorFlow Library: {installed('tensorflow')}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(version_lines())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in REFUSED:
        if getattr(args, name):
            print(f"error: --{name} is not supported: this server has no TLS or ALTS channel; put a "
                  "TLS-terminating proxy in front of it instead of serving in plain text", file=sys.stderr)
            return 2
    ignored = given_without_effect(args)
    if ignored:
        logging.getLogger("serving.server").warning("these flags have no effect on this server: %s",
                                                    " ".join(ignored))
    from .model_server import ModelServer

    try:
        server = ModelServer(args)
    except (OSError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_until_stopped(server.start)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
