"""sd_notify against a real AF_UNIX datagram socket owned by the test (path and abstract)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.notify import Notifier


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = str(tmp_path / "notify.sock")
    sock.bind(addr)
    sock.settimeout(2)
    yield addr, sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"rackpulse-test-{os.getpid()}-{time.monotonic_ns()}"
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    yield "@" + name, sock
    sock.close()


def test_noop_without_notify_socket() -> None:
    n = Notifier(env={})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.ping() is False
    assert n.watchdog_interval() is None


def test_ready_status_stopping_over_path_socket(path_socket: tuple[str, socket.socket]) -> None:
    addr, sock = path_socket
    n = Notifier(env={"NOTIFY_SOCKET": addr})
    assert n.enabled
    assert n.ready("polling 3 devices")
    assert _recv(sock) == ["READY=1", "STATUS=polling 3 devices"]
    assert n.status("2 up\n1 down")  # a newline would start a new assignment
    assert _recv(sock) == ["STATUS=2 up 1 down"]
    assert n.stopping()
    assert _recv(sock) == ["STOPPING=1"]
    assert n.extend_timeout(1.5)
    assert _recv(sock) == ["EXTEND_TIMEOUT_USEC=1500000"]
    n.close()


def test_abstract_socket(abstract_socket: tuple[str, socket.socket]) -> None:
    addr, sock = abstract_socket
    n = Notifier(env={"NOTIFY_SOCKET": addr})
    assert n.ready()
    assert _recv(sock) == ["READY=1"]


def test_reloading_sends_monotonic_usec(path_socket: tuple[str, socket.socket]) -> None:
    addr, sock = path_socket
    n = Notifier(env={"NOTIFY_SOCKET": addr})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading("reloading config")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = _recv(sock)
    assert lines[0] == "RELOADING=1"
    key, _, val = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(val) <= after
    assert lines[2] == "STATUS=reloading config"


def test_watchdog_interval_and_ping(path_socket: tuple[str, socket.socket]) -> None:
    addr, sock = path_socket
    env = {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier(env=env)
    assert n.watchdog_interval() == 15.0
    assert n.ping()
    assert _recv(sock) == ["WATCHDOG=1"]


@pytest.mark.parametrize(
    "extra",
    [
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},  # meant for another process
        {"WATCHDOG_USEC": "nonsense"},
        {"WATCHDOG_USEC": "0"},
        {},
    ],
)
def test_watchdog_disabled(path_socket: tuple[str, socket.socket], extra: dict[str, str]) -> None:
    addr, sock = path_socket
    n = Notifier(env={"NOTIFY_SOCKET": addr, **extra}, pid=4242)
    assert n.watchdog_interval() is None
    assert n.ping() is False
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(100)


def test_watchdog_without_pid_applies_to_us(path_socket: tuple[str, socket.socket]) -> None:
    addr, _ = path_socket
    assert Notifier(env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "2000000"}).watchdog_interval() == 1.0


def test_dead_socket_does_not_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert n.ready() is False
    assert n.ready() is False
    assert sum("sd_notify" in r.message for r in caplog.records) == 1  # warned once, not per ping


def test_unusable_address_is_ignored() -> None:
    n = Notifier(env={"NOTIFY_SOCKET": "relative/path"})
    assert not n.enabled
    assert n.ready() is False
