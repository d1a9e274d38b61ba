"""Helpers for the serving tests: a server subprocess and polling."""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_NAME = "tfode"


class ServerProcess:
    def __init__(self, base, *extra):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.server", "--model_name", MODEL_NAME,
             "--model_base_path", str(base / MODEL_NAME), "--port", "0", "--rest_api_port", "0",
             "--file_system_poll_wait_seconds", "0.2", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.process.stderr.read()[-3000:]}")
        fields = dict(item.split("=") for item in line.split()[1:])
        self.grpc = f"127.0.0.1:{fields['grpc']}"
        self.rest = f"127.0.0.1:{fields['rest']}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.returncode


def wait_for(condition, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
