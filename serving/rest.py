"""The REST front end of `serving.server`: TF Serving's /v1/models routes over the standard
library's HTTP server, with the stock JSON bodies (util/json_tensor.cc) and status codes
(model_servers/http_server.cc).

Routes (model_servers/http_rest_api_handler.cc): GET /v1/models/NAME[/versions/N |
/labels/L][/metadata] and POST …:predict with the "instances" (row) or "inputs" (columnar) body;
with a monitoring config, GET of its Prometheus path. A path under /v1/ that is none of these is
INVALID_ARGUMENT (400, "Malformed request"); a path outside /v1/ gets a bare 404, as the stock
router answers paths it has no handler for. Errors are `{"error": message}`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from google.protobuf import json_format

from .admission import Limits, Target, predict
from .errors import HTTP_STATUS, ServingError
from .grpc_services import signature_def_map
from .model_manager import Models

log = logging.getLogger("serving.server")

_API = re.compile(r"^/v1/", re.IGNORECASE)  # the stock dispatcher's kPathRegex, "(?i)/v1/.*"
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:predict|:classify|:regress)?$"
)


def to_json(value: np.ndarray):
    """An output as JSON: strings as text, or {"b64": …} when they are not UTF-8."""
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
        raise ServingError("INVALID_ARGUMENT", f"Ragged or malformed input: {error}") from None
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
    """`"predictions"`: one entry a row; a lone output's entries are its values."""
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


def columnar_format(outputs: dict):
    """`"outputs"`: a lone output's value itself, else `{name: value}` (json_tensor.cc)."""
    if len(outputs) == 1:
        return to_json(next(iter(outputs.values())))
    return {key: to_json(value) for key, value in outputs.items()}


def make_rest_handler(models: Models, limits: Limits, batcher=None, metrics=None, metrics_path=None,
                      timeout_seconds: float | None = None):
    """The request handler class; `timeout_seconds` bounds every predict
    (`--rest_api_timeout_in_ms`)."""

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

        def _not_found(self):
            """A path outside /v1/: no handler, a bare 404 (its body read away first)."""
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= (1 << 20):
                self.rfile.read(length)
            else:
                self.close_connection = True
            self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")

        def _route(self, method: str):
            match = _PATH.match(self.path.split("?")[0])
            if not match or (method == "GET") != (match["rest"] in (None, "/metadata")):
                raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {self.path}")
            version = int(match["version"]) if match["version"] else None
            return Target(match["name"], version, match["label"]), match["rest"] or ""

        def do_GET(self):  # noqa: N802 - the stdlib's name
            path = self.path.split("?")[0]
            if metrics_path is not None and path == metrics_path:
                from .monitoring import CONTENT_TYPE

                self._send(HTTPStatus.OK, metrics.page(), CONTENT_TYPE)
                return
            if not _API.match(path):
                self._not_found()
                return
            try:
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
                     "status": {"error_code": s.code, "error_message": s.error}}
                    for s in statuses
                ]})
            except ServingError as error:
                self._error(error)

        def do_POST(self):  # noqa: N802 - the stdlib's name
            if not _API.match(self.path.split("?")[0]):
                self._not_found()
                return
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
                    raise ServingError("INVALID_ARGUMENT", f"The body is not valid JSON: {error}") from None
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

                deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
                _, outputs = predict(models, limits, target, inputs, batcher=batcher, metrics=metrics,
                                     entrypoint="REST", deadline=deadline)
                if rows:
                    self._send(HTTPStatus.OK, {"predictions": row_format(outputs)})
                else:
                    self._send(HTTPStatus.OK, {"outputs": columnar_format(outputs)})
            except ServingError as error:
                self._error(error)
            except ValueError as error:
                self._error(ServingError("INVALID_ARGUMENT", str(error)))

    return Handler


class HTTPServer(ThreadingHTTPServer):
    # The stdlib's listen backlog is 5: a burst of new connections beyond it waits for TCP's
    # one-second SYN retry. Clients that open a connection per request need a deeper one.
    request_queue_size = 512
    daemon_threads = True
