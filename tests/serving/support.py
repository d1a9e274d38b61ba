"""Helpers for the serving tests: a server subprocess and polling."""

import json
import os
import time
import urllib.error
import urllib.request

from serving import launch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_NAME = "tfode"


class ServerProcess(launch.ServerProcess):
    """The test model's server; `model=False` leaves the model flags to `extra` (e.g.
    `--model_config_file`)."""

    def __init__(self, base, *extra, model=True):
        model_flags = ["--model_name", MODEL_NAME, "--model_base_path", str(base / MODEL_NAME)] if model else []
        super().__init__(*model_flags, "--file_system_poll_wait_seconds", "0.2", *extra, cwd=ROOT)


def wait_for(condition, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def http(method, url, body=None):
    """`(status, JSON answer)` of a REST call to `url` (host:port/path); a body that is not
    bytes is sent as JSON; an empty answer reads as {}."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"http://{url}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
