"""`serving.server` as a subprocess on free loopback ports (benchmarks, load tests, tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Starts `python -m serving.server FLAGS --port 0 --rest_api_port FREE` and waits for its
    "ready" line; `grpc` and `rest` are its `host:port` targets, `pid` its process id."""

    def __init__(self, *flags, cwd=None):
        # The log goes to a file, not a pipe nobody reads (a full pipe would block the server).
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"{__package__}.server", "--host", "127.0.0.1", "--port", "0",
             "--rest_api_port", str(free_port()), *flags],
            cwd=cwd, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"server did not start: {line!r} {self.read_log()[-3000:]}")
        fields = dict(item.split("=") for item in line.split()[1:])
        self.grpc = f"127.0.0.1:{fields['grpc']}"
        self.rest = f"127.0.0.1:{fields['rest']}"
        self.pid = self.process.pid

    def read_log(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (drains), then SIGKILL after `timeout`; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
