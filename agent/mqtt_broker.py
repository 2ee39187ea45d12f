"""Local MQTT brokers for the demo and the tests: mosquitto when installed, else embedded amqtt.

:func:`start_mosquitto` runs ``mosquitto -c CONF`` on 127.0.0.1 with a minimal config (anonymous,
no persistence, unlimited queues), optionally with a TLS listener. :func:`start_embedded_broker`
runs amqtt inside this process for ``rackpulse demo`` when mosquitto is missing; it is for demos
only. :func:`start_demo_broker` picks between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("rackpulse.broker")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """The mosquitto binary on PATH (or in /usr/sbin, where Debian puts it), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def _wait_listening(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no broker listening on {host}:{port} after {timeout:g}s") from None
            time.sleep(0.02)


@dataclass
class TlsFiles:
    """Server-side TLS material for a mosquitto listener (PEM paths)."""

    certfile: str
    keyfile: str
    cafile: str | None = None          # set with require_certificate to demand client certs
    require_certificate: bool = False


@dataclass
class MosquittoBroker:
    """A mosquitto subprocess; ``stop()`` ends it, ``start()`` starts it again on the same port."""

    binary: str
    host: str
    port: int
    tls: TlsFiles | None = None
    extra: list[str] = field(default_factory=list)
    anonymous: bool = True  # False: clients must log in (add a password_file line to extra)
    persist: bool = False   # keep sessions and queued messages across a restart (on disk in workdir)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rackpulse-mosquitto-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            *(["persistence true", f"persistence_location {self.workdir}/"] if self.persist else ["persistence false"]),
            "user root" if _is_root() else "",
            # Unlimited queues: tests must see every message, even from a bursting publisher.
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.tls:
            lines += [f"certfile {self.tls.certfile}", f"keyfile {self.tls.keyfile}"]
            if self.tls.cafile:
                lines.append(f"cafile {self.tls.cafile}")
            if self.tls.require_certificate:
                lines.append("require_certificate true")
        lines += self.extra
        return "\n".join(x for x in lines if x) + "\n"

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start (or restart) the broker and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        try:
            _wait_listening(self.host, self.port, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start on {self.host}:{self.port}; log: {self.log_text()[-2000:]}"
            ) from None
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL)."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill(self) -> None:
        """SIGKILL the broker (an abrupt outage)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    async def aclose(self) -> None:
        """Same as stop(), for callers that hold either kind of broker."""
        await asyncio.to_thread(self.stop)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def _is_root() -> bool:
    return os.geteuid() == 0  # mosquitto would drop to user 'mosquitto' and lose our temp files


def start_mosquitto(
    port: int | None = None,
    host: str = "127.0.0.1",
    tls: TlsFiles | None = None,
    extra: list[str] | None = None,
    binary: str | None = None,
    persist: bool = False,
) -> MosquittoBroker:
    """Start mosquitto on ``host:port`` (a free port if None); raise if it is not installed."""
    exe = binary or find_mosquitto()
    if exe is None:
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    b = MosquittoBroker(exe, host, port or free_port(host), tls, list(extra or []), persist=persist)
    return b.start()


@dataclass
class EmbeddedBroker:
    """An amqtt broker running in this event loop (demo only)."""

    broker: Any
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Shut the broker down."""
        with contextlib.suppress(Exception):
            await self.broker.shutdown()

    async def aclose(self) -> None:
        await self.stop()


async def start_embedded_broker(port: int, host: str = "127.0.0.1") -> EmbeddedBroker:
    """Start amqtt (the ``demo`` extra) in this process on ``host:port``."""
    try:
        from amqtt.broker import Broker
    except ImportError as e:
        raise RuntimeError("the embedded broker needs amqtt: pip install 'rackpulse[demo]'") from e
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    return EmbeddedBroker(broker, host, port)


async def start_demo_broker(port: int | None = None, host: str = "127.0.0.1") -> MosquittoBroker | EmbeddedBroker:
    """mosquitto when it is installed, else the embedded amqtt broker. Both have ``url`` and ``aclose()``."""
    port = port or free_port(host)
    if find_mosquitto():
        try:
            return await asyncio.to_thread(start_mosquitto, port, host)
        except (RuntimeError, OSError) as e:
            log.warning("mosquitto_failed error=%r; using the embedded broker", str(e))
    return await start_embedded_broker(port, host)
