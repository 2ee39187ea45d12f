"""Scale: 1,000 devices. on_poll stays cheap and the publisher keeps well above 100 messages/s."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.mqtt_broker import MosquittoBroker
from tests.mqtt.conftest import MakePublisher
from tests.mqtt.util import Collector, assert_complete, outcome


async def test_thousand_devices(
    broker: MosquittoBroker, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outs = [outcome(f"pdu-{i:04d}", n_readings=24) for i in range(1000)]
    async with Collector(broker.port, "rackpulse/+/+/+/telemetry") as col:
        pub = await make_publisher(broker.url)
        loop = asyncio.get_running_loop()
        stalls: list[float] = []

        async def ticker() -> None:
            while True:
                t = loop.time()
                await asyncio.sleep(0.01)
                stalls.append(loop.time() - t - 0.01)

        tick = asyncio.create_task(ticker())
        rounds, spent = 3, 0.0
        t0 = time.perf_counter()
        for _ in range(rounds):  # each round is 1,000 devices polled at once: the worst burst
            t = time.perf_counter()
            for o in outs:
                pub.on_poll(o)
            spent += time.perf_counter() - t
            await asyncio.sleep(0.5)
        await col.wait_for(lambda c: c.count() >= rounds * 1000, timeout=30)
        elapsed = time.perf_counter() - t0
        tick.cancel()
        per_call = spent / (rounds * 1000)
        assert per_call < 200e-6, f"on_poll takes {per_call * 1e6:.0f} us"
        assert rounds * 1000 / elapsed > 200, f"only {rounds * 1000 / elapsed:.0f} msg/s"
        assert max(stalls) < 0.5, f"event loop stalled {max(stalls) * 1000:.0f} ms"
        assert_complete(col.seqs(), {f"pdu-{i:04d}": rounds for i in range(1000)})
        assert "pending publish calls" not in caplog.text, "in-flight publishes must stay bounded"
