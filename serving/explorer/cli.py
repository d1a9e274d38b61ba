"""tfode-explore: an interactive view of a served tfode model's hidden dynamics and latent paths.

    tfode-explore --export-base exports --model-name tfode --port 8600
    tfode-explore --server http://HOST:PORT --model-name tfode --port 8600

With --export-base it starts a batched model server (`serving.server`, the packaged
batching.config) for the models BASE/NAME and stops it on exit; with --server it uses the REST
API of a running one (this project's or tensorflow_model_server). --model-name may be repeated:
the page offers each model (e.g. one export per solver) in a menu. Open the printed address.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from ..cli import run_until_stopped

BATCHING_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "batching.config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfode-explore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--export-base", help="the folder holding NAME/VERSION/ SavedModels: a model server is started for it")
    where.add_argument("--server", help="the REST address of a running model server, http://HOST:PORT")
    parser.add_argument("--model-name", action="append", required=True,
                        help="a served model's name (repeat for several)")
    parser.add_argument("--port", type=int, default=8600, help="the explorer's port (0: a free one) (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="the explorer's interface (0.0.0.0: every one) (default: %(default)s)")
    parser.add_argument("--max-rows", type=int,
                        help="rows the page puts in one request, at most the server's max_batch_size "
                             "(default: max_batch_size of the packaged batching.config)")
    return parser


def packaged_max_batch_size() -> int:
    from ..batching import BatchingParameters

    return BatchingParameters.from_file(BATCHING_CONFIG).max_batch_size


def model_config(export_base: str, names) -> str:
    """The `ModelServerConfig` text serving each name from `export_base/name`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in names:
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, os.path.abspath(os.path.join(export_base, name)), "tensorflow"
    return text_format.MessageToString(config)


def start_model_server(export_base: str, names, folder: str):
    """A batched `serving.server` subprocess serving `names` from `export_base`."""
    from ..launch import ServerProcess

    missing = [name for name in names if not os.path.isdir(os.path.join(export_base, name))]
    if missing:
        raise ValueError(f"{export_base} holds no model folder {', '.join(missing)} (export one with tfode-export)")
    config_file = os.path.join(folder, "models.config")
    with open(config_file, "w", encoding="utf-8") as handle:
        handle.write(model_config(export_base, names))
    return ServerProcess("--model_config_file", config_file, "--enable_batching",
                         "--batching_parameters_file", BATCHING_CONFIG)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .app import ExplorerServer

    if len(set(args.model_name)) != len(args.model_name):
        print("error: a --model-name is given twice", file=sys.stderr)
        return 2
    max_rows = args.max_rows or packaged_max_batch_size()
    if args.export_base and args.max_rows:
        print("error: --max-rows applies with --server (the started server batches by the packaged batching.config)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tfode-explore-") as folder:
        model_server = None
        try:
            if args.export_base:
                print("starting the model server…", flush=True)
                model_server = start_model_server(args.export_base, args.model_name, folder)
            rest = model_server.rest if model_server else args.server
            explorer = ExplorerServer(args.host, args.port, rest, args.model_name, max_rows)
        except (ValueError, RuntimeError, OSError) as error:
            if model_server:
                model_server.stop()
            print(f"error: {error}", file=sys.stderr)
            return 2
        def start():
            explorer.start()
            print(f"tfode explorer at {explorer.address} (model server REST at {rest}); Ctrl-C stops it", flush=True)

        run_until_stopped(start)
        explorer.shutdown()
        explorer.server_close()
        if model_server:
            model_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
