"""The gRPC and REST front ends of `serving.server`, over one `Models`, one `Limits`, and
optionally a `BatchScheduler` and `ServingMetrics`.

gRPC: `PredictionService` (Predict, GetModelMetadata) and `ModelService` (GetModelStatus,
HandleReloadConfigRequest), as tensorflow_model_server registers them. REST: a
`ThreadingHTTPServer` handler for TF Serving's /v1/models routes and the Prometheus page.
`Server` starts both and stops them, draining the requests in flight.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.admission import Limits, Target, predict  # noqa: E402
from serving.model_manager import ModelSpec, Models, ServingError, SessionThreads, VersionPolicy  # noqa: E402
from serving.model_manager import read_config_file  # noqa: E402
from serving.model_manager import specs_from_config  # noqa: E402

log = logging.getLogger("serving.server")

# The TensorProto field of each output dtype a response is written with by `tensor_proto`.
_VALUE_FIELDS = {np.dtype(np.float32): "float_val", np.dtype(np.float64): "double_val",
                 np.dtype(np.int32): "int_val", np.dtype(np.int64): "int64_val", np.dtype(bool): "bool_val"}

HTTP_STATUS = {
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "UNAVAILABLE": HTTPStatus.SERVICE_UNAVAILABLE,
    "RESOURCE_EXHAUSTED": HTTPStatus.TOO_MANY_REQUESTS,
    "UNIMPLEMENTED": HTTPStatus.NOT_IMPLEMENTED,
    "INTERNAL": HTTPStatus.INTERNAL_SERVER_ERROR,
    "DEADLINE_EXCEEDED": HTTPStatus.GATEWAY_TIMEOUT,
}
STATE_CODES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def signature_def_map(models: Models, target: Target):
    loaded = models.get(target.model_name, target.version, target.label)
    try:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in loaded.signatures.items():
            signature_map.signature_def[name].CopyFrom(signature)
        return loaded.version, signature_map
    finally:
        loaded.release()


# -- gRPC -------------------------------------------------------------------------------------


def tensor_proto(value: np.ndarray):
    """The `TensorProto` `tf.make_tensor_proto(value)` writes, built without its Python checks and
    conversions for the signatures' output dtypes (strings, float32/64, int32/64, bool): a gRPC
    response is built for every request, on the path a batch's answers wait on. Other dtypes go
    to `make_tensor_proto`."""
    value = np.asarray(value)
    strings = value.dtype == object and all(isinstance(item, bytes) for item in value.flat)
    field = "string_val" if strings else _VALUE_FIELDS.get(value.dtype)
    if field is None:
        return tf.make_tensor_proto(value)
    proto = tensor_pb2.TensorProto(dtype=(tf.string if strings else tf.as_dtype(value.dtype)).as_datatype_enum)
    proto.tensor_shape.SetInParent()  # written even for a scalar, as make_tensor_proto does
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if field not in ("string_val", "bool_val") and value.size > 1:
        proto.tensor_content = np.ascontiguousarray(value).tobytes()  # as make_tensor_proto: native order
    else:
        getattr(proto, field).extend(value.ravel().tolist())
    return proto


def _target(model_spec) -> Target:
    version = int(model_spec.version.value) if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return Target(model_spec.name, version, label, model_spec.signature_name)


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _abort(context, error: ServingError):
    context.abort(getattr(grpc.StatusCode, error.code), error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: Models, limits: Limits, batcher=None, metrics=None):
        self.models = models
        self.limits = limits
        self.batcher = batcher
        self.metrics = metrics

    def Predict(self, request, context):
        def inputs(signature):
            decoded = {}
            for key, proto in request.inputs.items():
                try:
                    decoded[key] = tf.make_ndarray(proto)
                except Exception as error:
                    raise ServingError("INVALID_ARGUMENT", f"Input {key!r} is not a valid tensor: {error}")
            return decoded

        try:
            version, outputs = predict(self.models, self.limits, _target(request.model_spec), inputs,
                                       batcher=self.batcher, metrics=self.metrics, entrypoint="GRPC",
                                       deadline=_deadline(context))
        except ServingError as error:
            _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        filter_keys = set(request.output_filter) or set(outputs)
        for key, value in outputs.items():
            if key in filter_keys:
                response.outputs[key].CopyFrom(tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError("INVALID_ARGUMENT", "metadata_field must be ['signature_def']")
            version, signature_map = signature_def_map(self.models, _target(request.model_spec))
        except ServingError as error:
            _abort(context, error)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _unimplemented(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Only Predict and GetModelMetadata are served")

    Classify = Regress = MultiInference = _unimplemented


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: Models, reload=None):
        self.models = models
        self.reload = reload

    def GetModelStatus(self, request, context):
        try:
            statuses = self.models.status(request.model_spec.name, _target(request.model_spec).version)
        except ServingError as error:
            _abort(context, error)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = STATE_CODES[status.state]
            if status.error:
                entry.status.error_code = 13  # INTERNAL, as TF Serving reports load failures
                entry.status.error_message = status.error
        return response

    def HandleReloadConfigRequest(self, request, context):
        """Serves exactly the models of `request.config` from now on (the stock server's
        reload): a config it cannot serve is refused whole with INVALID_ARGUMENT."""
        try:
            self.reload(specs_from_config(request.config))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return model_management_pb2.ReloadConfigResponse()


# -- REST -------------------------------------------------------------------------------------

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:predict|:classify|:regress)?$"
)


def to_json(value: np.ndarray):
    if value.dtype.kind in "OS":
        def text(item):
            try:
                return item.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(item).decode("ascii")}
        return np.vectorize(text, otypes=[object])(value).tolist() if value.size else value.tolist()
    return value.tolist()


def from_json(value):
    """JSON → NumPy; strings become bytes, {"b64": ...} is decoded."""
    def convert(item):
        if isinstance(item, dict):
            if set(item) != {"b64"}:
                raise ServingError("INVALID_ARGUMENT", "Only {'b64': ...} objects may stand for a value")
            return base64.b64decode(item["b64"])
        if isinstance(item, list):
            return [convert(x) for x in item]
        return item.encode("utf-8") if isinstance(item, str) else item

    converted = convert(value)
    try:
        array = np.array(converted, dtype=object if _has_bytes(converted) else None)
    except ValueError as error:
        raise ServingError("INVALID_ARGUMENT", f"Ragged or malformed input: {error}")
    if array.dtype == object and not _has_bytes(converted):
        raise ServingError("INVALID_ARGUMENT", "Ragged or malformed input")
    return array


def _has_bytes(value) -> bool:
    if isinstance(value, list):
        return any(_has_bytes(x) for x in value)
    return isinstance(value, bytes)


def rest_inputs(body: dict, signature) -> tuple[dict, bool]:
    """Named inputs from a REST predict body, and whether the answer is in row format."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ServingError("INVALID_ARGUMENT", "The body must hold exactly one of 'instances' or 'inputs'")
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            if len(signature.inputs) != 1:
                raise ServingError("INVALID_ARGUMENT", "'inputs' must name each input of this signature")
            inputs = {next(iter(signature.inputs)): inputs}
        return {key: from_json(value) for key, value in inputs.items()}, False
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise ServingError("INVALID_ARGUMENT", "'instances' must be a non-empty list")
    if all(isinstance(item, dict) for item in instances):
        keys = set(instances[0])
        if any(set(item) != keys for item in instances):
            raise ServingError("INVALID_ARGUMENT", "Every instance must name the same inputs")
        return {key: from_json([item[key] for item in instances]) for key in keys}, True
    if len(signature.inputs) != 1:
        raise ServingError("INVALID_ARGUMENT", "Instances must be objects naming each input of this signature")
    return {next(iter(signature.inputs)): from_json(instances)}, True


def row_format(outputs: dict) -> list:
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise ServingError(
            "INVALID_ARGUMENT",
            "The outputs do not share a batch size; send 'inputs' (columnar format) instead of 'instances'",
        )
    if len(outputs) == 1:
        return to_json(next(iter(outputs.values())))
    columns = {key: to_json(value) for key, value in outputs.items()}
    return [{key: columns[key][row] for key in columns} for row in range(sizes.pop())]


def make_rest_handler(models: Models, limits: Limits, batcher=None, metrics=None, metrics_path=None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tfode-serving"

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status, payload, content_type="application/json"):
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, error: ServingError):
            self._send(HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": error.message})

        def _route(self, method: str):
            match = _PATH.match(self.path.split("?")[0])
            if not match or (method == "GET") != (match["rest"] in (None, "/metadata")):
                raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {self.path}")
            version = int(match["version"]) if match["version"] else None
            return Target(match["name"], version, match["label"]), match["rest"] or ""

        def do_GET(self):  # noqa: N802 - the stdlib's name
            try:
                if metrics_path is not None and self.path.split("?")[0] == metrics_path:
                    from serving.metrics import CONTENT_TYPE

                    self._send(HTTPStatus.OK, metrics.page(), CONTENT_TYPE)
                    return
                target, rest = self._route("GET")
                if rest == "/metadata":
                    served, signature_map = signature_def_map(models, target)
                    metadata = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
                    self._send(HTTPStatus.OK, {
                        "model_spec": {"name": target.model_name, "signature_name": "", "version": str(served)},
                        "metadata": {"signature_def": metadata},
                    })
                    return
                version = target.version
                if target.label:
                    loaded = models.get(target.model_name, label=target.label)
                    version = loaded.version
                    loaded.release()
                statuses = models.status(target.model_name, version)
                self._send(HTTPStatus.OK, {"model_version_status": [
                    {"version": str(s.version), "state": s.state,
                     "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error}}
                    for s in statuses
                ]})
            except ServingError as error:
                self._error(error)

        def do_POST(self):  # noqa: N802 - the stdlib's name
            try:
                target, rest = self._route("POST")
                if rest != ":predict":
                    raise ServingError("UNIMPLEMENTED", f"{rest[1:]} is not served: these models have Predict signatures only")
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0:
                    raise ServingError("INVALID_ARGUMENT", "The request has no body")
                if length > limits.max_request_bytes:
                    self.close_connection = True
                    remaining = length if length <= 16 * limits.max_request_bytes else 0
                    while remaining > 0:  # read it away, so that the client sees the answer
                        remaining -= len(self.rfile.read(min(1 << 16, remaining))) or remaining
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               {"error": f"The request is over {limits.max_request_bytes} bytes"})
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise ServingError("INVALID_ARGUMENT", f"The body is not valid JSON: {error}")
                if not isinstance(body, dict):
                    raise ServingError("INVALID_ARGUMENT", "The body must be a JSON object")
                signature_name = body.get("signature_name") or "serving_default"
                if not isinstance(signature_name, str):
                    raise ServingError("INVALID_ARGUMENT", "signature_name must be a string")
                target = target._replace(signature_name=signature_name)
                rows = False

                def inputs(signature):
                    nonlocal rows
                    parsed, rows = rest_inputs(body, signature)
                    return parsed

                _, outputs = predict(models, limits, target, inputs, batcher=batcher, metrics=metrics,
                                     entrypoint="REST")
                if rows:
                    self._send(HTTPStatus.OK, {"predictions": row_format(outputs)})
                else:
                    self._send(HTTPStatus.OK, {"outputs": {key: to_json(value) for key, value in outputs.items()}})
            except ServingError as error:
                self._error(error)
            except ValueError as error:
                self._error(ServingError("INVALID_ARGUMENT", str(error)))

    return Handler


# -- process ----------------------------------------------------------------------------------


class Server:
    """Both front ends over one `Models`; `start()`, then `stop()` (graceful).

    `args` are `serving.server`'s flags; a bad config file raises ValueError before anything
    listens."""

    def __init__(self, args):
        from serving.batching import BatchingParameters, BatchScheduler
        from serving.metrics import ServingMetrics, monitoring_path

        self.args = args
        self.config_file = args.model_config_file
        if self.config_file:
            for flag, given in (("--model_base_path", args.model_base_path), ("--max_versions", args.max_versions)):
                if given is not None:
                    raise ValueError(f"{flag} does not apply with --model_config_file (the file names the models)")
            specs = read_config_file(self.config_file)
        elif args.model_base_path:
            if args.model_config_file_poll_wait_seconds:
                raise ValueError("--model_config_file_poll_wait_seconds applies only with --model_config_file")
            versions = 1 if args.max_versions is None else args.max_versions
            if versions < 1:
                raise ValueError(f"--max_versions must be at least 1, got {versions}")
            specs = [ModelSpec(args.model_name, args.model_base_path, VersionPolicy("latest", versions))]
        else:
            raise ValueError("give --model_base_path (one model) or --model_config_file")
        if args.batching_parameters_file and not args.enable_batching:
            raise ValueError("--batching_parameters_file applies only with --enable_batching")
        parameters = None
        if args.enable_batching:
            parameters = (BatchingParameters.from_file(args.batching_parameters_file)
                          if args.batching_parameters_file else BatchingParameters())
        self.metrics_path = monitoring_path(args.monitoring_config_file)
        if self.metrics_path and args.rest_api_port == 0:
            raise ValueError("--monitoring_config_file serves metrics on the REST port: give --rest_api_port")
        self.metrics = ServingMetrics(parameters.thread_pool_name if parameters else "") if self.metrics_path else None
        self.limits = Limits(args.max_batch_size, args.max_request_bytes, args.max_concurrent, args.max_queued)
        threads = SessionThreads.from_flags(args.tensorflow_session_parallelism, args.tensorflow_intra_op_parallelism,
                                            args.tensorflow_inter_op_parallelism)
        self.models = Models(specs, threads, self.metrics.load if self.metrics else None,
                             args.enable_model_warmup)
        self.models.check_labels(specs)
        self._config_mtime = _file_mtime(self.config_file)
        self._stop = threading.Event()
        self.batcher = (BatchScheduler(parameters, self.metrics.batch if self.metrics else None)
                        if parameters else None)
        # Requests wait in gRPC's worker threads (for a slot, or for their batch): enough workers
        # for every request that may wait, and `maximum_concurrent_rpcs` sheds any more at once
        # with RESOURCE_EXHAUSTED instead of letting them queue unseen.
        waiting = args.max_concurrent + args.max_queued
        if parameters:
            waiting = max(waiting, min(parameters.max_enqueued_batches * parameters.execution_batch_size, 512))
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=waiting + 4),
            options=[("grpc.max_receive_message_length", args.max_request_bytes),
                     ("grpc.max_send_message_length", 64 << 20)],
            maximum_concurrent_rpcs=waiting + 4,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.models, self.limits, self.batcher, self.metrics), self.grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelService(self.models, self.reload), self.grpc_server)
        self.grpc_port = self.grpc_server.add_insecure_port(f"{args.host}:{args.port}")
        if not self.grpc_port:
            raise OSError(f"Cannot listen for gRPC on {args.host}:{args.port}")
        self.http_server = None
        if args.rest_api_port > 0:  # 0 turns REST off, as in the stock server
            self.http_server = _HTTPServer(
                (args.host, args.rest_api_port),
                make_rest_handler(self.models, self.limits, self.batcher, self.metrics, self.metrics_path))

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


class _HTTPServer(ThreadingHTTPServer):
    # The stdlib's listen backlog is 5: a burst of new connections beyond it waits for TCP's
    # one-second SYN retry. Clients that open a connection per request need a deeper one.
    request_queue_size = 512
    daemon_threads = True


def _file_mtime(path):
    try:
        return os.path.getmtime(path) if path else None
    except OSError:
        return None
