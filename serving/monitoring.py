"""Prometheus metrics under the stock server's names (`prometheus_client`).

`tensorflow_model_server` exports its monitoring counters at `/monitoring/prometheus/metrics` on
the REST port when `--monitoring_config_file` holds `prometheus_config { enable: true }`. The
names, labels and buckets here are its own (model_servers/, servables/tensorflow/util.cc,
batching/batching_util.h, batching/batching_session.cc):

  :tensorflow:serving:request_count{model_name, status}            counter (every request, by code)
  :tensorflow:serving:request_latency{model_name, API, entrypoint}  histogram (µs, successes only;
                                                                    10 µs × 1.8^i, 33 buckets)
  :tensorflow:serving:runtime_latency{model_name, API, runtime}     histogram (µs, as above)
  :tensorflow:cc:saved_model:load_attempt_count{model_path, status} counter
  :tensorflow:cc:saved_model:load_latency{model_path}               counter (µs)
  :tensorflow:serving:batching_session:queuing_latency{thread_pool_name}  histogram (µs;
                                                                    100 µs × 1.2^i, 52 buckets)
  :tensorflow:serving:batching_session:input_batch_size             histogram (rows before padding)
  :tensorflow:serving:batching_session:processed_batch_size         histogram (rows run, padding included)
  :tensorflow:serving:batching_session:padding_size{execution_batch_size}  histogram (2^i, 14 buckets)

and the ODE's own: `:tfode:serving:solver_function_evaluations{model_name}`, a histogram of the
vector field's evaluations per request (the run it was answered in), from the `nfe` output of
the signatures that have it.

prometheus_client names a counter's samples `NAME_total`; the stock server does not, so the
stock-named counters are kept in a collector that yields their samples under the stock names,
and the page's `# HELP`/`# TYPE` lines for them are written under the same names.
"""

from __future__ import annotations

import threading

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import Metric

# The stock server exports no `*_created` series.
prometheus_client.disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = tuple(10.0 * 1.8**i for i in range(33))
QUEUING_BUCKETS = tuple(100.0 * 1.2**i for i in range(52))
SIZE_BUCKETS = tuple(float(2**i) for i in range(14))
NFE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class _StockCounters:
    """Counters whose samples carry the stock names (no `_total` suffix)."""

    def __init__(self):
        self._values: dict[tuple, dict[tuple, float]] = {}
        self._help: dict[str, tuple[str, tuple]] = {}
        self._lock = threading.Lock()

    def declare(self, name, documentation, labels):
        self._help[name] = (documentation, tuple(labels))
        self._values[name] = {}

    def add(self, name, labels: dict, amount: float = 1.0):
        key = tuple(labels[label] for label in self._help[name][1])
        with self._lock:
            self._values[name][key] = self._values[name].get(key, 0.0) + amount

    def collect(self):
        with self._lock:
            snapshot = {name: dict(values) for name, values in self._values.items()}
        for name, (documentation, labels) in self._help.items():
            metric = Metric(name, documentation, "counter")
            for key, value in sorted(snapshot[name].items()):
                metric.add_sample(name, dict(zip(labels, key)), value)
            yield metric


class ServingMetrics:
    """The server's metrics and the page that shows them."""

    REQUEST_COUNT = ":tensorflow:serving:request_count"
    LOAD_ATTEMPTS = ":tensorflow:cc:saved_model:load_attempt_count"
    LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"

    def __init__(self, thread_pool_name: str = "model_server_batch_threads"):
        self.registry = CollectorRegistry(auto_describe=True)
        self.thread_pool_name = thread_pool_name
        self.counters = _StockCounters()
        self.counters.declare(self.REQUEST_COUNT, "The total number of requests.", ["model_name", "status"])
        self.counters.declare(self.LOAD_ATTEMPTS, "The number of times a SavedModel was attempted to load.",
                              ["model_path", "status"])
        self.counters.declare(self.LOAD_LATENCY, "Latency in microseconds for SavedModels successfully loaded.",
                              ["model_path"])
        self.registry.register(self.counters)
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency", "Distribution of wall time (in microseconds) for requests.",
            ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency", "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ["model_name", "API", "runtime"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queuing_latency = Histogram(
            ":tensorflow:serving:batching_session:queuing_latency",
            "Tracks the latency to process a task in the batching queue (in microseconds).",
            ["thread_pool_name"], buckets=QUEUING_BUCKETS, registry=self.registry)
        self.input_batch_size = Histogram(
            ":tensorflow:serving:batching_session:input_batch_size",
            "Tracks the batch size distribution on the inputs.", buckets=SIZE_BUCKETS, registry=self.registry)
        self.batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Tracks the batch size distribution on processing.", buckets=SIZE_BUCKETS, registry=self.registry)
        self.padding_size = Histogram(
            ":tensorflow:serving:batching_session:padding_size",
            "Tracks the padding size distribution on batches.", ["execution_batch_size"],
            buckets=SIZE_BUCKETS, registry=self.registry)
        self.nfe = Histogram(
            ":tfode:serving:solver_function_evaluations",
            "Vector-field evaluations of the ODE solver per request (for the run that answered it).",
            ["model_name"],
            buckets=NFE_BUCKETS, registry=self.registry)

    # -- events ----------------------------------------------------------------------------

    def request(self, model_name: str, status: str, seconds: float, entrypoint: str, api: str = "Predict"):
        """Counts a request by its status code name; its latency only when it succeeded."""
        self.counters.add(self.REQUEST_COUNT, {"model_name": model_name, "status": status})
        if status == "OK":
            self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def runtime(self, model_name: str, seconds: float, api: str = "Predict"):
        self.runtime_latency.labels(model_name, api, "TF1").observe(seconds * 1e6)

    def load(self, path: str, ok: bool, seconds: float):
        self.counters.add(self.LOAD_ATTEMPTS, {"model_path": path, "status": "success" if ok else "fail"})
        if ok:
            self.counters.add(self.LOAD_LATENCY, {"model_path": path}, seconds * 1e6)

    def batch(self, size: int, padding: int, queued_seconds: list[float]):
        """A batch of `size` rows run as `size + padding` rows, its tasks queued that long."""
        self.input_batch_size.observe(size)
        self.batch_size.observe(size + padding)
        self.padding_size.labels(str(size + padding)).observe(padding)
        for seconds in queued_seconds:
            self.queuing_latency.labels(self.thread_pool_name).observe(seconds * 1e6)

    def solver_evaluations(self, model_name: str, count: float):
        self.nfe.labels(model_name).observe(float(count))

    # -- the page --------------------------------------------------------------------------

    def page(self) -> bytes:
        text = generate_latest(self.registry).decode("utf-8")
        for name in (self.REQUEST_COUNT, self.LOAD_ATTEMPTS, self.LOAD_LATENCY):
            text = text.replace(f"# HELP {name}_total ", f"# HELP {name} ")
            text = text.replace(f"# TYPE {name}_total counter", f"# TYPE {name} counter")
        return text.encode("utf-8")


def monitoring_path(config_file: str | None) -> str | None:
    """The metrics path a `--monitoring_config_file` enables (`MonitoringConfig` text proto:
    `prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }`), or None."""
    if not config_file:
        return None
    from . import protos

    config = protos.parse_file(config_file, "MonitoringConfig", "monitoring config file").prometheus_config
    if not config.enable:
        return None
    path = config.path or "/monitoring/prometheus/metrics"
    if not path.startswith("/"):
        raise ValueError(f"{config_file}: the metrics path must start with '/', got {path!r}")
    return path
