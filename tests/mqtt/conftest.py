"""Fixtures: a real mosquitto per test on a free port, and publishers that are always stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import MqttSettings
from agent.mqtt import MqttPublisher
from agent.mqtt_broker import MosquittoBroker, find_mosquitto, start_mosquitto
from tests.helpers import require_binary as require_binary

SITE, RACK, AGENT = "dc1", "r42", "rc-test"


def require_mosquitto() -> str:
    """The mosquitto binary; the test fails (never skips) when it is missing."""
    exe = find_mosquitto()
    assert exe, "mosquitto is required for the MQTT tests (apt-get install mosquitto)"
    return exe


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    """mosquitto on 127.0.0.1 and a free port: anonymous, no persistence."""
    b = start_mosquitto(binary=require_mosquitto())
    yield b
    b.stop()


def mqtt_settings(url: str, **kw: Any) -> MqttSettings:
    """MqttSettings for tests (keepalive short so dead connections are noticed fast)."""
    spool = kw.pop("spool", {})
    return MqttSettings.model_validate({"url": url, "keepalive": "5s", "spool": spool, **kw})


MakePublisher = Callable[..., Awaitable[MqttPublisher]]


@pytest.fixture
async def make_publisher(tmp_path: Path) -> AsyncIterator[MakePublisher]:
    """Factory: ``await make_publisher(url, state_dir=..., **settings)`` -> a running publisher."""
    running: list[tuple[MqttPublisher, asyncio.Task[None]]] = []

    async def make(url: str, state_dir: Path | None = None, start: bool = True, **kw: Any) -> MqttPublisher:
        ctor = {k: kw.pop(k) for k in ("flush_interval", "backoff_min", "backoff_max", "metrics_hook") if k in kw}
        ctor.setdefault("backoff_min", 0.2)
        ctor.setdefault("backoff_max", 1.0)
        pub = MqttPublisher(SITE, RACK, AGENT, mqtt_settings(url, **kw), state_dir or tmp_path / "state", **ctor)
        if start:
            running.append((pub, asyncio.create_task(pub.run())))
        return pub

    yield make
    for pub, task in running:
        if not task.done():
            await pub.stop(timeout=2)
        await asyncio.gather(task, return_exceptions=True)
