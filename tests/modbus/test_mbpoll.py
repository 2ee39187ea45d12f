"""Cross-check with the real ``mbpoll`` binary: raw registers decode per the vendors' float32 BE
encoding, and agree with what the driver reports."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Callable

from drivers.modbus import ModbusDriver
from drivers.modbus.simulator import ModbusPduSimulator
from tests.modbus.conftest import require_binary

Drivers = Callable[..., ModbusDriver]
LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)\s*$")


async def mbpoll(port: int, *args: str) -> dict[int, str]:
    """Run ``mbpoll`` once against 127.0.0.1:port; returns {reference: printed value}."""
    exe = require_binary("mbpoll")
    proc = await asyncio.create_subprocess_exec(
        exe, "-m", "tcp", "-a", "1", "-1", "-o", "2", "-p", str(port), *args, "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, f"mbpoll {' '.join(args)} failed: {out.decode()} {err.decode()}"
    values = {}
    for line in out.decode().splitlines():
        m = LINE.match(line.strip())
        if m:
            values[int(m.group(1))] = m.group(2)
    assert values, out.decode()
    return values


def f32_be(hi: int, lo: int) -> float:
    """The vendor's documented encoding: IEEE float32, high word first, each word high byte first."""
    return float(struct.unpack(">f", struct.pack(">HH", hi, lo))[0])


async def test_mbpoll_raw_inlet_registers_match_driver(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    readings = {(r.metric, r.labels): r.value for r in (await drivers(pdu.port).poll()).readings}
    inlet = (("inlet", "1"),)
    # Modbus references are 1-based: reference 12297 is wire address 12296 (Xerus inlet +8).
    raw = await mbpoll(pdu.port, "-r", "12297", "-c", "28", "-t", "4:hex")
    regs = {ref - 1: int(v, 16) for ref, v in raw.items()}
    assert sorted(regs) == list(range(12296, 12324))
    for addr, metric in [(12296, "inlet_voltage_volts"), (12298, "inlet_current_amperes"),
                         (12306, "inlet_power_watts"), (12308, "inlet_apparent_power_voltamperes"),
                         (12310, "inlet_power_factor_ratio"), (12322, "inlet_frequency_hertz")]:
        assert f32_be(regs[addr], regs[addr + 1]) == readings[(metric, inlet)], metric
    wh = int.from_bytes(struct.pack(">4H", *(regs[12312 + i] for i in range(4))), "big")
    assert wh * 3600.0 == readings[("inlet_energy_joules_total", inlet)]
    assert 220 < f32_be(regs[12296], regs[12297]) < 240


async def test_mbpoll_float_decoding_agrees_for_every_outlet(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    readings = {(r.metric, r.labels): r.value for r in (await drivers(pdu.port).poll()).readings}
    for n in (1, 2, 24, 48):
        base = 32768 + (n - 1) * 256
        # -0: PDU (0-based) addressing; -B: big-endian word order, as the Xerus layout documents
        got = await mbpoll(pdu.port, "-0", "-r", str(base + 10), "-c", "5", "-t", "4:float", "-B")
        amps = float(got[base + 10])
        watts = float(got[base + 18])
        assert abs(amps - readings[("outlet_current_amperes", (("outlet", str(n)),))]) <= 1e-5 * max(amps, 1)
        assert abs(watts - readings[("outlet_power_watts", (("outlet", str(n)),))]) <= 1e-5 * max(watts, 1)


async def test_mbpoll_coils_match_outlet_state(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_outlet("2", False)
    readings = {(r.metric, r.labels): r.value for r in (await drivers(pdu.port).poll()).readings}
    got = await mbpoll(pdu.port, "-r", "1", "-c", "48", "-t", "0")
    for n in range(1, 49):
        assert float(got[n]) == readings[("outlet_on", (("outlet", str(n)),))]
    assert got[2] == "0"


async def test_mbpoll_input_registers_of_a_meter(drivers: Drivers) -> None:
    async with ModbusPduSimulator("meter", profile="eastron-sdm630", seed=5) as sim:
        sim.frozen = True
        res = await drivers(sim.port, profile="eastron-sdm630").poll()
        readings = {(r.metric, r.labels): r.value for r in res.readings}
        raw = await mbpoll(sim.port, "-0", "-r", "0", "-c", "18", "-t", "3:hex")  # FC04 input registers
        regs = [int(raw[a], 16) for a in range(18)]
        for i, metric in enumerate(["inlet_voltage_volts", "inlet_current_amperes", "inlet_power_watts"]):
            for p in range(3):
                a = i * 6 + p * 2
                key = (metric, (("inlet", "1"), ("phase", f"L{p + 1}")))
                assert f32_be(regs[a], regs[a + 1]) == readings[key]
        assert res.info.serial == str(int(sim.serial_number))
        assert sim.writes == []
