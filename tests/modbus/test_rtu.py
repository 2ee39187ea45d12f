"""Modbus RTU framing: over a TCP socket (RTU-over-TCP gateways) and over a real serial line.

The serial line is a pair of pseudo-terminals joined back to back by a small relay on the event
loop (what ``socat pty,raw pty,raw`` would do): the simulator opens one end with pymodbus's serial
server, the driver the other end with pymodbus's serial client, both through pyserial.
"""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from drivers.base import PollSettings
from drivers.errors import DeviceError
from drivers.modbus import PLUGIN, ModbusDriver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.simulator import ModbusPduSimulator
from drivers.profiles import ProfileLibrary
from drivers.simfaults import parse_faults

Drivers = Callable[..., ModbusDriver]


class PtyLine:
    """Two pseudo-terminals whose masters are relayed to each other: a null-modem cable."""

    def __init__(self) -> None:
        self.m1, self.s1 = os.openpty()
        self.m2, self.s2 = os.openpty()
        for fd in (self.s1, self.s2):
            tty.setraw(fd)  # no echo, no line editing: bytes pass untouched
        self.a, self.b = os.ttyname(self.s1), os.ttyname(self.s2)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.m1, self._pump, self.m1, self.m2)
        self.loop.add_reader(self.m2, self._pump, self.m2, self.m1)

    @staticmethod
    def _pump(src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        os.write(dst, data)

    def close(self) -> None:
        for fd in (self.m1, self.m2):
            self.loop.remove_reader(fd)
        for fd in (self.m1, self.m2, self.s1, self.s2):
            os.close(fd)


@pytest_asyncio.fixture
async def line() -> AsyncIterator[PtyLine]:
    pty = PtyLine()
    try:
        yield pty
    finally:
        pty.close()


def rtu_driver(port: str, name: str = "meter", unit_id: int = 3, timeout: float = 1.0) -> ModbusDriver:
    entry: dict[str, Any] = {"name": name, "driver": "modbus", "profile": "eastron-sdm630", "transport": "rtu",
                             "serial_port": port, "baudrate": 9600, "parity": "N", "unit_id": unit_id}
    return PLUGIN.create(ModbusDeviceConfig.model_validate(entry), ProfileLibrary(),
                         PollSettings(interval=10, timeout=timeout, retries=0))


async def test_serial_rtu_over_a_pty_pair(line: PtyLine) -> None:
    sim = ModbusPduSimulator("meter", profile="eastron-sdm630", transport="rtu", serial_port=line.a,
                             baudrate=9600, parity="N", unit_id=3, seed=11)
    await sim.start()
    sim.frozen = True
    drv = rtu_driver(line.b)
    try:
        res = await drv.poll()
        assert {(r.metric, r.labels): r.value for r in res.readings} == sim.truth()
        assert res.requests == 3  # two FC04 reads + the serial number (FC03), read once
        assert res.info.serial == str(sim.serial_number)
        assert (await drv.poll()).requests == 2
        sim.set_faults(parse_faults("meter:exception=6"))
        with pytest.raises(DeviceError) as ei:
            await drv.poll()
        assert ei.value.reason == "exception"
        assert str(ei.value) == "read input 0+18: exception 6 (server device busy)"
        sim.set_faults([])
        assert len((await drv.poll()).readings) == 14
        assert sim.writes == []
    finally:
        await drv.close()
        await sim.stop()


async def test_devices_on_one_bus_share_the_port(line: PtyLine) -> None:
    sim = ModbusPduSimulator("meter", profile="eastron-sdm630", transport="rtu", serial_port=line.a,
                             baudrate=9600, parity="N", unit_id=3)
    await sim.start()
    present = rtu_driver(line.b, "meter-3", unit_id=3)
    absent = rtu_driver(line.b, "meter-4", unit_id=4, timeout=0.3)
    try:
        await present.poll()
        # unit 4 is silent on the bus (RTU devices ignore other addresses): a timeout...
        with pytest.raises(DeviceError) as ei:
            await absent.poll()
        assert ei.value.reason == "timeout"
        # ...that does not disturb unit 3 on the same, still open, port
        results = await asyncio.gather(present.poll(), present.poll())
        assert all(len(r.readings) == 14 for r in results)
    finally:
        await absent.close()
        await present.close()
        await sim.stop()


async def test_missing_serial_port_is_a_connection_error() -> None:
    drv = rtu_driver("/dev/nonexistent-rackpulse-tty")
    try:
        with pytest.raises(DeviceError) as ei:
            await drv.poll()
        assert ei.value.reason == "connection"
        assert "/dev/nonexistent-rackpulse-tty" in str(ei.value)
    finally:
        await drv.close()


async def test_rtu_over_tcp(drivers: Drivers) -> None:
    async with ModbusPduSimulator("pdu-1", transport="rtu-over-tcp", seed=2) as sim:
        sim.frozen = True
        drv = drivers(sim.port, transport="rtu-over-tcp")
        res = await drv.poll()
        assert {(r.metric, r.labels): r.value for r in res.readings} == sim.truth()
        assert res.requests == 50
        sim.set_faults(parse_faults("pdu-1:garbage"))  # CRC-valid frame, odd byte count
        with pytest.raises(DeviceError) as ei:
            await drivers(sim.port, transport="rtu-over-tcp", profile="eastron-sdm630").poll()
        assert ei.value.reason == "protocol"


async def test_orv3_psu_fixed_point_and_string_identity(drivers: Drivers) -> None:
    async with ModbusPduSimulator("psu", profile="orv3-psu", transport="rtu-over-tcp", unit_id=200, seed=4) as sim:
        sim.frozen = True
        drv = drivers(sim.port, profile="orv3-psu", transport="rtu-over-tcp", unit_id=200)
        res = await drv.poll()
        got = {(r.metric, r.labels): r.value for r in res.readings}
        assert got == sim.truth()
        assert res.requests == 2 + 3  # two reads, plus model/serial/firmware strings once
        assert (res.info.vendor, res.info.model, res.info.firmware) == ("OCP", "ORV3 PSU", "1.0-sim")
        assert res.info.serial == f"SN{sim.serial_number}"
        volts = got[("inlet_voltage_volts", (("inlet", "1"),))]
        assert 220 < volts < 240 and volts * 64 == int(volts * 64)  # p6 fixed point: 1/64 V steps
        assert 20 < got[("sensor_temperature_celsius", (("sensor", "inlet"),))] < 30
        assert 7000 < got[("fan_speed_rpm", (("sensor", "fan0"),))] < 11000
        assert (await drv.poll()).requests == 2
