"""What the serving commands share on their command line (standard library only)."""

import argparse
import signal
import threading




def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """--export-base and --model-name: the exported model a benchmark serves."""
    parser.add_argument("--export-base", required=True, help="the export folder (holds MODEL_NAME/VERSION)")
    parser.add_argument("--model-name", default="tfode", help="the model's folder under --export-base (default: %(default)s)")


def run_until_stopped(start) -> None:
    """Calls `start()` and blocks until the process gets SIGINT or SIGTERM (handled from before
    `start`, so a signal during start-up is not lost)."""
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    start()
    stopped.wait()
