"""What the benchmarks share: the default data, how a results file names its command, machine
and settings. No benchmark imports another; each imports this."""

from __future__ import annotations

import datetime
import os
import platform
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA = os.path.join("..", "shared", "data", "fra-eng-dev.zip")


def data_missing(data) -> bool:
    """True (and says so on stderr) when `data` is neither a file nor a built-in source."""
    if os.path.exists(data) or data in ("tatoeba", "synthetic"):
        return False
    print(f"error: no data at {data}", file=sys.stderr)
    return True


def relative_path(path: str) -> str:
    """An absolute path inside or beside the repository, written relative to it."""
    if not os.path.isabs(path):
        return path
    return os.path.relpath(path, REPOSITORY)


def relative_command(program: str, argv) -> str:
    """The command line as a reader of the results runs it: paths relative to the repository,
    each argument quoted for the shell where it needs it (`--train noise="--input-noise 0.1"`)."""
    import shlex

    return " ".join([program, *(shlex.quote(relative_path(arg)) for arg in argv)]).strip()


def measured_on() -> str:
    """The results files' "when and where" line."""
    return (f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
            f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU, with")


def settings_line(config) -> str:
    """The shared training settings in words, e.g. "hidden 256, bidirectional encoder, …"."""
    parts = [
        f"hidden {config['units']}",
        "bidirectional encoder" if config["bidirectional"] else "encoder reads forward",
        "readout tied to the encoder's embeddings" if config["tied_embeddings"] else "untied readout",
        f"batch {config['batch_size']}",
        f"Adam {config['learning_rate']:g}",
        f"clipnorm {config['clipnorm']:g}",
    ]
    if config["lr_schedule"] == "cosine":
        parts.append(f"{config['warmup_steps']}-step warm-up, cosine decay to the end of the budget")
    else:
        parts.append("learning rate halved on validation-loss plateaus")
    if config["dropout"]:
        parts.append(f"dropout {config['dropout']:g} on embeddings and read-out states")
    if config["word_dropout"]:
        parts.append(f"word dropout {config['word_dropout']:g}")
    return ", ".join(parts)
