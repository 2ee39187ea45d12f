"""Fixtures for the Modbus tests: a live simulated PDU on 127.0.0.1 and drivers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from drivers.base import PollSettings
from drivers.modbus import PLUGIN, ModbusDriver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.simulator import ModbusPduSimulator
from drivers.profiles import ProfileLibrary
from tests.helpers import free_port as free_port
from tests.helpers import require_binary as require_binary

MakeDriver = Callable[..., ModbusDriver]


def make_driver(port: int, profile: str = "raritan-px-modbus", timeout: float = 2.0, **extra: Any) -> ModbusDriver:
    """A driver for a device on 127.0.0.1:port (extra keys go into the device config)."""
    entry: dict[str, Any] = {"name": "pdu-1", "driver": "modbus", "host": "127.0.0.1", "port": port,
                             "profile": profile, **extra}
    cfg = ModbusDeviceConfig.model_validate(entry)
    return PLUGIN.create(cfg, ProfileLibrary(), PollSettings(interval=10, timeout=timeout, retries=0))


@pytest_asyncio.fixture
async def pdu() -> AsyncIterator[ModbusPduSimulator]:
    """A 48-outlet Raritan-profile PDU with frozen values (tests step it explicitly)."""
    sim = ModbusPduSimulator("pdu-1", seed=7)
    await sim.start()
    sim.frozen = True
    try:
        yield sim
    finally:
        await sim.stop()


@pytest_asyncio.fixture
async def drivers() -> AsyncIterator[Callable[..., ModbusDriver]]:
    """Factory for drivers that are closed after the test."""
    made: list[ModbusDriver] = []

    def factory(port: int, **kw: Any) -> ModbusDriver:
        d = make_driver(port, **kw)
        made.append(d)
        return d

    yield factory
    for d in made:
        await d.close()
