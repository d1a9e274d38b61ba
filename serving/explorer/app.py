"""The explorer's web server: the page's files, and the model server's REST API on the same origin.

    GET  /                      the page (static/index.html)
    GET  /static/NAME           its script and style sheet
    GET  /explorer/config.json  {"models": [...], "server": "host:port", "max_rows": N}
    GET|POST /v1/...            forwarded as they are to the model server's REST API; its answer,
                                status and body, comes back as it is

The page asks the model server everything (decode, encode, interpolate, path, trajectory_latent,
landmarks, locate) through `/v1/models/NAME:predict`, so what it shows is what any REST client
gets. Forwarding on the same origin spares the model server cross-origin headers. A model server
that does not answer becomes a 502 whose JSON `error` says so, like the model server's own errors.
Standard library only: the page needs no framework and nothing is fetched from the network.
"""

from __future__ import annotations

import http.client
import http.server
import json
import mimetypes
import os
import socket
import threading
import urllib.parse

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_BODY_BYTES = 64 << 20  # larger requests than the page ever sends are refused, not read
FORWARD_TIMEOUT_SECONDS = 120.0


class ExplorerServer(http.server.ThreadingHTTPServer):
    """Serves the page on `(host, port)` (port 0: a free one) for the models `model_names` of the
    model server whose REST API is at `rest_address` ("host:port"); the page puts at most
    `max_rows` rows in one request (the server's max_batch_size, when it batches)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, rest_address: str, model_names, max_rows: int):
        if not model_names:
            raise ValueError("give at least one model name")
        if max_rows < 2:
            raise ValueError(f"max_rows must be at least 2 (a trajectory needs two times), got {max_rows}")
        self.max_rows = max_rows
        target = urllib.parse.urlsplit(rest_address if "//" in rest_address else f"http://{rest_address}")
        if target.scheme != "http" or not target.hostname or target.port is None:
            raise ValueError(f"the model server's REST address must be HOST:PORT or http://HOST:PORT, got {rest_address!r}")
        self.rest_host, self.rest_port = target.hostname, target.port
        self.model_names = list(model_names)
        super().__init__((host, port), ExplorerHandler)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        """Serves in a daemon thread; returns it (`shutdown()` stops it)."""
        thread = threading.Thread(target=self.serve_forever, name="explorer", daemon=True)
        thread.start()
        return thread


class ExplorerHandler(http.server.BaseHTTPRequestHandler):
    server: ExplorerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass  # one line per slider move is noise; errors reach the page

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/v1/"):
            return self._forward()
        if path == "/explorer/config.json":
            rest = f"{self.server.rest_host}:{self.server.rest_port}"
            return self._answer(200, json.dumps({"models": self.server.model_names, "server": rest,
                                                   "max_rows": self.server.max_rows}).encode(),
                                "application/json")
        name = "index.html" if path in ("/", "/index.html") else path[len("/static/"):] if path.startswith("/static/") else None
        if name is None or "/" in name or name.startswith(".") or not os.path.isfile(os.path.join(STATIC_DIR, name)):
            return self._answer(404, b"Not found", "text/plain")
        with open(os.path.join(STATIC_DIR, name), "rb") as handle:
            body = handle.read()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self._answer(200, body, kind + ("; charset=utf-8" if kind.startswith("text/") or kind.endswith("javascript") else ""))

    def do_POST(self):
        if not urllib.parse.urlsplit(self.path).path.startswith("/v1/"):
            return self._answer(404, b"Not found", "text/plain")
        return self._forward()

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return self._error(413, f"The request is larger than the explorer forwards ({MAX_BODY_BYTES} bytes).")
        body = self.rfile.read(length) if length else None
        connection = http.client.HTTPConnection(self.server.rest_host, self.server.rest_port,
                                                timeout=FORWARD_TIMEOUT_SECONDS)
        try:
            connection.request(self.command, self.path, body=body,
                               headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
            answer = connection.getresponse()
            self._answer(answer.status, answer.read(), answer.getheader("Content-Type", "application/json"))
        except (OSError, http.client.HTTPException) as error:
            reason = "connection refused" if isinstance(error, ConnectionRefusedError) else (
                "no answer in time" if isinstance(error, socket.timeout) else str(error) or type(error).__name__)
            self._error(502, f"The model server at {self.server.rest_host}:{self.server.rest_port} does not answer "
                             f"({reason}). Start it, or point the explorer at a running one.")
        finally:
            connection.close()

    def _error(self, status: int, message: str):
        self._answer(status, json.dumps({"error": message}).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
