"""A tiny MQTT subscriber for the demo: ``python -m agent.mqtt_watch HOST PORT [TOPIC]``."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import aiomqtt


async def watch(host: str, port: int, topic: str) -> None:
    """Print every message on ``topic`` as 'topic payload' lines."""
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic, qos=1)
        async for msg in client.messages:
            payload = msg.payload.decode(errors="replace") if isinstance(msg.payload, bytes) else msg.payload
            print(f"{msg.topic} {payload}", flush=True)


def main() -> None:
    """Entry point."""
    if len(sys.argv) < 3:
        sys.exit("usage: python -m agent.mqtt_watch HOST PORT [TOPIC]")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "rackpulse/#"))


if __name__ == "__main__":
    main()
