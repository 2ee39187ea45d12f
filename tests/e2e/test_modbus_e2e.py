"""End to end: the real ``rackpulse run`` polls simulated Modbus PDUs and serves them on /metrics."""

from __future__ import annotations

import asyncio
import gzip
import math
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from drivers.modbus.simulator import ModbusPduSimulator
from tests.helpers import RackpulseProcess, http_get, require_binary


async def test_run_serves_what_the_simulator_serves(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    sims = [ModbusPduSimulator(f"pdu-{i}", outlets=8, seed=i) for i in (1, 2)]
    ports = [await s.start() for s in sims]
    for s in sims:
        s.frozen = True  # hold values still so the scrape can be compared exactly
    devices = [{"name": s.name, "driver": "modbus", "profile": "raritan-px-modbus", "host": "127.0.0.1",
                "port": p, "max_repeat": 8} for s, p in zip(sims, ports, strict=True)]
    devices.append({"name": "ghost", "driver": "modbus", "profile": "raritan-px-modbus", "host": "127.0.0.1",
                    "port": 1, "timeout": "300ms", "retries": 0})
    rp = RackpulseProcess(tmp_path, {"site": "dc1", "rack": "r42", "agent": {"interval": "1s"},
                                     "devices": devices})
    try:
        rp.start()
        await asyncio.to_thread(rp.wait_http, "/readyz", 200, 20)
        text = await asyncio.to_thread(rp.metrics)
        got: dict[tuple[str, str, frozenset[tuple[str, str]]], float] = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                if smp.labels.get("device", "").startswith("pdu-"):
                    extra = frozenset((k, v) for k, v in smp.labels.items() if k not in ("site", "rack", "device"))
                    got[(smp.labels["device"], smp.name, extra)] = smp.value
        for sim in sims:
            truth = sim.truth()
            assert truth
            for (metric, labels), want in truth.items():
                key = (sim.name, "rackpulse_" + metric, frozenset(labels))
                assert key in got, f"missing {key}"
                assert math.isclose(got[key], want, rel_tol=1e-9, abs_tol=1e-9), (key, got[key], want)
            assert got[(sim.name, "rackpulse_device_up", frozenset())] == 1.0
            assert not sim.writes, "the agent must never write to a device"
        assert 'rackpulse_device_up{site="dc1",rack="r42",device="ghost"} 0.0' in text
        code, page, headers = http_get(rp.base + "/")
        assert code == 200 and headers["Content-Type"].startswith("text/html")
        assert b"pdu-1" in page and b"ghost" in page and b"connection" in page
        assert 'device="ghost",reason="connection"' in text
        lint = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
        assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
        # OpenMetrics by negotiation, gzip when asked
        code, body, headers = http_get(rp.base + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0",
                                                             "Accept-Encoding": "gzip"})
        assert code == 200 and headers["Content-Encoding"] == "gzip"
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert gzip.decompress(body).endswith(b"# EOF\n")
    finally:
        t0 = time.monotonic()
        assert rp.stop() == 0, rp.log()
        assert time.monotonic() - t0 < 10
        for s in sims:
            await s.stop()
