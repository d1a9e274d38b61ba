"""A model server that speaks TF Serving's API, for development, tests and small deployments.

    python -m serving.server --model_name NAME --model_base_path BASE/NAME \\
        --port 8500 --rest_api_port 8501

gRPC: tensorflow.serving.PredictionService (Predict, GetModelMetadata) and
ModelService.GetModelStatus. REST: GET /v1/models/NAME[/versions/N][/metadata] and
POST /v1/models/NAME[/versions/N]:predict with the "instances" (row) or "inputs" (columnar) JSON.
Clients written against it work unchanged against the stock `tensorflow/serving` image.

It listens on 127.0.0.1 unless `--host` says otherwise. Requests are queued, not batched: up to
`--max_concurrent` run at once, `--max_queued` more wait, the rest are shed with
RESOURCE_EXHAUSTED (HTTP 429). SIGTERM or SIGINT stops taking requests, lets the running ones
finish (up to `--drain_seconds`) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

# TensorFlow loads only once the arguments are read (serving.frontends), so --help answers at once.


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model_name", required=True, help="the name clients put in model_spec")
    add("--model_base_path", required=True, help="folder of integer version folders")
    add("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    add("--rest_api_port", type=int, default=8501, help="REST port (0: any free port, -1: no REST)")
    add("--host", default="127.0.0.1",
        help="address to listen on; loopback by default, pass 0.0.0.0 deliberately to listen elsewhere")
    add("--file_system_poll_wait_seconds", type=float, default=1.0, help="how often to look for versions")
    add("--max_versions", type=int, default=2, help="how many newest versions stay loaded")
    add("--max_batch_size", type=int, default=256, help="most rows in one request")
    add("--max_request_bytes", type=int, default=4 << 20, help="largest request")
    add("--max_concurrent", type=int, default=2, help="requests run at once")
    add("--max_queued", type=int, default=32, help="requests waiting beyond those; more are shed")
    add("--session_threads", type=int, default=0, help="TensorFlow threads per session (0: default)")
    add("--drain_seconds", type=float, default=10.0, help="grace period on SIGTERM")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from serving.frontends import Server

    try:
        server = Server(args)
    except (OSError, RuntimeError) as error:
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
