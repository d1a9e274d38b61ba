"""Server-side batching as `tensorflow_model_server --enable_batching` does it.

Concurrent Predict requests for the same model, version and signature wait in one queue; a pool
of `num_batch_threads` threads shared by every queue (TF Serving's `SharedBatchScheduler`) takes
a queue's oldest requests as soon as they fill `max_batch_size` rows or the oldest has waited
`batch_timeout_micros`, concatenates each input along dimension 0, runs the signature once and
splits every output back into each request's rows.

`BatchingParameters` reads the stock server's `--batching_parameters_file` (the text form of
`tensorflow.serving.BatchingParameters`, each scalar as `name { value: N }`; `serving.protos`).
Stock behaviours kept: a request of more rows than `max_batch_size` is
refused with INVALID_ARGUMENT unless `enable_large_batch_splitting` is on, when it is cut into
pieces of at most `max_execution_batch_size` rows; a queue holding `max_enqueued_batches` full
batches sheds new requests with UNAVAILABLE at once; with `allowed_batch_sizes`, a batch is padded
to the next allowed size (with copies of its first row) and the padding is dropped from the
answers.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from concurrent.futures import Future

import numpy as np
from . import protos
from .errors import ServingError

_WRAPPED = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
            "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size")


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """The stock server's batching settings; each default is the stock one."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    thread_pool_name: str = "model_server_batch_threads"
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching parameter {name} must be at least 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batching parameter batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        sizes = list(self.allowed_batch_sizes)
        if sizes:
            if sizes != sorted(set(sizes)) or sizes[0] < 1:
                raise ValueError(f"allowed_batch_sizes must be positive and increasing, got {sizes}")
            if sizes[-1] != self.execution_batch_size:
                raise ValueError(
                    f"The last entry of allowed_batch_sizes ({sizes[-1]}) must equal max_batch_size "
                    f"({self.execution_batch_size})")
        if self.max_execution_batch_size is not None:
            if not self.enable_large_batch_splitting:
                raise ValueError("max_execution_batch_size applies only with enable_large_batch_splitting")
            if not 1 <= self.max_execution_batch_size <= self.max_batch_size:
                raise ValueError("max_execution_batch_size must be between 1 and max_batch_size")

    @property
    def execution_batch_size(self) -> int:
        """The most rows one run takes."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    @classmethod
    def from_proto(cls, proto) -> "BatchingParameters":
        values = {name: getattr(proto, name).value for name in _WRAPPED if proto.HasField(name)}
        return cls(**values, allowed_batch_sizes=tuple(proto.allowed_batch_sizes),
                   pad_variable_length_inputs=proto.pad_variable_length_inputs)

    @classmethod
    def from_text(cls, text: str) -> "BatchingParameters":
        """Parses the text form (`max_batch_size { value: 32 }` …); ValueError names the line of
        an unknown field or a malformed value, or the setting out of range."""
        return cls.from_proto(protos.parse_text(text, "BatchingParameters", "batching parameters"))

    @classmethod
    def from_file(cls, path: str) -> "BatchingParameters":
        return cls.from_proto(protos.parse_file(path, "BatchingParameters", "batching parameters file"))


class _Task:
    """One request's rows (or a piece of them), waiting to join a batch."""

    __slots__ = ("inputs", "rows", "future", "enqueued", "deadline")

    def __init__(self, inputs, rows, deadline):
        self.inputs, self.rows, self.deadline = inputs, rows, deadline
        self.future = Future()
        self.enqueued = time.monotonic()

    def trailing_shapes(self):
        return tuple((key, value.shape[1:]) for key, value in sorted(self.inputs.items()))


class _Queue:
    def __init__(self, run):
        self.run = run
        self.tasks = collections.deque()
        self.rows = 0


class BatchScheduler:
    """Queues per (model, version, signature) over one pool of batch threads.

    Args:
      parameters: `BatchingParameters`.
      on_batch: optional `on_batch(size, padding, queuing_seconds)` called for every batch run
        (for metrics).
    """

    def __init__(self, parameters: BatchingParameters, on_batch=None):
        self.parameters = parameters
        self.on_batch = on_batch
        self._queues: dict[tuple, _Queue] = {}
        self._condition = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{parameters.thread_pool_name}_{i}", daemon=True)
            for i in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    # -- requests ------------------------------------------------------------------------

    def submit(self, key: tuple, run, inputs: dict[str, np.ndarray], deadline: float | None = None) -> Future:
        """Queues one request; returns a Future of its outputs (each `[rows, ...]`).

        `run(inputs) -> outputs` runs a whole batch; `key` names its queue. Raises ServingError
        at once when the request cannot be batched or the queue is full."""
        rows = {len(value) if np.ndim(value) else None for value in inputs.values()}
        if len(rows) != 1 or None in rows:
            raise ServingError("INVALID_ARGUMENT",
                               "Batching session Run() input tensors must have equal 0th-dimension size")
        rows = rows.pop()
        limit = self.parameters.max_batch_size
        if rows > limit:
            raise ServingError("INVALID_ARGUMENT", f"Task size {rows} is larger than maximum input batch size {limit}")
        piece = self.parameters.execution_batch_size
        tasks = [_Task({k: v[start:start + piece] for k, v in inputs.items()}, min(piece, rows - start), deadline)
                 for start in range(0, rows, piece)] or [_Task(inputs, 0, deadline)]
        with self._condition:
            if self._stopping:
                raise ServingError("UNAVAILABLE", "The server is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(run)
            queue.run = run
            capacity = self.parameters.max_enqueued_batches * piece
            if queue.rows + rows > capacity:
                raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full")
            queue.tasks.extend(tasks)
            queue.rows += rows
            self._condition.notify()
        if len(tasks) == 1:
            return tasks[0].future
        return _joined([task.future for task in tasks])

    def stop(self, timeout: float = 10.0) -> None:
        """Runs what is queued, then stops the threads."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- batch threads -------------------------------------------------------------------

    def _ready(self, now):
        """The queue whose batch is due, oldest first, or the seconds until one is."""
        timeout = self.parameters.batch_timeout_micros / 1e6
        best, wait = None, None
        for queue in self._queues.values():
            if not queue.tasks:
                continue
            oldest = queue.tasks[0].enqueued
            due = oldest if (queue.rows >= self.parameters.execution_batch_size or self._stopping) else oldest + timeout
            if due <= now:
                if best is None or oldest < best.tasks[0].enqueued:
                    best = queue
            else:
                wait = due - now if wait is None else min(wait, due - now)
        return best, wait

    def _take(self, queue) -> list:
        """Pops the oldest tasks that fit one run, all of one trailing shape unless padding."""
        limit = self.parameters.execution_batch_size
        taken, size = [], 0
        shapes = queue.tasks[0].trailing_shapes()
        kept = collections.deque()
        while queue.tasks:
            task = queue.tasks.popleft()
            fits = size + task.rows <= limit
            same = self.parameters.pad_variable_length_inputs or task.trailing_shapes() == shapes
            if fits and same:
                taken.append(task)
                size += task.rows
            else:
                kept.append(task)
                if not fits:
                    break
        kept.extend(queue.tasks)
        queue.tasks = kept
        queue.rows -= size
        return taken

    def _work(self):
        while True:
            with self._condition:
                while True:
                    queue, wait = self._ready(time.monotonic())
                    if queue is not None:
                        tasks = self._take(queue)
                        run = queue.run
                        break
                    if self._stopping and wait is None:
                        return
                    self._condition.wait(wait)
                self._condition.notify()  # another thread may take the next batch
            self._run(run, tasks)

    def _run(self, run, tasks):
        now = time.monotonic()
        live = []
        for task in tasks:
            if task.deadline is not None and now > task.deadline:
                task.future.set_exception(ServingError("DEADLINE_EXCEEDED", "The request's deadline passed in the batch queue"))
            elif task.future.set_running_or_notify_cancel():
                live.append(task)
        if not live:
            return
        size = sum(task.rows for task in live)
        target = next((s for s in self.parameters.allowed_batch_sizes if s >= size), size)
        inputs = _concatenate([task.inputs for task in live], target - size, self.parameters.pad_variable_length_inputs)
        if self.on_batch:
            self.on_batch(size, target - size, [now - task.enqueued for task in live])
        try:
            outputs = run(inputs)
        except ServingError as error:
            if len(live) == 1:
                live[0].future.set_exception(error)
                return
            # One request's bad rows fail the whole run: answer each request on its own, so that
            # only that request fails.
            for task in live:
                try:
                    task.future.set_result(run(task.inputs))
                except ServingError as own:
                    task.future.set_exception(own)
            return
        except BaseException as error:  # noqa: BLE001 - every waiting request must be answered
            for task in live:
                task.future.set_exception(ServingError("INTERNAL", f"{type(error).__name__}: {error}"))
            return
        start = 0
        for task in live:
            try:
                task.future.set_result({key: _rows(value, start, task.rows, size) for key, value in outputs.items()})
            except ServingError as error:
                task.future.set_exception(error)
            start += task.rows


def _rows(value, start, rows, size):
    if np.ndim(value) == 0 or len(value) < size:
        raise ServingError("INVALID_ARGUMENT",
                           "Batched output tensor has 0 dimensions or its 0th dimension is smaller than the batch")
    return value[start:start + rows]


def _concatenate(parts: list[dict], padding: int, pad_lengths: bool) -> dict:
    joined = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if pad_lengths:
            values = _pad_trailing(values)
        if padding:
            values.append(np.repeat(values[0][:1], padding, axis=0))
        joined[key] = np.concatenate(values, axis=0) if len(values) > 1 else values[0]
    return joined


def _pad_trailing(values):
    """Pads every dimension after the first to the largest (zeros, or empty strings)."""
    if all(value.shape[1:] == values[0].shape[1:] for value in values):
        return values
    widest = np.max([value.shape[1:] for value in values], axis=0)
    padded = []
    for value in values:
        fill = b"" if value.dtype.kind in "OS" else 0
        pad = [(0, 0)] + [(0, int(w) - s) for w, s in zip(widest, value.shape[1:])]
        padded.append(np.pad(value, pad, constant_values=fill))
    return padded


def _joined(futures: list[Future]) -> Future:
    """One Future of the rows of several (a split request), in order."""
    joined = Future()
    joined.set_running_or_notify_cancel()
    remaining = [len(futures)]
    lock = threading.Lock()

    def done(_):
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            joined.set_exception(errors[0])
        else:
            results = [f.result() for f in futures]
            joined.set_result({key: np.concatenate([r[key] for r in results], axis=0) for key in results[0]})

    for future in futures:
        future.add_done_callback(done)
    return joined
