"""End to end over MQTT: the real daemon publishes through a real mosquitto that is stopped and
restarted mid-run, and is itself killed with SIGKILL and restarted; a subscriber sees every seq
of every device, in order, with no gap. The Last Will marks the agent offline after the kill."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from agent.mqtt_broker import start_mosquitto
from agent.payloads import TelemetryPayload
from drivers.modbus.simulator import ModbusPduSimulator
from tests.helpers import RackpulseProcess, require_binary
from tests.mqtt.util import Collector, assert_complete

AGENT_TOPIC = "rackpulse/dc1/r42/_agent/rc-e2e/status"


async def test_no_seq_gap_across_broker_restart_and_agent_kill(tmp_path: Path) -> None:
    broker = start_mosquitto(binary=require_binary("mosquitto"), persist=True)
    sims = [ModbusPduSimulator(f"pdu-{i}", outlets=2) for i in (1, 2, 3)]
    ports = [await s.start() for s in sims]
    cfg: dict[str, Any] = {
        "site": "dc1", "rack": "r42",
        "agent": {"name": "rc-e2e", "interval": "500ms", "timeout": "400ms"},
        "mqtt": {"url": broker.url, "qos": 1, "keepalive": "2s"},
        "devices": [{"name": s.name, "driver": "modbus", "profile": "raritan-px-modbus", "host": "127.0.0.1",
                     "port": p, "max_repeat": 2} for s, p in zip(sims, ports, strict=True)],
    }
    rp = RackpulseProcess(tmp_path, cfg)
    async with Collector(broker.port, "rackpulse/#", persistent=True) as col:
        try:
            rp.start()
            await col.wait_for(lambda c: all(c.last_seq(s.name) >= 3 for s in sims), timeout=20)
            last = col.last(AGENT_TOPIC)
            assert last is not None and last.payload == b"online"  # live delivery clears the retain flag

            # The broker goes away for a while; polling goes on and is spooled.
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(4)
            await asyncio.to_thread(broker.start)
            before_kill = {s.name: col.last_seq(s.name) for s in sims}
            await col.wait_for(lambda c: all(c.last_seq(s.name) >= before_kill[s.name] + 8 for s in sims),
                               timeout=30)

            # The agent dies hard; the Last Will says offline; a restart continues seq with no gap.
            rp.send_signal(signal.SIGKILL)
            assert rp.proc is not None
            await asyncio.to_thread(rp.proc.wait, 10)
            await col.wait_for(lambda c: (m := c.last(AGENT_TOPIC)) is not None and m.payload == b"offline",
                               timeout=10)
            killed_at = {s.name: col.last_seq(s.name) for s in sims}
            rp.stop()
            rp.start()
            await col.wait_for(lambda c: all(c.last_seq(s.name) >= killed_at[s.name] + 4 for s in sims), timeout=30)
            assert rp.stop(signal.SIGTERM) == 0, rp.log()
            await col.wait_for(lambda c: (m := c.last(AGENT_TOPIC)) is not None and m.payload == b"offline",
                               timeout=10)
            await asyncio.sleep(0.5)
            expected = {s.name: col.last_seq(s.name) for s in sims}
            assert_complete(col.seqs(), expected)
            for payload in col.telemetry()[:20]:
                TelemetryPayload.model_validate(payload)  # the schema in docs/ comes from this model
        finally:
            rp.stop(signal.SIGKILL)
            broker.stop()
            for s in sims:
                await s.stop()
