"""A 30 s broker outage while polls keep coming: everything arrives afterwards, in order per device,
with its original ts, at the replay rate; and the spool bounds hold while the broker is down."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path

from agent.mqtt_broker import free_port, start_mosquitto
from tests.mqtt.conftest import MakePublisher, require_mosquitto
from tests.mqtt.util import Collector, assert_complete, outcome

OUTAGE = float(os.environ.get("RACKPULSE_TEST_OUTAGE_S", "30"))
DEVICES = [f"pdu-{i:02d}" for i in range(20)]


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def test_broker_outage_replays_everything_in_order(tmp_path: Path, make_publisher: MakePublisher) -> None:
    # Persistence keeps the collector's session across the restart, so it cannot miss the replay.
    broker = start_mosquitto(binary=require_mosquitto(), persist=True)
    stop_feeding = asyncio.Event()

    async def feed() -> None:  # 20 devices every 0.5 s = 40 messages/s, like 400 devices at 10 s
        while not stop_feeding.is_set():
            for d in DEVICES:
                pub.on_poll(outcome(d, n_readings=10))
            await asyncio.sleep(0.5)

    try:
        async with Collector(broker.port, "rackpulse/+/+/+/telemetry", persistent=True) as col:
            replay_rate = 300.0
            pub = await make_publisher(broker.url, backoff_max=2.0, spool={"replay_rate": replay_rate})
            feeder = asyncio.create_task(feed())
            await col.wait_for(lambda c: len(c.messages) >= 40)

            broker.stop()
            down_at = time.time()
            await asyncio.sleep(OUTAGE)
            s = pub.stats()
            backlog = s["mqtt_spooled_messages"]
            assert s["mqtt_connected"] == 0
            assert backlog >= 0.8 * OUTAGE * 40, s
            received_before = len(col.messages)

            broker.start()
            up_at = time.time()
            await col.wait_for(lambda c: len(c.messages) >= received_before + backlog, timeout=60)
            stop_feeding.set()
            await feeder
            expected = {d: pub.spool.seqs.last(d) for d in DEVICES}
            await col.wait_for(lambda c: all(c.last_seq(d) >= n for d, n in expected.items()), 20)
            assert_complete(col.seqs(), expected)

            # Original timestamps: what was polled during the outage carries outage-time ts.
            replayed = col.telemetry()[received_before:]
            during = [t for t in replayed if down_at < parse_ts(t["ts"]) < up_at]
            assert len(during) >= 0.8 * OUTAGE * 40
            # Replay pace: live rate (40/s) + replay_rate, never a flood.
            arrivals = [m.at for m in col.messages[received_before:]]
            span = arrivals[-1] - arrivals[0]
            assert span >= 0.7 * len(arrivals) / (replay_rate + 40), (len(arrivals), span)
            assert pub.stats()["mqtt_dropped_messages_total"] == {"age": 0, "bytes": 0, "overflow": 0}
    finally:
        stop_feeding.set()
        broker.stop()


async def test_spool_bounds_while_broker_is_down(make_publisher: MakePublisher, caplog: object) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens here
    pub = await make_publisher(url, spool={"max_bytes": "20KB", "max_age": "1h"})
    for _ in range(20):
        for d in ("a", "b"):
            pub.on_poll(outcome(d, n_readings=5))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    s = pub.stats()
    assert s["mqtt_spool_bytes"] <= 20_000
    dropped = s["mqtt_dropped_messages_total"]["bytes"]
    assert dropped > 0 and dropped + s["mqtt_spooled_messages"] == 40
    # The oldest went first: what is left is the newest, contiguous per device.
    rows = pub.spool.fetch(0, 1000)
    for d in ("a", "b"):
        seqs = [r.seq for r in rows if r.device == d]
        assert seqs == list(range(21 - len(seqs), 21))
    text = getattr(caplog, "text", "")
    assert text.count("mqtt_spool_dropped") == 1, "drops are reported in one rate-limited line"
    assert "mqtt_spool_dropped bytes=" in text


async def test_spool_max_age_while_broker_is_down(make_publisher: MakePublisher) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    pub = await make_publisher(url, spool={"max_age": "1s"})
    for _ in range(5):
        pub.on_poll(outcome("a"))
    await asyncio.sleep(0.3)
    assert pub.stats()["mqtt_spooled_messages"] == 5
    await asyncio.sleep(2.2)  # the writer applies the age bound even when nothing new arrives
    s = pub.stats()
    assert s["mqtt_spooled_messages"] == 0
    assert s["mqtt_dropped_messages_total"]["age"] == 5
