"""Test helpers shared across suites: free ports, required binaries, and the real rackpulse process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port on 127.0.0.1 (TCP by default, UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    """A free UDP port on 127.0.0.1."""
    return free_port(socket.SOCK_DGRAM)


def require_binary(name: str) -> str:
    """Path of a binary the test needs; fails loudly (never skips) when it is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert path, f"{name} is required for this test; ./tests/run.sh installs it"
    return path


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM a server the test started, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes, Any]:
    """(status, body, headers) of a GET, without raising on HTTP errors."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


class RackpulseProcess:
    """The real ``rackpulse run`` as a subprocess with a config the test writes."""

    def __init__(self, tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        config.setdefault("prometheus", {})["listen"] = f"127.0.0.1:{self.port}"
        config.setdefault("agent", {}).setdefault("state_dir", str(tmp / "state"))
        self.config_path = tmp / "rackpulse.yaml"
        self.write_config(config)
        self.env = {**os.environ, **(env or {})}
        self.log_path = tmp / "rackpulse.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RackpulseProcess:
        exe = Path(sys.executable).parent / "rackpulse"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(exe), "run", "-c", str(self.config_path)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_http(self, path: str = "/healthz", status: int = 200, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc and self.proc.poll() is None, f"rackpulse exited early:\n{self.log()}"
            try:
                code, _, _ = http_get(self.base + path, timeout=2)
                if code == status:
                    return
                last = code
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{path} never returned {status} (last: {last})\n{self.log()}")

    def metrics(self) -> str:
        code, body, _ = http_get(self.base + "/metrics")
        assert code == 200
        return body.decode()

    def send_signal(self, sig: int) -> None:
        assert self.proc
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def sample_value(text: str, metric: str, **labels: str) -> float | None:
    """The value of the first sample of ``metric`` whose labels include ``labels`` (text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None
