"""A model server that speaks TF Serving's API, for development, tests and small deployments.

    python -m serving.server --model_name NAME --model_base_path BASE/NAME \\
        --port 8500 --rest_api_port 8501 [--enable_batching [--batching_parameters_file F]] \\
        [--monitoring_config_file M]
    python -m serving.server --model_config_file models.config --port 8500 --rest_api_port 8501

gRPC: tensorflow.serving.PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus, HandleReloadConfigRequest). REST: GET /v1/models/NAME[/versions/N |
/labels/L][/metadata] and POST …:predict with the "instances" (row) or "inputs" (columnar)
JSON; with --monitoring_config_file, GET /monitoring/prometheus/metrics. Clients written against
it work unchanged against the stock `tensorflow/serving` image; its flags are the stock ones
where the stock server has them (docs/serving.md lists the differences).

It listens on 127.0.0.1 unless `--host` says otherwise. Without batching, up to
`--max_concurrent` requests run at once, `--max_queued` more wait, the rest are shed with
RESOURCE_EXHAUSTED (HTTP 429); with `--enable_batching`, concurrent requests are joined into
server-side batches (serving/batching.py) and a full batch queue sheds with UNAVAILABLE (503).
SIGTERM or SIGINT stops taking requests, lets the running ones finish (up to `--drain_seconds`)
and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from serving.cli import HelpFormatter

# TensorFlow loads only once the arguments are read (serving.frontends), so --help answers at once.


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=HelpFormatter)
    add = parser.add_argument
    add("--model_name", default="default", help="the name clients put in model_spec (with --model_base_path)")
    add("--model_base_path", help="folder of integer version folders (one model)")
    add("--model_config_file", help="ModelServerConfig text proto: several models, version policies and labels")
    add("--model_config_file_poll_wait_seconds", type=float, default=0.0,
        help="how often to reread --model_config_file (0: never)")
    add("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    add("--rest_api_port", type=int, default=0, help="REST port (0: no REST, as in the stock server)")
    add("--host", default="127.0.0.1",
        help="address to listen on; loopback by default, pass 0.0.0.0 deliberately to listen elsewhere")
    add("--file_system_poll_wait_seconds", type=float, default=1.0,
        help="how often to look for versions (0: once at start; negative: never)")
    add("--enable_batching", nargs="?", const=True, default=False, type=_boolean, metavar="BOOL",
        help="join concurrent requests into server-side batches (--enable_batching or --enable_batching=true)")
    add("--batching_parameters_file", help="BatchingParameters text proto (with --enable_batching)")
    add("--enable_model_warmup", nargs="?", const=True, default=True, type=_boolean, metavar="BOOL",
        help="replay each version's assets.extra/tf_serving_warmup_requests before serving it")
    add("--monitoring_config_file", help="MonitoringConfig text proto enabling Prometheus metrics on the REST port")
    add("--max_versions", type=int, default=None,
        help="with --model_base_path: how many newest versions are served (latest { num_versions }; 1)")
    add("--max_batch_size", type=int, default=256, help="most rows in one request")
    add("--max_request_bytes", type=int, default=4 << 20, help="largest request")
    add("--max_concurrent", type=int, default=2, help="unbatched requests run at once")
    add("--max_queued", type=int, default=32, help="unbatched requests waiting beyond those; more are shed")
    add("--tensorflow_session_parallelism", type=int, default=0,
        help="threads of each TensorFlow session, both pools (0: TensorFlow's choice)")
    add("--tensorflow_intra_op_parallelism", type=int, default=0,
        help="threads inside one op (with --tensorflow_inter_op_parallelism, instead of the above)")
    add("--tensorflow_inter_op_parallelism", type=int, default=0,
        help="ops run at once; negative: every op in the calling thread")
    add("--drain_seconds", type=float, default=10.0, help="grace period on SIGTERM")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from serving.frontends import Server

    try:
        server = Server(args)
    except (OSError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    server.start()
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
