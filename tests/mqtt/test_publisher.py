"""The publisher against a live mosquitto: topics, payloads, retained state, removal, stop."""

from __future__ import annotations

import asyncio
import json

from agent.mqtt_broker import MosquittoBroker
from agent.payloads import MetaPayload, StatusPayload, TelemetryPayload
from tests.mqtt.conftest import AGENT, MakePublisher
from tests.mqtt.util import Collector, assert_complete, outcome

BASE = "rackpulse/dc1/r42"
AGENT_TOPIC = f"{BASE}/_agent/{AGENT}/status"


async def test_telemetry_topics_and_payloads(broker: MosquittoBroker, make_publisher: MakePublisher) -> None:
    async with Collector(broker.port, "rackpulse/#") as col:
        pub = await make_publisher(broker.url)
        await col.wait_for(lambda c: c.last(AGENT_TOPIC) is not None)
        for i in range(3):
            pub.on_poll(outcome("pdu-a", n_readings=4, value=100.0 * i))
            pub.on_poll(outcome("pdu-b", n_readings=2))
        await col.wait_for(lambda c: c.count() == 6)
        tele = col.on("/telemetry")
        assert {m.topic for m in tele} == {f"{BASE}/pdu-a/telemetry", f"{BASE}/pdu-b/telemetry"}
        assert not any(m.retain for m in tele)
        assert all(m.qos == 1 for m in tele)
        for m in tele:
            p = TelemetryPayload.model_validate_json(m.payload)
            assert (p.schema_, p.agent, p.site, p.rack) == ("rackpulse.telemetry/1", AGENT, "dc1", "r42")
            assert p.ts.endswith("Z") and len(p.ts) == 24
            assert p.poll_seconds == 0.042
        first = col.telemetry()[0]
        assert first["readings"][0] == {
            "metric": "outlet_power_watts", "labels": {"outlet": "1", "outlet_name": "o1"}, "value": 0.0,
        }
        assert_complete(col.seqs(), {"pdu-a": 3, "pdu-b": 2 + 1})
        assert pub.stats()["mqtt_connected"] == 1


async def test_status_meta_and_agent_status_are_retained(
    broker: MosquittoBroker, make_publisher: MakePublisher
) -> None:
    pub = await make_publisher(broker.url)
    pub.on_poll(outcome("pdu-a"))
    pub.on_poll(outcome("pdu-b", up=False, error="timeout: no complete answer within 3s"))
    async with Collector(broker.port, f"{BASE}/#") as probe:
        await probe.wait_for(lambda c: c.last(f"{BASE}/pdu-b/status") is not None and c.count() == 1)
    # A subscriber arriving later gets the retained state.
    async with Collector(broker.port, f"{BASE}/#") as late:
        await late.wait_for(lambda c: len([m for m in c.messages if m.retain]) >= 5)
        a = late.last(f"{BASE}/pdu-a/status")
        b = late.last(f"{BASE}/pdu-b/status")
        meta = late.last(f"{BASE}/pdu-a/meta")
        agent = late.last(AGENT_TOPIC)
        assert a and b and meta and agent
        assert a.retain and b.retain and meta.retain and agent.retain
        assert agent.payload == b"online"
        sa, sb = StatusPayload.model_validate_json(a.payload), StatusPayload.model_validate_json(b.payload)
        assert (sa.state, sa.error) == ("up", None)
        assert (sb.state, sb.error) == ("down", "timeout: no complete answer within 3s")
        m = MetaPayload.model_validate_json(meta.payload)
        assert (m.vendor, m.model, m.serial, m.profile, m.driver) == ("Acme", "PX-1", "SN1", "test-pdu", "modbus")
        assert m.labels == {"row": "3"}
        assert not late.telemetry(), "telemetry must not be retained"

    # Status changes are published; an unchanged status is not republished.
    async with Collector(broker.port, f"{BASE}/pdu-b/status") as col:
        await col.wait_for(lambda c: len(c.messages) == 1)
        pub.on_poll(outcome("pdu-b", up=False, error="timeout: no complete answer within 3s"))
        pub.on_poll(outcome("pdu-b", up=True))
        await col.wait_for(lambda c: len(c.messages) == 2)
        assert json.loads(col.messages[-1].payload)["state"] == "up"
        await asyncio.sleep(0.3)
        assert len(col.messages) == 2


async def test_meta_published_when_it_changes(broker: MosquittoBroker, make_publisher: MakePublisher) -> None:
    pub = await make_publisher(broker.url)
    async with Collector(broker.port, f"{BASE}/pdu-a/meta") as col:
        pub.on_poll(outcome("pdu-a", serial="SN1"))
        pub.on_poll(outcome("pdu-a", serial="SN1"))
        await col.wait_for(lambda c: len(c.messages) == 1)
        pub.on_poll(outcome("pdu-a", serial="SN2"))  # the PDU was swapped
        await col.wait_for(lambda c: len(c.messages) == 2)
        assert json.loads(col.messages[-1].payload)["serial"] == "SN2"


async def test_on_remove_clears_retained_state(broker: MosquittoBroker, make_publisher: MakePublisher) -> None:
    pub = await make_publisher(broker.url)
    pub.on_poll(outcome("pdu-a"))
    pub.on_poll(outcome("pdu-gone"))
    async with Collector(broker.port, f"{BASE}/+/status") as col:
        await col.wait_for(lambda c: len(c.messages) == 2)
        pub.on_remove("pdu-gone")
        await col.wait_for(lambda c: any(m.payload == b"" for m in c.messages))
    async with Collector(broker.port, f"{BASE}/#") as late:
        await late.wait_for(lambda c: c.last(f"{BASE}/pdu-a/meta") is not None)
        await asyncio.sleep(0.2)
        assert not [m for m in late.messages if "pdu-gone" in m.topic and m.retain]


async def test_stop_flushes_and_publishes_offline(broker: MosquittoBroker, make_publisher: MakePublisher) -> None:
    async with Collector(broker.port, "rackpulse/#") as col:
        pub = await make_publisher(broker.url)
        await col.wait_for(lambda c: c.last(AGENT_TOPIC) is not None)
        for _ in range(50):
            pub.on_poll(outcome("pdu-a"))
        await pub.stop(timeout=5)
        await col.wait_for(lambda c: (m := c.last(AGENT_TOPIC)) is not None and m.payload == b"offline")
        assert_complete(col.seqs(), {"pdu-a": 50})
        assert pub.spool.count == 0
        stats = pub.stats()
        assert stats["mqtt_connected"] == 0
        assert stats["mqtt_spooled_messages"] == 0
        assert stats["mqtt_published_messages_total"] >= 50 + 1 + 2


async def test_stop_without_broker_keeps_messages_spooled(
    broker: MosquittoBroker, make_publisher: MakePublisher
) -> None:
    broker.stop()
    pub = await make_publisher(broker.url)
    for _ in range(10):
        pub.on_poll(outcome("pdu-a"))
    await asyncio.sleep(0.3)
    assert pub.stats()["mqtt_spooled_messages"] == 10
    t0 = asyncio.get_running_loop().time()
    await pub.stop(timeout=2)
    assert asyncio.get_running_loop().time() - t0 < 2.5
    assert pub.stats()["mqtt_spooled_messages"] == 10
    # Nothing was lost: a new publisher on the same state_dir delivers them once the broker is back.
    broker.start()
    async with Collector(broker.port, "rackpulse/#") as col:
        await make_publisher(broker.url)
        await col.wait_for(lambda c: c.count() == 10)
        assert_complete(col.seqs(), {"pdu-a": 10})


async def test_stats_and_metrics_hook(broker: MosquittoBroker, make_publisher: MakePublisher) -> None:
    seen: list[dict[str, object]] = []
    async with Collector(broker.port, "rackpulse/#") as col:
        pub = await make_publisher(broker.url, metrics_hook=seen.append)
        pub.on_poll(outcome("pdu-a"))
        await col.wait_for(lambda c: c.count() == 1)
    s = pub.stats()
    assert set(s) == {
        "mqtt_connected", "mqtt_published_messages_total", "mqtt_spooled_messages", "mqtt_spool_bytes",
        "mqtt_dropped_messages_total",
    }
    assert s["mqtt_dropped_messages_total"] == {"age": 0, "bytes": 0, "overflow": 0}
    assert any(h["mqtt_connected"] == 1 for h in seen)
