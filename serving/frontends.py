"""The gRPC and REST front ends of `serving.server`, over one `ModelManager` and one `Limits`.

gRPC: `PredictionService` (Predict, GetModelMetadata) and `ModelService` (GetModelStatus), as
tensorflow_model_server registers them. REST: a `ThreadingHTTPServer` handler for TF Serving's
/v1/models routes. `Server` starts both and stops them, draining the requests in flight.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.model_manager import ModelManager, ServingError  # noqa: E402
from serving.admission import Limits, predict  # noqa: E402

log = logging.getLogger("serving.server")

HTTP_STATUS = {
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "UNAVAILABLE": HTTPStatus.SERVICE_UNAVAILABLE,
    "RESOURCE_EXHAUSTED": HTTPStatus.TOO_MANY_REQUESTS,
    "UNIMPLEMENTED": HTTPStatus.NOT_IMPLEMENTED,
    "INTERNAL": HTTPStatus.INTERNAL_SERVER_ERROR,
}
STATE_CODES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def signature_def_map(manager: ModelManager, model_name: str, version: int | None):
    loaded = manager.get(model_name, version)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in loaded.signatures.items():
        signature_map.signature_def[name].CopyFrom(signature)
    return loaded.version, signature_map


# -- gRPC -------------------------------------------------------------------------------------


def _version(model_spec) -> int | None:
    if model_spec.HasField("version"):
        return int(model_spec.version.value)
    if model_spec.version_label:
        raise ServingError("INVALID_ARGUMENT", "Version labels are not supported; use a version number")
    return None


def _abort(context, error: ServingError):
    context.abort(getattr(grpc.StatusCode, error.code), error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, limits: Limits):
        self.manager = manager
        self.limits = limits

    def Predict(self, request, context):
        try:
            inputs = {}
            for key, proto in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(proto)
                except Exception as error:
                    raise ServingError("INVALID_ARGUMENT", f"Input {key!r} is not a valid tensor: {error}")
            version, outputs = predict(self.manager, self.limits, request.model_spec.name,
                                       _version(request.model_spec), request.model_spec.signature_name, inputs)
        except ServingError as error:
            _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        filter_keys = set(request.output_filter) or set(outputs)
        for key, value in outputs.items():
            if key in filter_keys:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError("INVALID_ARGUMENT", "metadata_field must be ['signature_def']")
            version, signature_map = signature_def_map(self.manager, request.model_spec.name,
                                                       _version(request.model_spec))
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
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            statuses = self.manager.status(request.model_spec.name, _version(request.model_spec))
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
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "This server serves one model from its flags")


# -- REST -------------------------------------------------------------------------------------

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$")


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


def make_rest_handler(manager: ModelManager, limits: Limits):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tfode-serving"

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status, payload):
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, error: ServingError):
            self._send(HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": error.message})

        def _route(self):
            match = _PATH.match(self.path.split("?")[0])
            if not match:
                raise ServingError("NOT_FOUND", f"No such resource: {self.path}")
            version = int(match["version"]) if match["version"] else None
            return match["name"], version, match["rest"] or ""

        def do_GET(self):  # noqa: N802 - the stdlib's name
            try:
                name, version, rest = self._route()
                if rest == ":predict":
                    raise ServingError("INVALID_ARGUMENT", "Use POST for :predict")
                if rest == "/metadata":
                    served, signature_map = signature_def_map(manager, name, version)
                    metadata = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
                    self._send(HTTPStatus.OK, {
                        "model_spec": {"name": name, "signature_name": "", "version": str(served)},
                        "metadata": {"signature_def": metadata},
                    })
                    return
                statuses = manager.status(name, version)
                self._send(HTTPStatus.OK, {"model_version_status": [
                    {"version": str(s.version), "state": s.state,
                     "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error}}
                    for s in statuses
                ]})
            except ServingError as error:
                self._error(error)

        def do_POST(self):  # noqa: N802 - the stdlib's name
            try:
                name, version, rest = self._route()
                if rest != ":predict":
                    raise ServingError("NOT_FOUND", f"POST goes to :predict, not {self.path}")
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
                signature_name = body.get("signature_name", "serving_default") if isinstance(body, dict) else ""
                loaded = manager.get(name, version)
                if signature_name not in loaded.signatures:
                    raise ServingError("INVALID_ARGUMENT",
                                       f"Serving signature name: {signature_name!r} not found in signature def")
                inputs, rows = rest_inputs(body, loaded.signatures[signature_name])
                _, outputs = predict(manager, limits, name, version, signature_name, inputs)
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
    """Both front ends over one `ModelManager`; `start()`, then `stop()` (graceful)."""

    def __init__(self, args):
        self.args = args
        self.limits = Limits(args.max_batch_size, args.max_request_bytes, args.max_concurrent,
                             args.max_queued)
        self.manager = ModelManager(args.model_name, args.model_base_path, args.max_versions,
                                    args.session_threads)
        message_bytes = args.max_request_bytes
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.max_concurrent + args.max_queued + 4),
            options=[("grpc.max_receive_message_length", message_bytes),
                     ("grpc.max_send_message_length", 64 << 20)],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.manager, self.limits), self.grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager), self.grpc_server)
        self.grpc_port = self.grpc_server.add_insecure_port(f"{args.host}:{args.port}")
        if not self.grpc_port:
            raise OSError(f"Cannot listen for gRPC on {args.host}:{args.port}")
        self.http_server = None
        if args.rest_api_port >= 0:
            self.http_server = ThreadingHTTPServer((args.host, args.rest_api_port),
                                                   make_rest_handler(self.manager, self.limits))
            self.http_server.daemon_threads = True

    def start(self):
        self.manager.start(self.args.file_system_poll_wait_seconds)
        self.grpc_server.start()
        if self.http_server:
            threading.Thread(target=self.http_server.serve_forever, daemon=True).start()
        log.info("serving %s from %s: gRPC %s:%d, REST %s", self.args.model_name, self.args.model_base_path,
                 self.args.host, self.grpc_port,
                 f"{self.args.host}:{self.http_server.server_address[1]}" if self.http_server else "off")
        rest_port = self.http_server.server_address[1] if self.http_server else 0
        print(f"ready grpc={self.grpc_port} rest={rest_port}", flush=True)

    def stop(self):
        log.info("stopping: draining requests in flight")
        stopped = self.grpc_server.stop(grace=self.args.drain_seconds)
        if self.http_server:
            self.http_server.shutdown()
            self.http_server.server_close()
        self.limits.drain(self.args.drain_seconds)
        stopped.wait(self.args.drain_seconds)
        self.manager.stop()
        log.info("stopped")
