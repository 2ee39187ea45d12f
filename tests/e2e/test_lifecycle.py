"""The real daemon under a notify socket the test owns: READY, watchdog, HUP with good and bad
configs, and TERM within 10 s, as systemd would drive it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import ModbusPduSimulator
from tests.helpers import RackpulseProcess, http_get


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15, after: float = 0.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            for t, m in self.messages:
                if t >= after and key in m and (value is None or m[key] == value):
                    return m
        raise AssertionError(f"no {key}={value} notification; got {[m for _, m in self.messages]}")


def _devices(ports: list[int]) -> list[dict[str, Any]]:
    return [{"name": f"pdu-{i + 1}", "driver": "modbus", "profile": "raritan-px-modbus", "host": "127.0.0.1",
             "port": p, "max_repeat": 4} for i, p in enumerate(ports)]


def _api(rp: RackpulseProcess) -> dict[str, Any]:
    code, body, _ = http_get(rp.base + "/api/devices")
    assert code == 200
    return {d["name"]: d for d in json.loads(body)["devices"]}


async def test_notify_reload_and_shutdown(tmp_path: Path) -> None:
    sims = [ModbusPduSimulator(f"pdu-{i}", outlets=4) for i in (1, 2, 3)]
    ports = [await s.start() for s in sims]
    ns = NotifySocket(tmp_path / "notify.sock")
    cfg: dict[str, Any] = {"site": "dc1", "rack": "r1", "agent": {"interval": "500ms"}, "devices": _devices(ports[:2])}
    rp = RackpulseProcess(tmp_path, cfg, env={"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "1000000"})
    try:
        rp.start()
        ready = await asyncio.to_thread(ns.wait_for, "READY", "1")
        assert "polling 2 devices" in ready.get("STATUS", "")
        await asyncio.to_thread(ns.wait_for, "WATCHDOG", "1")
        await asyncio.to_thread(rp.wait_http, "/readyz", 200)
        before = await asyncio.to_thread(_api, rp)
        assert set(before) == {"pdu-1", "pdu-2"}

        # A good reload: pdu-2 removed, pdu-3 added, pdu-1 untouched keeps its task (its poll count goes on).
        cfg["devices"] = [_devices(ports)[0], _devices(ports)[2]]
        rp.write_config(cfg)
        t_hup = time.monotonic()
        rp.send_signal(signal.SIGHUP)
        await asyncio.to_thread(ns.wait_for, "RELOADING", "1", 10, t_hup)
        await asyncio.to_thread(ns.wait_for, "READY", "1", 10, t_hup)
        await asyncio.to_thread(rp.wait_http, "/readyz", 200)
        after = await asyncio.to_thread(_api, rp)
        assert set(after) == {"pdu-1", "pdu-3"}
        assert after["pdu-1"]["polls"] >= before["pdu-1"]["polls"]
        assert "reloaded" in rp.log()
        metrics = await asyncio.to_thread(rp.metrics)
        assert 'device="pdu-2"' not in metrics

        # A bad reload is rejected with its problem logged; the old config keeps running.
        rp.config_path.write_text("site: dc1\nrack: r1\ndevices:\n  - {name: x, driver: modbus, port: 99999}\n")
        t_bad = time.monotonic()
        rp.send_signal(signal.SIGHUP)
        await asyncio.to_thread(ns.wait_for, "READY", "1", 10, t_bad)
        await asyncio.sleep(1.2)
        log = rp.log()
        assert "reload_rejected" in log and "devices[0].port" in log
        still = await asyncio.to_thread(_api, rp)
        assert set(still) == {"pdu-1", "pdu-3"}
        assert still["pdu-1"]["polls"] > after["pdu-1"]["polls"]  # polling went on

        # TERM: STOPPING, exit 0, well within 10 s.
        t0 = time.monotonic()
        code = await asyncio.to_thread(rp.stop, signal.SIGTERM)
        elapsed = time.monotonic() - t0
        assert code == 0, rp.log()
        assert elapsed < 10
        ns.wait_for("STOPPING", "1", 2, t0)
        for s in sims:
            assert not s.writes
    finally:
        rp.stop(signal.SIGKILL)
        for s in sims:
            await s.stop()


async def test_bad_config_at_start_exits_2(tmp_path: Path) -> None:
    rp = RackpulseProcess(tmp_path, {"site": "dc1", "rack": "r1", "devices": [{"name": "a", "driver": "nope"}]})
    rp.start()
    assert rp.proc is not None
    code = await asyncio.to_thread(rp.proc.wait, 20)
    assert code == 2
    assert "devices[0].driver" in rp.log()
