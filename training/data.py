"""Sentence loaders: the built-in grammar, Tatoeba/Anki pair files (plain or zipped), plain text.

`load_sentences(source)` takes "synthetic", "tatoeba" or a path and returns a `Loaded`: the
sentences in file order and how many lines were skipped (and why). Malformed lines are counted,
never fatal; a missing or unreadable file, or one with no usable sentence, is a `DataError`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
import zipfile
from typing import NamedTuple

from . import grammar

TATOEBA_URL = "https://www.manythings.org/anki/fra-eng.zip"
TATOEBA_ENV = "TFODE_TATOEBA"  # a local copy of the zip, used instead of downloading
CACHE_ENV = "TFODE_CACHE"


class DataError(ValueError):
    """A data source that cannot be used; the message says why."""


class Loaded(NamedTuple):
    sentences: list[str]
    skipped: int
    source: str


def load_sentences(source: str, synthetic_size: int = 6000, seed: int = 0) -> Loaded:
    """Sentences from "synthetic" (the built-in grammar), "tatoeba" (download or `$TFODE_TATOEBA`)
    or a file path (`.zip` holding an Anki pair file, a pair file, or plain text)."""
    if source == "synthetic":
        return Loaded(grammar.corpus(synthetic_size, seed), 0, "synthetic")
    if source == "tatoeba":
        source = os.environ.get(TATOEBA_ENV) or download_tatoeba()
    if not os.path.exists(source):
        raise DataError(f"No data file at {source!r} (expected 'synthetic', 'tatoeba' or a path).")
    if zipfile.is_zipfile(source):
        return _load_zip(source)
    with open(source, "rb") as handle:
        return _parse_lines(handle.read().splitlines(), source)


def _load_zip(path: str) -> Loaded:
    with zipfile.ZipFile(path) as archive:
        names = [
            name for name in archive.namelist()
            if name.endswith(".txt") and not os.path.basename(name).startswith("_")
        ]
        if len(names) != 1:
            raise DataError(f"{path}: expected one sentence file in the zip, found {names}.")
        return _parse_lines(archive.read(names[0]).splitlines(), f"{path}:{names[0]}")


def _parse_lines(lines: list[bytes], source: str) -> Loaded:
    """Pair format (`English<TAB>French[<TAB>attribution]`) when any line has a tab, else one
    sentence a line. Undecodable, empty and (in pair files) tab-less lines are skipped."""
    pairs = any(b"\t" in line for line in lines[:1000])
    sentences, skipped = [], 0
    for raw in lines:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped += 1
            continue
        if pairs:
            columns = line.split("\t")
            if len(columns) not in (2, 3) or not columns[0].strip():
                skipped += 1
                continue
            line = columns[0].strip()
        if not line:
            skipped += 1 if pairs else 0
            continue
        sentences.append(" ".join(line.split()))
    if not sentences:
        raise DataError(f"{source}: no sentences found ({skipped} lines skipped).")
    return Loaded(sentences, skipped, source)


def download_tatoeba(cache_dir: str | None = None, url: str = TATOEBA_URL, sha256: str | None = None) -> str:
    """Downloads the public Anki/Tatoeba zip once into the cache and returns its path.

    Resumes a partial download (HTTP Range), shows progress on stderr, and checks the file's
    SHA-256 against `sha256` when given, else against the digest recorded at first download.
    """
    cache_dir = cache_dir or os.environ.get(CACHE_ENV) or os.path.expanduser("~/.cache/tfode")
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, os.path.basename(url))
    digest_path = target + ".sha256"
    if not os.path.exists(target):
        partial = target + ".part"
        offset = os.path.getsize(partial) if os.path.exists(partial) else 0
        request = urllib.request.Request(url, headers={"User-Agent": "tfode", "Range": f"bytes={offset}-"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response, open(partial, "ab") as out:
                if response.status != 206:  # the server ignored the range: start again
                    out.truncate(0)
                    offset = 0
                total = offset + int(response.headers.get("Content-Length", 0))
                done = offset
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if total:
                        print(f"\rdownloading {url}: {100 * done / total:5.1f}%", end="", file=sys.stderr)
                print(file=sys.stderr)
        except OSError as error:
            raise DataError(
                f"Could not download {url} ({error}); set ${TATOEBA_ENV} to a local copy or pass "
                "--data PATH."
            ) from error
        os.replace(partial, target)
    actual = _sha256(target)
    expected = sha256 or (open(digest_path).read().strip() if os.path.exists(digest_path) else None)
    if expected and actual != expected:
        raise DataError(f"{target}: SHA-256 {actual} does not match the expected {expected}; delete it to download again.")
    if not os.path.exists(digest_path):
        with open(digest_path, "w") as handle:
            handle.write(actual)
    return target


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
