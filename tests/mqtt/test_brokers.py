"""The local broker helpers the demo uses: mosquitto when installed, else embedded amqtt."""

from __future__ import annotations

from agent.mqtt_broker import EmbeddedBroker, MosquittoBroker, free_port, start_demo_broker, start_embedded_broker
from tests.mqtt.conftest import MakePublisher, require_mosquitto
from tests.mqtt.util import Collector, assert_complete, outcome


async def test_publisher_through_the_embedded_broker(make_publisher: MakePublisher) -> None:
    port = free_port()
    broker = await start_embedded_broker(port)
    try:
        async with Collector(port, "rackpulse/#") as col:
            pub = await make_publisher(broker.url)
            for i in range(50):
                pub.on_poll(outcome(f"pdu-{i % 5}"))
            await col.wait_for(lambda c: c.count() == 50)
            assert_complete(col.seqs(), {f"pdu-{i}": 10 for i in range(5)})
            await pub.stop(timeout=3)
    finally:
        await broker.stop()


async def test_demo_broker_prefers_mosquitto() -> None:
    require_mosquitto()
    handle = await start_demo_broker()
    try:
        assert isinstance(handle, MosquittoBroker) and not isinstance(handle, EmbeddedBroker)
        async with Collector(handle.port, "x/#"):
            pass
    finally:
        await handle.aclose()
