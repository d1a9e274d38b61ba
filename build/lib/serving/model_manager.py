"""Versions of one model on disk → loaded TF1 sessions, with TF Serving's policies.

Watches `base_path` (`base_path/<integer version>/saved_model.pb`), loads new versions through
the TF1 session loader (as `tensorflow_model_server` does) and replays each version's warm-up
requests before serving it. A version that fails to load or warm up is marked END with its error
and the versions already loaded keep serving (last good version); it is tried again only when its
folder changes. A version whose folder disappears is unloaded. Requests without a version go to
the newest AVAILABLE one. Folders whose name is not an integer (e.g. an export's temporary
folder) are ignored.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops the graphs use)

log = logging.getLogger("serving.model_manager")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingError(Exception):
    """A request that cannot be served: `code` is the gRPC status name TF Serving would use."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class LoadedVersion:
    """One SavedModel version in its own graph and session."""

    def __init__(self, path: str, version: int, threads: int = 0):
        self.path = path
        self.version = version
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = {
            name: signature
            for name, signature in self.meta_graph.signature_def.items()
            if not name.startswith("__")
        }

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature by tensor names; inputs must already match it (see `predict`)."""
        signature = self.signatures[signature_name]
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        names = sorted(signature.outputs)
        values = self.session.run([signature.outputs[key].name for key in names], feed_dict=feeds)
        return dict(zip(names, values))

    def warm_up(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests; returns how many ran."""
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in tf.compat.v1.io.tf_record_iterator(path):
            log_entry = prediction_log_pb2.PredictionLog.FromString(record)
            request = log_entry.predict_log.request
            name = request.model_spec.signature_name or "serving_default"
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            self.run(name, inputs)
            count += 1
        return count

    def close(self):
        self.session.close()


class VersionStatus(NamedTuple):
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving's states)
    error: str  # empty when fine


class ModelManager:
    """Loads and serves the versions of `model_name` found under `base_path`.

    Args:
      max_versions: the newest this many versions are kept loaded.
      threads: per-session intra/inter-op threads (0: TensorFlow's default).
    """

    def __init__(self, model_name: str, base_path: str, max_versions: int = 2, threads: int = 0):
        self.model_name = model_name
        self.base_path = base_path
        self.max_versions = max_versions
        self.threads = threads
        self._loaded: dict[int, LoadedVersion] = {}
        self._failed: dict[int, tuple[float, str]] = {}  # version → (folder mtime, error)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    # -- watching -------------------------------------------------------------------------

    def versions_on_disk(self) -> dict[int, str]:
        try:
            names = os.listdir(self.base_path)
        except FileNotFoundError:
            return {}
        versions = {}
        for name in names:
            path = os.path.join(self.base_path, name)
            if name.isdigit() and int(name) > 0 and os.path.isdir(path):
                versions[int(name)] = path
        return versions

    def poll(self) -> None:
        """One look at the disk: load what is new, unload what is gone."""
        on_disk = self.versions_on_disk()
        wanted = sorted(on_disk, reverse=True)
        for version in wanted:
            if version in self._loaded:
                continue
            mtime = _mtime(on_disk[version])
            if version in self._failed and self._failed[version][0] == mtime:
                continue
            available = [v for v in self._loaded if v > version]
            if len(available) >= self.max_versions:
                continue
            self._load(version, on_disk[version], mtime)
        keep = set(sorted(self._loaded, reverse=True)[: self.max_versions]) & set(on_disk)
        for version in list(self._loaded):
            if version not in keep:
                self._unload(version)
        for version in list(self._failed):
            if version not in on_disk:
                del self._failed[version]

    def _load(self, version: int, path: str, mtime: float) -> None:
        log.info("loading %s version %d from %s", self.model_name, version, path)
        loaded = None
        try:
            loaded = LoadedVersion(path, version, self.threads)
            warmed = loaded.warm_up()
        except Exception as error:  # any failure leaves the previous versions serving
            message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            log.warning("version %d failed to load: %s", version, message)
            if loaded is not None:
                loaded.close()
            self._failed[version] = (mtime, message)
            return
        with self._lock:
            self._loaded[version] = loaded
        self._failed.pop(version, None)
        log.info("version %d AVAILABLE (%d warm-up requests)", version, warmed)

    def _unload(self, version: int) -> None:
        with self._lock:
            loaded = self._loaded.pop(version, None)
        if loaded is not None:
            log.info("unloading %s version %d", self.model_name, version)
            loaded.close()

    def start(self, poll_seconds: float = 1.0) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._watch, args=(poll_seconds,), daemon=True)
        self._thread.start()

    def _watch(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any one bad look at the disk
                log.exception("polling %s failed", self.base_path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        for version in list(self._loaded):
            self._unload(version)

    # -- serving --------------------------------------------------------------------------

    def get(self, model_name: str, version: int | None = None) -> LoadedVersion:
        if model_name != self.model_name:
            raise ServingError("NOT_FOUND", f"Servable not found for request: unknown model {model_name!r}")
        with self._lock:
            if version is None:
                if not self._loaded:
                    raise ServingError("UNAVAILABLE", f"No version of {model_name!r} is loaded yet")
                return self._loaded[max(self._loaded)]
            if version not in self._loaded:
                raise ServingError(
                    "NOT_FOUND", f"Servable not found for request: {model_name!r} version {version}"
                )
            return self._loaded[version]

    def status(self, model_name: str, version: int | None = None) -> list[VersionStatus]:
        if model_name != self.model_name:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {model_name!r}")
        with self._lock:
            statuses = [VersionStatus(v, "AVAILABLE", "") for v in self._loaded]
        statuses += [VersionStatus(v, "END", error) for v, (_, error) in self._failed.items()]
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {model_name!r}")
        return sorted(statuses, reverse=True)


def _mtime(path: str) -> float:
    try:
        return max(os.path.getmtime(path), os.path.getmtime(os.path.join(path, "saved_model.pb")))
    except OSError:
        return os.path.getmtime(path)
