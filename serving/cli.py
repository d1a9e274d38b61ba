"""What the serving commands share on their command line (standard library only)."""

import argparse
import signal
import threading


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's docstring as written, and each flag's default: once, and not when there is
    none (a help text may state its default itself, in words)."""

    def _get_help_string(self, action):
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """--export-base and --model-name: the exported model a benchmark serves."""
    parser.add_argument("--export-base", required=True, help="the export folder (holds MODEL_NAME/VERSION)")
    parser.add_argument("--model-name", default="tfode", help="the model's folder under --export-base")


def run_until_stopped(start) -> None:
    """Calls `start()` and blocks until the process gets SIGINT or SIGTERM (handled from before
    `start`, so a signal during start-up is not lost)."""
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    start()
    stopped.wait()
