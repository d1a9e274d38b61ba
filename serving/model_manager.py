"""Models on disk → loaded TF1 sessions, with TF Serving's version policies and labels.

A `ModelManager` watches one model's `base_path` (`base_path/<integer version>/saved_model.pb`),
loads the versions its `VersionPolicy` asks for through the TF1 session loader (as
`tensorflow_model_server` does) and replays each version's warm-up requests before serving it.
A version that fails to load or warm up is marked END with its error and the versions already
loaded keep serving (last good version); it is tried again only when its folder changes. A
version that leaves the policy (deleted, or superseded) is unloaded once the requests holding it
are answered. Requests without a version go to the newest AVAILABLE one; a label resolves
through the model's `version_labels`. Folders whose name is not a non-negative integer (e.g. an
export's temporary folder) are ignored; `0` is a version, as in the stock server. Every path is
read through `tf.io.gfile`, so a base path on any file system TensorFlow has registered
(`gs://`, `s3://` with its plug-in, `ram://`, …) works as a local one does. A load that fails is
tried `max_num_load_retries` more times, `load_retry_interval_micros` apart (the stock flags).

`Models` is the set of managers a server serves: one from `--model_name`/`--model_base_path`,
or several from a `ModelServerConfig` (`--model_config_file`), replaced whole by
`ModelService.HandleReloadConfigRequest` or a changed file.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops the graphs use)

from .errors import ServingError

log = logging.getLogger("serving.model_manager")

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # as tensorflow_model_server


class VersionPolicy(NamedTuple):
    """`kind` "latest" (the newest `count`), "all", or "specific" (`versions`)."""

    kind: str = "latest"
    count: int = 1
    versions: tuple = ()

    @classmethod
    def from_proto(cls, policy) -> "VersionPolicy":
        """From a `FileSystemStoragePathSourceConfig.ServableVersionPolicy`."""
        choice = policy.WhichOneof("policy_choice")
        if choice is None:
            return cls()
        if choice == "latest":
            count = policy.latest.num_versions or 1
            if count < 1:
                raise ValueError(f"latest.num_versions must be at least 1, got {count}")
            return cls("latest", count)
        if choice == "all":
            return cls("all")
        versions = tuple(sorted(set(policy.specific.versions)))
        if not versions:
            raise ValueError("model_version_policy.specific names no versions")
        return cls("specific", versions=versions)

    def wanted(self, on_disk) -> list[int]:
        """The versions to serve among `on_disk`, newest first."""
        newest = sorted(on_disk, reverse=True)
        if self.kind == "latest":
            return newest[: self.count]
        if self.kind == "all":
            return newest
        return [v for v in newest if v in self.versions]


class SessionThreads(NamedTuple):
    """A session's thread pools, as the stock server's flags set them: `intra` threads inside
    one op, `inter` ops at once (0: TensorFlow chooses; a negative `inter` runs every op in the
    calling thread, which spares a graph of many small ops the hand-offs between threads)."""

    intra: int = 0
    inter: int = 0

    @classmethod
    def from_flags(cls, session: int, intra: int, inter: int) -> "SessionThreads":
        """As the stock server reads its flags: `--tensorflow_session_parallelism` sets both pools
        unless `--tensorflow_intra_op_parallelism` or `--tensorflow_inter_op_parallelism` is
        positive, when those two are used as given; all three positive is refused."""
        if session > 0 and intra > 0 and inter > 0:
            raise ValueError("Either configure --tensorflow_session_parallelism or "
                             "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism) "
                             "separately. You cannot configure all.")
        if intra > 0 or inter > 0:
            return cls(intra, inter)
        return cls(session, session)


class LoadedVersion:
    """One SavedModel version in its own graph and session; closed once retired and unused."""

    def __init__(self, path: str, version: int, threads: SessionThreads = SessionThreads(), tags=("serve",)):
        self.path = path
        self.version = version
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads.intra, inter_op_parallelism_threads=threads.inter
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), path)
        self.signatures = {
            name: signature
            for name, signature in self.meta_graph.signature_def.items()
            if not name.startswith("__")
        }
        self._users = 0
        self._retired = False
        self._lock = threading.Lock()

    def acquire(self) -> "LoadedVersion":
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self.session.close()

    def retire(self) -> None:
        """No new requests reach it; the session closes when the last one is answered."""
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self.session.close()

    def run(self, signature_name: str, inputs: dict[str, np.ndarray],
            timeout: float | None = None) -> dict[str, np.ndarray]:
        """Runs a signature by tensor names; inputs must already match it (see `predict`).
        `timeout` (seconds) bounds the run (DeadlineExceededError)."""
        signature = self.signatures[signature_name]
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        names = sorted(signature.outputs)
        options = None if timeout is None else tf.compat.v1.RunOptions(timeout_in_ms=max(int(timeout * 1000), 1))
        values = self.session.run([signature.outputs[key].name for key in names], feed_dict=feeds,
                                  options=options)
        return dict(zip(names, values))

    def warm_up(self, iterations: int = 1) -> int:
        """Replays assets.extra/tf_serving_warmup_requests (at most 1,000 records, as the stock
        server), each `iterations` times; returns how many records ran. A record that is not a Predict request is refused with an
        error naming it: these models serve Predict signatures only."""
        from tensorflow_serving.apis import prediction_log_pb2

        path = _join(self.path, WARMUP_FILE)
        if not tf.io.gfile.exists(path):
            return 0
        records = []
        for record in tf.compat.v1.io.tf_record_iterator(path):
            records.append(record)
            if len(records) > MAX_WARMUP_RECORDS:
                raise ValueError(f"{WARMUP_FILE} has more than {MAX_WARMUP_RECORDS} records")
        count = 0
        for index, record in enumerate(records):
            log_entry = prediction_log_pb2.PredictionLog.FromString(record)
            kind = log_entry.WhichOneof("log_type")
            if kind != "predict_log":
                raise ValueError(f"warm-up record {index} is a {kind or 'empty'} record; "
                                 "this model has Predict signatures only")
            request = log_entry.predict_log.request
            name = request.model_spec.signature_name or "serving_default"
            if name not in self.signatures:
                raise ValueError(f"warm-up record {index} asks for signature {name!r}, which the model lacks")
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            for _ in range(max(iterations, 1)):
                self.run(name, inputs)
            count += 1
        return count


class VersionStatus(NamedTuple):
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving's states)
    error: str  # empty when fine
    code: str = "OK"  # the error's canonical code name (UNKNOWN for a failure that has none)


class ModelManager:
    """Loads and serves the versions of one model found under `base_path`.

    Args:
      name: the model's name in requests.
      base_path: folder of integer version folders.
      policy: which versions to serve (`VersionPolicy`; the newest one by default).
      labels: `{label: version}` (`version_labels` of the model's config).
      threads: every session's `SessionThreads`.
      on_load: optional `on_load(path, ok, seconds)` called after every load attempt.
      warm_up: replay each version's warm-up requests before serving it.
      loading: a `Loading` (tags, retries); the stock defaults when omitted.
    """

    def __init__(self, name: str, base_path: str, policy: VersionPolicy = VersionPolicy(),
                 labels: dict | None = None, threads: SessionThreads = SessionThreads(), on_load=None,
                 warm_up: bool = True, loading: "Loading | None" = None):
        self.name = name
        self.base_path = base_path
        self.policy = policy
        self.labels = dict(labels or {})
        self.threads = threads
        self.on_load = on_load
        self.warm_up = warm_up
        self.loading = loading or Loading()
        self._loaded: dict[int, LoadedVersion] = {}
        self._loading: set[int] = set()
        self._failed: dict[int, tuple[float, str, str]] = {}  # version → (folder mtime, error, code)
        self._lock = threading.Lock()

    def poll(self) -> None:
        """One look at the disk: load what the policy wants, unload what it no longer does."""
        on_disk = versions_on_disk(self.base_path)
        wanted = self.policy.wanted(on_disk)
        for version in wanted:
            if version in self._loaded:
                continue
            mtime = _mtime(on_disk[version])
            if version in self._failed and self._failed[version][0] == mtime:
                continue
            self._load(version, on_disk[version], mtime)
        # Keep the last good version while a newer wanted one failed to load.
        serving = [v for v in wanted if v in self._loaded]
        if not serving and self.policy.kind == "latest":
            serving = sorted((v for v in self._loaded if v in on_disk), reverse=True)[: self.policy.count]
        for version in list(self._loaded):
            if version not in serving:
                self._unload(version)
        for version in list(self._failed):
            if version not in on_disk:
                del self._failed[version]

    def _load(self, version: int, path: str, mtime: float) -> None:
        with self._lock:
            self._loading.add(version)
        try:
            attempts = 1 + self.loading.max_num_load_retries
            for attempt in range(attempts):
                if attempt:
                    time.sleep(max(self.loading.load_retry_interval_micros, 0) / 1e6)
                if self._try_load(version, path, mtime, attempt == attempts - 1):
                    return
        finally:
            with self._lock:
                self._loading.discard(version)

    def _try_load(self, version: int, path: str, mtime: float, last: bool) -> bool:
        log.info("loading %s version %d from %s", self.name, version, path)
        loaded, start = None, time.monotonic()
        try:
            loaded = LoadedVersion(path, version, self.threads, self.loading.tags)
            warmed = loaded.warm_up(self.loading.warmup_iterations) if self.warm_up else 0
        except Exception as error:  # any failure leaves the previous versions serving
            message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            code = error_code_name(error)
            log.warning("%s version %d failed to load%s: %s", self.name, version,
                        "" if last else " (retrying)", message)
            if loaded is not None:
                loaded.retire()
            if last:
                self._failed[version] = (mtime, message, code)
            if self.on_load:
                self.on_load(path, False, time.monotonic() - start)
            return False
        with self._lock:
            self._loaded[version] = loaded
        self._failed.pop(version, None)
        if self.on_load:
            self.on_load(path, True, time.monotonic() - start)
        log.info("%s version %d AVAILABLE (%d warm-up requests)", self.name, version, warmed)
        return True

    def _unload(self, version: int) -> None:
        with self._lock:
            loaded = self._loaded.pop(version, None)
        if loaded is not None:
            log.info("unloading %s version %d", self.name, version)
            loaded.retire()

    def unload_all(self) -> None:
        for version in list(self._loaded):
            self._unload(version)

    def get(self, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The version asked for (newest without one), acquired: `release()` it after use."""
        with self._lock:
            if label:
                if label not in self.labels:
                    raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
                version = self.labels[label]
            if version is None:
                if not self._loaded:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({self.name})")
                return self._loaded[max(self._loaded)].acquire()
            if version not in self._loaded:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({self.name}, {version})")
            return self._loaded[version].acquire()

    def status(self, version: int | None = None) -> list[VersionStatus]:
        with self._lock:
            statuses = [VersionStatus(v, "AVAILABLE", "") for v in self._loaded]
            statuses += [VersionStatus(v, "LOADING", "") for v in self._loading if v not in self._loaded]
        statuses += [VersionStatus(v, "END", error, code) for v, (_, error, code) in self._failed.items()]
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {self.name!r}")
        if not statuses:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {self.name}")
        return sorted(statuses, reverse=True)


class ModelSpec(NamedTuple):
    """What a server is told to serve of one model."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict = {}


def specs_from_config(config) -> list[ModelSpec]:
    """`ModelSpec`s of a `ModelServerConfig` proto; ValueError names what is wrong."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("the model config must hold a model_config_list")
    specs, names = [], set()
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ValueError("every model config needs a name and a base_path")
        if entry.name in names:
            raise ValueError(f"model {entry.name!r} is configured twice")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {entry.name!r}: platform {entry.model_platform!r} is not served (tensorflow only)")
        names.add(entry.name)
        specs.append(ModelSpec(entry.name, entry.base_path, VersionPolicy.from_proto(entry.model_version_policy),
                               dict(entry.version_labels)))
    return specs


def read_config_file(path: str) -> list[ModelSpec]:
    """Parses a `ModelServerConfig` text proto file (`--model_config_file`)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as error:
        raise ValueError(f"model config file {path}: {error}") from None
    return specs_from_config(config)


class Models:
    """Every model a server serves, watched by one thread.

    Args:
      specs: `ModelSpec`s.
      threads: every session's `SessionThreads`.
      on_load, warm_up, loading: passed to every `ModelManager`.
    """

    def __init__(self, specs: list[ModelSpec], threads: SessionThreads = SessionThreads(), on_load=None,
                 warm_up: bool = True, loading: "Loading | None" = None):
        self.threads = threads
        self.loading = loading or Loading()
        self.on_load = on_load
        self.warm_up = warm_up
        self._managers: dict[str, ModelManager] = {}
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # one look at the disk at a time (watcher, reloads, stop)
        self._stop = threading.Event()
        self._thread = None
        self.configure(specs)

    def configure(self, specs: list[ModelSpec]) -> None:
        """Serves exactly `specs` from now on: new models are added, models no longer named are
        unloaded, a model whose path or policy changed is reloaded, labels are replaced. A label
        must name a version that is loaded or wanted on disk (as the stock server asks). A model
        whose policy changed keeps its loaded versions; the next poll loads and unloads what the
        new policy asks."""
        with self._polling, self._lock:
            managers = {}
            for spec in specs:
                manager = self._managers.get(spec.name)
                if manager is None or manager.base_path != spec.base_path:
                    manager = ModelManager(spec.name, spec.base_path, spec.policy, spec.labels, self.threads,
                                           self.on_load, self.warm_up, self.loading)
                manager.policy = spec.policy
                manager.labels = dict(spec.labels)
                managers[spec.name] = manager
            dropped = [m for name, m in self._managers.items() if managers.get(name) is not m]
            self._managers = managers
        for manager in dropped:
            manager.unload_all()

    def check_labels(self, specs: list[ModelSpec]) -> None:
        """Raises ValueError if a label names a version neither on disk nor wanted."""
        for spec in specs:
            wanted = spec.policy.wanted(versions_on_disk(spec.base_path))
            for label, version in spec.labels.items():
                if version not in wanted:
                    raise ValueError(f"model {spec.name!r}: label {label!r} names version {version}, "
                                     "which is not a version this policy serves")

    def poll(self) -> None:
        with self._polling:
            if self._stop.is_set():
                return
            with self._lock:
                managers = list(self._managers.values())
            for manager in managers:
                manager.poll()

    def start(self, poll_seconds: float) -> None:
        """As the stock server's `--file_system_poll_wait_seconds`: > 0 polls now and then every
        `poll_seconds` in a thread; 0 polls exactly once; < 0 never looks at the disk."""
        if poll_seconds < 0:
            log.warning("file system polling is off: no model version will be loaded")
            return
        self.poll()
        if poll_seconds > 0:
            self._thread = threading.Thread(target=self._watch, args=(poll_seconds,), daemon=True)
            self._thread.start()

    def _watch(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any one bad look at the disk
                log.exception("polling the model folders failed")

    def stop(self) -> None:
        """Stops polling (waiting for a load in progress) and unloads every version."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        with self._polling, self._lock:
            managers = list(self._managers.values())
        for manager in managers:
            manager.unload_all()

    def manager(self, name: str) -> ModelManager:
        with self._lock:
            manager = self._managers.get(name)
        if manager is None:
            raise ServingError("NOT_FOUND", f"Servable not found for request: unknown model {name!r}")
        return manager

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        return self.manager(name).get(version, label)

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        try:
            manager = self.manager(name)
        except ServingError:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}") from None
        return manager.status(version)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._managers)


def versions_on_disk(base_path: str) -> dict[int, str]:
    """`{version: folder}` of the non-negative integer folders under `base_path` ({} if
    unreadable), on any file system `tf.io.gfile` reads."""
    try:
        names = tf.io.gfile.listdir(base_path)
    except tf.errors.OpError:
        return {}
    versions = {}
    for name in names:
        name = name.rstrip("/")
        path = _join(base_path, name)
        if name.isdigit() and tf.io.gfile.isdir(path):
            versions[int(name)] = path
    return versions


def load_newest(model_dir: str, signature: str, threads: "SessionThreads") -> "LoadedVersion":
    """The newest version under `model_dir`, loaded with `threads`; ValueError saying why when
    there is none or it lacks `signature` (for the benchmarks)."""
    versions = versions_on_disk(model_dir)
    if not versions:
        raise ValueError(f"no version under {model_dir}")
    number = max(versions)
    version = LoadedVersion(versions[number], number, threads)
    if signature not in version.signatures:
        version.retire()
        raise ValueError(f"version {number} of {model_dir} has no {signature} signature")
    return version


def _mtime(path: str) -> float:
    """When a version folder (or its saved_model.pb) last changed, in seconds."""
    stamps = []
    for candidate in (path, _join(path, "saved_model.pb")):
        try:
            stamps.append(tf.io.gfile.stat(candidate).mtime_nsec / 1e9)
        except tf.errors.OpError:
            pass
    return max(stamps, default=0.0)


def _join(base: str, name: str) -> str:
    """`base/name` for local paths and URLs alike (`os.path.join` would use "\\" on Windows)."""
    return base.rstrip("/") + "/" + name


class Loading(NamedTuple):
    """How versions are loaded, as the stock flags say: the MetaGraph `tags`
    (`--saved_model_tags`), how often and how far apart a failed load is tried again
    (`--max_num_load_retries`, `--load_retry_interval_micros`; negative: no wait), and how
    many times each warm-up record is replayed (`--num_request_iterations_for_warmup`)."""

    tags: tuple = ("serve",)
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    warmup_iterations: int = 1

    @classmethod
    def from_flags(cls, tags: str, retries: int, interval_micros: int, warmup_iterations: int = 1) -> "Loading":
        names = tuple(tag.strip() for tag in tags.split(",") if tag.strip())
        if not names:
            raise ValueError("--saved_model_tags names no tag")
        if retries < 0:
            raise ValueError(f"--max_num_load_retries must be at least 0, got {retries}")
        return cls(names, retries, interval_micros, warmup_iterations)


def error_code_name(error: Exception) -> str:
    """The canonical code name of a load failure: TensorFlow's own for its errors, else UNKNOWN."""
    if isinstance(error, tf.errors.OpError):
        return _CODE_NAMES.get(error.error_code, "UNKNOWN")
    return "UNKNOWN"


_CODE_NAMES = {getattr(tf.errors, name): name for name in (
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")}
