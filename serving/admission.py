"""Request admission: a Predict request checked against its signature, the bounds on what runs
at once, and the run itself, alone or in a server-side batch (shared by gRPC and REST).

Every problem with a request becomes a `ServingError` with the gRPC status TF Serving would use
and a message that says what was wrong; the model is never run on inputs that do not match the
signature's names, dtypes and shapes. A client's deadline bounds the work: a request whose
deadline passed while it waited is not run, and a run is given at most the time left.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from .errors import ServingError
from .model_manager import Models


MAX_REQUEST_BYTES = 2**31 - 1  # the stock server's gRPC message limit (INT32_MAX)


class Limits:
    """Request bounds and the optional admission queue.

    By default nothing is shed, as in the stock server: every request runs when a worker thread
    takes it. With `max_concurrent` > 0, up to `max_concurrent` unbatched requests run at once,
    up to `max_queued` more wait (at most `queue_timeout` seconds), and any further request is
    shed at once with RESOURCE_EXHAUSTED (HTTP 429). `max_request_rows` > 0 refuses a request of
    more text rows with INVALID_ARGUMENT (0: no bound, as stock).
    """

    def __init__(self, max_request_rows=0, max_request_bytes=MAX_REQUEST_BYTES, max_concurrent=0,
                 max_queued=32, queue_timeout=30.0):
        for name, value in (("max_request_rows", max_request_rows), ("max_concurrent", max_concurrent),
                            ("max_queued", max_queued)):
            if value < 0:
                raise ValueError(f"--{name} must be at least 0, got {value}")
        if not 1 <= max_request_bytes <= MAX_REQUEST_BYTES:
            raise ValueError(f"--max_request_bytes must be between 1 and {MAX_REQUEST_BYTES}, got {max_request_bytes}")
        self.max_request_rows = max_request_rows
        self.max_request_bytes = max_request_bytes
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.admission = max_concurrent > 0
        self._running = threading.Semaphore(max(max_concurrent, 1))
        self._waiting = threading.BoundedSemaphore(max(max_concurrent, 1) + max_queued)
        self.in_flight = 0
        self._count_lock = threading.Lock()

    @contextmanager
    def admit(self, deadline: float | None = None):
        """Runs the block (unbatched requests): at once, or, with admission, when a slot is free."""
        if not self.admission:
            with self.track():
                yield
            return
        if not self._waiting.acquire(blocking=False):
            raise ServingError("RESOURCE_EXHAUSTED", "The server's request queue is full; retry later")
        try:
            wait = self.queue_timeout if deadline is None else min(self.queue_timeout, deadline - time.monotonic())
            if not self._running.acquire(timeout=max(wait, 0.0)):
                if deadline is not None and time.monotonic() >= deadline:
                    raise ServingError("DEADLINE_EXCEEDED", "The request's deadline passed in the queue")
                raise ServingError("UNAVAILABLE", f"Request waited over {self.queue_timeout:.0f} s in the queue")
            try:
                with self.track():
                    yield
            finally:
                self._running.release()
        finally:
            self._waiting.release()

    @contextmanager
    def track(self):
        """Counts the block as a request in flight (for draining)."""
        with self._count_lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.in_flight -= 1

    def drain(self, timeout: float) -> bool:
        """Waits until no request is running; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight == 0:
                return True
            time.sleep(0.05)
        return self.in_flight == 0


def _dims(tensor_info) -> list[int] | None:
    if tensor_info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in tensor_info.tensor_shape.dim]


def check_inputs(signature, signature_name: str, inputs: dict[str, np.ndarray], limits: Limits) -> dict:
    """Returns the inputs cast to the signature's dtypes, or raises INVALID_ARGUMENT."""
    expected, given = set(signature.inputs), set(inputs)
    if expected != given:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Signature {signature_name!r} takes inputs {sorted(expected)}; "
            f"missing {sorted(expected - given)}, unexpected {sorted(given - expected)}",
        )
    checked = {}
    for key, value in inputs.items():
        info = signature.inputs[key]
        dtype = tf.dtypes.as_dtype(info.dtype)
        value = np.asarray(value)
        if value.size == 0:  # an empty JSON list has no type of its own
            value = value.astype(object if dtype == tf.string else dtype.as_numpy_dtype)
        if dtype == tf.string:
            if value.dtype.kind not in "OSU" or (
                value.dtype.kind == "O" and not all(isinstance(v, (bytes, str)) for v in value.flat)
            ):
                raise ServingError("INVALID_ARGUMENT", f"Input {key!r} must be strings, got {value.dtype}")
        else:
            allowed = "iuf" if dtype.is_floating else "iu"
            if value.dtype.kind not in allowed:
                raise ServingError("INVALID_ARGUMENT", f"Input {key!r} must be {dtype.name}, got {value.dtype}")
            if not dtype.is_floating and value.size:
                bounds = np.iinfo(dtype.as_numpy_dtype)
                if value.min() < bounds.min or value.max() > bounds.max:
                    raise ServingError("INVALID_ARGUMENT", f"Input {key!r} is out of the {dtype.name} range")
            value = value.astype(dtype.as_numpy_dtype)
        dims = _dims(info)
        if dims is not None:
            if value.ndim != len(dims) or any(d != -1 and d != s for d, s in zip(dims, value.shape)):
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"Input {key!r} must have shape {['?' if d == -1 else d for d in dims]}, "
                    f"got {list(value.shape)}",
                )
            # The batch is the rows of the text inputs; other vectors (e.g. times) are bounded by
            # the request size and the model's own checks.
            if (limits.max_request_rows and dims and dims[0] == -1 and dtype == tf.string
                    and value.shape[0] > limits.max_request_rows):
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"Input {key!r} has {value.shape[0]} rows; this server takes at most "
                    f"{limits.max_request_rows} (--max_request_rows)",
                )
        checked[key] = value
    return checked


class Target(NamedTuple):
    """What a request names: a model, and a version number or label (neither: the newest), and a
    signature ("" means serving_default, as in the stock server)."""

    model_name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


def predict(models: Models, limits: Limits, target: Target, decode_inputs, *,
            batcher=None, metrics=None, entrypoint: str = "GRPC",
            deadline: float | None = None, output_filter=()) -> tuple[int, dict[str, np.ndarray]]:
    """`(version served, outputs)` for one Predict request.

    `decode_inputs(signature)` returns the request's `{name: array}`, decoded against the
    signature of the version that runs it (REST's row format needs it to name a lone input), so
    that a request that fails to decode is counted like any other. With a `batcher`
    (`serving.batching.BatchScheduler`) the request joins a server-side batch;
    otherwise it runs alone under `limits`. `metrics` (`serving.monitoring.ServingMetrics`) counts
    it by status; `deadline` is a `time.monotonic()` instant; `output_filter` (gRPC's) names the
    outputs answered (all when empty)."""
    started = time.monotonic()
    status = "OK"
    try:
        loaded = models.get(target.model_name, target.version, target.label)
        try:
            signature_name = target.signature_name or "serving_default"
            if signature_name not in loaded.signatures:  # as predict_util.cc words it
                raise ServingError("FAILED_PRECONDITION",
                                   f'Serving signature name: "{signature_name}" not found in signature def')
            signature = loaded.signatures[signature_name]
            for alias in output_filter:  # as predict_util.cc checks and words it
                if alias not in signature.outputs:
                    raise ServingError("INVALID_ARGUMENT",
                                       f"output tensor alias not found in signature: {alias} Outputs expected to "
                                       f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
            checked = check_inputs(signature, signature_name, decode_inputs(signature), limits)

            def run(batch, timeout=None):
                return _run(loaded, signature_name, batch, target.model_name, metrics, timeout)

            rows = {len(v) for v in checked.values() if np.ndim(v)}
            if batcher is not None and rows and min(rows) > 0:
                with limits.track():
                    future = batcher.submit((target.model_name, loaded.version, signature_name), run, checked,
                                            deadline)
                    # The batch holds the version until it has run, even if this request stops
                    # waiting (deadline): a version retired meanwhile closes only after that.
                    loaded.acquire()
                    future.add_done_callback(lambda _: loaded.release())
                    outputs = _wait(future, deadline)
            else:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ServingError("DEADLINE_EXCEEDED", "The request's deadline passed before it ran")
                with limits.admit(deadline):
                    left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
                    outputs = run(checked, left)
        finally:
            loaded.release()
        if metrics is not None and "nfe" in outputs and np.size(outputs["nfe"]):
            metrics.solver_evaluations(target.model_name, np.max(outputs["nfe"]))
        if output_filter:
            wanted = set(output_filter)
            outputs = {key: value for key, value in outputs.items() if key in wanted}
        return loaded.version, outputs
    except ServingError as error:
        status = error.code
        raise
    finally:
        if metrics is not None:
            metrics.request(target.model_name, status, time.monotonic() - started, entrypoint)


def _wait(future, deadline):
    try:
        return future.result(timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0))
    except FutureTimeout:
        future.cancel()  # a task not yet taken into a batch is dropped
        raise ServingError("DEADLINE_EXCEEDED", "The request's deadline passed before its batch was answered") from None


def _run(loaded, signature_name, inputs, model_name, metrics, timeout=None):
    started = time.monotonic()
    try:
        return loaded.run(signature_name, inputs, timeout)
    except tf.errors.DeadlineExceededError:
        raise ServingError("DEADLINE_EXCEEDED", "The request's deadline passed while it ran") from None
    except tf.errors.InvalidArgumentError as error:
        raise ServingError("INVALID_ARGUMENT", _assertion_message(error)) from None
    except tf.errors.OpError as error:
        raise ServingError("INTERNAL", f"{type(error).__name__}: {error.message.splitlines()[0]}") from None
    finally:
        if metrics is not None:
            metrics.runtime(model_name, time.monotonic() - started)


def _assertion_message(error: tf.errors.InvalidArgumentError) -> str:
    """What a failed graph assertion says was wrong ("num_steps must be at most 64")."""
    found = re.search(r"assertion failed: \[(.*?)\]", error.message)
    if found:
        return found.group(1).replace("\\'", "'").strip().rstrip(".")
    lines = [
        line.strip() for line in error.message.splitlines()
        if line.strip() and not line.strip().startswith(("Graph execution error", "Detected at node", "[[", "Stack trace"))
    ]
    return (lines[0] if lines else "invalid argument")[:500]
