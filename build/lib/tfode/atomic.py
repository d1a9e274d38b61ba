"""Writing files and folders atomically: a reader sees the old version or the new one, never half.

    with atomic.replacing(path) as temporary:
        write(temporary)            # a file or a folder, beside `path`

On success the temporary is renamed onto `path` (a folder already there is moved aside first and
deleted after); on an exception it is deleted and `path` is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def replacing(path: str, suffix: str = ""):
    """Yields a temporary path in `path`'s folder (hidden, unique, ending in `suffix`)."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".tmp-{name}-{os.getpid()}-{time.monotonic_ns()}{suffix}")
    try:
        yield temporary
        if os.path.isdir(path) and not os.path.islink(path):
            retired = temporary + ".old"
            os.rename(path, retired)
            os.rename(temporary, path)
            _remove(retired)
        else:
            os.replace(temporary, path)
    finally:
        _remove(temporary)


def write_text(path: str, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    with replacing(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
