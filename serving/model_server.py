"""`ModelServer`: the gRPC and REST front ends of `serving.server` over one `Models`, one
`Limits`, and optionally a `BatchScheduler` and `ServingMetrics`, built from the server's flags
(every cross-check of the flags is made here, before anything listens); `start()`, then
`stop()`, which drains the requests in flight.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402

from . import grpc_services, rest  # noqa: E402
from .admission import MAX_REQUEST_BYTES, Limits  # noqa: E402
from .model_manager import Loading, Models, ModelSpec, SessionThreads, VersionPolicy  # noqa: E402
from .model_manager import read_config_file  # noqa: E402

log = logging.getLogger("serving.server")


def channel_arguments(text: str) -> list[tuple[str, object]]:
    """`--grpc_channel_arguments` ("key=value,key=value") as gRPC options; an integer value is
    passed as an integer, anything else as a string (as the stock server does)."""
    options = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            options.append((key, int(value)))
        except ValueError:
            options.append((key, value))
    return options


def model_specs(args) -> list[ModelSpec]:
    """The models the flags name: a config file, or one --model_name/--model_base_path."""
    if args.model_config_file:
        if args.model_base_path or args.max_versions is not None:
            raise ValueError("--model_base_path and --max_versions do not apply with --model_config_file "
                             "(the file names the models)")
        return read_config_file(args.model_config_file)
    if not args.model_base_path:
        raise ValueError("give --model_base_path (one model) or --model_config_file")
    if args.model_config_file_poll_wait_seconds:
        raise ValueError("--model_config_file_poll_wait_seconds applies only with --model_config_file")
    versions = 1 if args.max_versions is None else args.max_versions
    if versions < 1:
        raise ValueError(f"--max_versions must be at least 1, got {versions}")
    return [ModelSpec(args.model_name, args.model_base_path, VersionPolicy("latest", versions))]


class ModelServer:
    """Both front ends over one `Models`; `args` are `serving.server`'s flags. A bad flag or
    config file raises ValueError (or OSError for a port) before anything listens."""

    def __init__(self, args):
        from .batching import BatchingParameters, BatchScheduler
        from .monitoring import ServingMetrics, monitoring_path

        self.args = args
        self.config_file = args.model_config_file or None
        specs = model_specs(args)
        if args.batching_parameters_file and not args.enable_batching:
            raise ValueError("--batching_parameters_file applies only with --enable_batching")
        if args.rest_api_port and args.rest_api_port == args.port:
            raise ValueError("--rest_api_port cannot be the same as --port")
        if args.grpc_max_threads < 1:
            raise ValueError(f"--grpc_max_threads must be at least 1, got {args.grpc_max_threads}")
        if args.rest_api_timeout_in_ms < 0:
            raise ValueError(f"--rest_api_timeout_in_ms must be at least 0, got {args.rest_api_timeout_in_ms}")
        parameters = None
        if args.enable_batching:
            parameters = (BatchingParameters.from_file(args.batching_parameters_file)
                          if args.batching_parameters_file else BatchingParameters())
        self.metrics_path = monitoring_path(args.monitoring_config_file or None)
        if self.metrics_path and args.rest_api_port == 0:
            raise ValueError("--monitoring_config_file serves metrics on the REST port: give --rest_api_port")
        self.metrics = ServingMetrics(parameters.thread_pool_name if parameters else "") if self.metrics_path else None
        self.limits = Limits(args.max_request_rows, args.max_request_bytes, args.max_concurrent, args.max_queued)
        threads = SessionThreads.from_flags(args.tensorflow_session_parallelism, args.tensorflow_intra_op_parallelism,
                                            args.tensorflow_inter_op_parallelism)
        loading = Loading.from_flags(args.saved_model_tags, args.max_num_load_retries,
                                     args.load_retry_interval_micros, args.num_request_iterations_for_warmup)
        options = channel_arguments(args.grpc_channel_arguments)
        self.models = Models(specs, threads, self.metrics.load if self.metrics else None,
                             args.enable_model_warmup, loading)
        self.models.check_labels(specs)
        self._config_mtime = _file_mtime(self.config_file)
        self._stop = threading.Event()
        self.batcher = (BatchScheduler(parameters, self.metrics.batch if self.metrics else None)
                        if parameters else None)
        # As the stock server: --grpc_max_threads requests are handled at once (a request waiting
        # for its batch holds its thread), the rest wait their turn, and messages up to INT32_MAX
        # bytes are taken (unless --max_request_bytes says less). With admission, gRPC sheds what
        # would wait beyond the admission queue with RESOURCE_EXHAUSTED.
        receive = min(args.max_request_bytes, MAX_REQUEST_BYTES)
        admitted = args.max_concurrent + args.max_queued if self.limits.admission else None
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max(args.grpc_max_threads, admitted or 0)),
            options=[("grpc.max_receive_message_length", receive),
                     ("grpc.max_send_message_length", MAX_REQUEST_BYTES), *options],
            maximum_concurrent_rpcs=admitted,
        )
        self.health = grpc_services.add_services(
            self.grpc_server, self.models, self.limits, batcher=self.batcher, metrics=self.metrics,
            reload=self.reload, tensor_content=args.enable_serialization_as_tensor_content,
            health=args.enable_grpc_healthcheck_service)
        self.grpc_port = self.grpc_server.add_insecure_port(f"{args.host}:{args.port}")
        if not self.grpc_port:
            raise OSError(f"Cannot listen for gRPC on {args.host}:{args.port}")
        if args.grpc_socket_path and not self.grpc_server.add_insecure_port(f"unix:{args.grpc_socket_path}"):
            raise OSError(f"Cannot listen for gRPC on the socket {args.grpc_socket_path}")
        self.http_server = None
        if args.rest_api_port > 0:  # 0 turns REST off, as in the stock server
            timeout = args.rest_api_timeout_in_ms / 1000 if args.rest_api_timeout_in_ms else None
            self.http_server = rest.HTTPServer(
                (args.host, args.rest_api_port),
                rest.make_rest_handler(self.models, self.limits, self.batcher, self.metrics, self.metrics_path,
                                       timeout))

    def reload(self, specs) -> None:
        """Serves exactly `specs` (HandleReloadConfigRequest, or a changed config file)."""
        self.models.check_labels(specs)
        self.models.configure(specs)
        self.models.poll()

    def _watch_config(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            mtime = _file_mtime(self.config_file)
            if mtime == self._config_mtime:
                continue
            self._config_mtime = mtime
            try:
                self.reload(read_config_file(self.config_file))
                log.info("reloaded the model config file %s", self.config_file)
            except ValueError as error:  # keep serving the previous config
                log.warning("the model config file was not reloaded: %s", error)

    def start(self):
        self.models.start(self.args.file_system_poll_wait_seconds)
        if self.config_file and self.args.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._watch_config, args=(self.args.model_config_file_poll_wait_seconds,),
                             daemon=True).start()
        self.grpc_server.start()
        if self.http_server:
            threading.Thread(target=self.http_server.serve_forever, daemon=True).start()
        rest_port = self.http_server.server_address[1] if self.http_server else 0
        log.info("serving %s: gRPC %s:%d, REST %s, batching %s", ", ".join(self.models.names()), self.args.host,
                 self.grpc_port, f"{self.args.host}:{rest_port}" if self.http_server else "off",
                 "on" if self.batcher else "off")
        print(f"ready grpc={self.grpc_port} rest={rest_port}", flush=True)

    def stop(self):
        log.info("stopping: draining %d requests in flight", self.limits.in_flight)
        self._stop.set()
        if self.health is not None:
            self.health.enter_graceful_shutdown()
        stopped = self.grpc_server.stop(grace=self.args.drain_seconds)
        if self.http_server:
            self.http_server.shutdown()
            self.http_server.server_close()
        self.limits.drain(self.args.drain_seconds)
        stopped.wait(self.args.drain_seconds)
        if self.batcher:
            self.batcher.stop(self.args.drain_seconds)
        self.models.stop()
        log.info("stopped")


def _file_mtime(path):
    try:
        return os.path.getmtime(path) if path else None
    except OSError:
        return None
