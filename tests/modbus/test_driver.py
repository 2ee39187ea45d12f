"""The Modbus driver against the live simulator over real loopback TCP: values, faults, reconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.catalog import Kind
from drivers.errors import DeviceError
from drivers.modbus import ModbusDriver
from drivers.modbus.simulator import ModbusPduSimulator
from drivers.model import Reading
from drivers.simfaults import Fault, parse_faults
from tests.modbus.conftest import free_port

Drivers = Callable[..., ModbusDriver]


def by_key(readings: list[Reading]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(r.metric, r.labels): r.value for r in readings}


def outlet(n: int) -> tuple[tuple[str, str], ...]:
    return (("outlet", str(n)),)


INLET = (("inlet", "1"),)


async def test_poll_reproduces_the_simulators_values(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port)
    before = time.time()
    res = await drv.poll()
    got = by_key(res.readings)
    truth = pdu.truth()
    assert len(res.readings) == len(truth) == 7 + 48 * 4
    assert got == truth  # float32 and whole-Wh values survive the wire bit for bit
    assert res.requests == 50 == len(drv.reads)
    assert pdu.requests == 50
    assert {r.timestamp for r in res.readings} == {res.readings[0].timestamp}
    assert before <= res.readings[0].timestamp <= time.time()
    kinds = {r.metric: r.kind for r in res.readings}
    assert kinds["outlet_energy_joules_total"] is Kind.COUNTER and kinds["outlet_power_watts"] is Kind.GAUGE
    assert (res.info.vendor, res.info.profile, res.info.driver) == ("Raritan", "raritan-px-modbus", "modbus")
    assert pdu.writes == []


async def test_values_are_physically_consistent(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port)
    v = by_key((await drv.poll()).readings)
    volts = v[("inlet_voltage_volts", INLET)]
    assert 220 < volts < 240
    amps = [v[("outlet_current_amperes", outlet(n))] for n in range(1, 49)]
    watts = [v[("outlet_power_watts", outlet(n))] for n in range(1, 49)]
    assert all(0 < a < 5 for a in amps)
    for a, w in zip(amps, watts, strict=True):
        assert 0.85 * volts * a < w <= volts * a * 1.0001  # P = V x I x PF, PF in 0.9..0.99
    assert v[("inlet_current_amperes", INLET)] == pytest.approx(sum(amps), rel=1e-5)
    assert v[("inlet_power_watts", INLET)] == pytest.approx(sum(watts), rel=1e-5)
    va = v[("inlet_apparent_power_voltamperes", INLET)]
    assert v[("inlet_power_factor_ratio", INLET)] == pytest.approx(v[("inlet_power_watts", INLET)] / va, rel=1e-5)
    assert v[("inlet_frequency_hertz", INLET)] == pytest.approx(50, abs=0.5)


async def test_energy_grows_in_step_with_power(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port)
    first = by_key((await drv.poll()).readings)
    pdu.step(3600.0)  # one simulated hour
    second = by_key((await drv.poll()).readings)
    for n in (1, 17, 48):
        de = second[("outlet_energy_joules_total", outlet(n))] - first[("outlet_energy_joules_total", outlet(n))]
        power = second[("outlet_power_watts", outlet(n))]
        assert de == pytest.approx(power * 3600, abs=2 * 3600)  # counters are whole Wh on the wire
    de_inlet = second[("inlet_energy_joules_total", INLET)] - first[("inlet_energy_joules_total", INLET)]
    assert de_inlet == pytest.approx(second[("inlet_power_watts", INLET)] * 3600, abs=2 * 3600)
    # currents drifted, but stayed plausible
    assert first[("outlet_current_amperes", outlet(1))] != second[("outlet_current_amperes", outlet(1))]
    assert 220 < second[("inlet_voltage_volts", INLET)] < 240


async def test_values_drift_on_their_own_when_not_frozen(drivers: Drivers) -> None:
    async with ModbusPduSimulator("pdu-1", seed=3, tick=0.05) as sim:
        drv = drivers(sim.port)
        a = by_key((await drv.poll()).readings)
        await asyncio.sleep(0.1)
        b = by_key((await drv.poll()).readings)
        assert a[("outlet_current_amperes", outlet(5))] != b[("outlet_current_amperes", outlet(5))]
        assert b[("outlet_energy_joules_total", outlet(5))] >= a[("outlet_energy_joules_total", outlet(5))]


async def test_switched_off_outlet(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_outlet("3", False)
    v = by_key((await drivers(pdu.port).poll()).readings)
    assert v[("outlet_on", outlet(3))] == 0.0 and v[("outlet_on", outlet(4))] == 1.0
    assert v[("outlet_current_amperes", outlet(3))] == 0.0


async def test_exception_fault(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_faults(parse_faults("pdu-1:exception=2"))
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port).poll()
    assert ei.value.reason == "exception"
    assert str(ei.value) == "read coil 0+48: exception 2 (illegal data address)"


async def test_read_outside_the_device_block_is_exception_2(drivers: Drivers) -> None:
    async with ModbusPduSimulator("pdu-1", outlets=24) as sim:  # a 24-outlet unit
        with pytest.raises(DeviceError) as ei:
            await drivers(sim.port).poll()  # polled with the 48-outlet profile
        assert ei.value.reason == "exception"
        assert str(ei.value) == "read coil 0+48: exception 2 (illegal data address)"  # outlets 25-48
        res = await drivers(sim.port, max_repeat=24).poll()  # capped to the unit's size
        assert res.requests == 1 + 1 + 24


async def test_drop_then_reconnect(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port)
    await drv.poll()
    pdu.set_faults([Fault("pdu-1", "drop")])
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "connection"
    assert time.monotonic() - t0 < 1.0  # reported at once, not after the 2 s timeout
    with pytest.raises(DeviceError) as ei:
        await drv.poll()  # reconnects, gets dropped again
    assert ei.value.reason == "connection"
    pdu.set_faults([])
    res = await drv.poll()
    assert len(res.readings) == 199
    assert pdu.writes == []


async def test_delay_beyond_timeout_then_recovery(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port, timeout=0.2)
    pdu.set_faults(parse_faults("pdu-1:delay=400ms"))
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "timeout"
    assert str(ei.value) == "read coil 0+48: no response within 0.2s"
    pdu.set_faults([])
    await asyncio.sleep(0.3)  # let the late answer arrive on the old (closed) connection
    assert len((await drv.poll()).readings) == 199


async def test_short_delay_is_just_slow(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port, timeout=1.0)
    pdu.set_faults(parse_faults("pdu-1:delay=5ms"))
    t0 = time.monotonic()
    res = await drv.poll()
    assert len(res.readings) == 199
    assert time.monotonic() - t0 >= 50 * 0.005


async def test_timeout_fault(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_faults(parse_faults("pdu-1:timeout"))
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port, timeout=0.2).poll()
    assert ei.value.reason == "timeout"


async def test_garbage_fault_is_a_protocol_error(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port, profile="eastron-sdm630", unit_id=1)
    pdu.set_faults(parse_faults("pdu-1:garbage"))
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port).poll()  # first read is coil 0+48: an answer with no bits
    assert ei.value.reason == "protocol"
    assert "expected 48" in str(ei.value)
    with pytest.raises(DeviceError) as ei:
        await drv.poll()  # register read: an odd byte count
    assert ei.value.reason == "protocol"
    assert "answer carries 3 bytes, expected" in str(ei.value)


async def test_connection_refused(drivers: Drivers) -> None:
    with pytest.raises(DeviceError) as ei:
        await drivers(free_port()).poll()
    assert ei.value.reason == "connection"
    assert "cannot connect to 127.0.0.1:" in str(ei.value)


async def test_device_restart_is_survived(drivers: Drivers) -> None:
    sim = ModbusPduSimulator("pdu-1", seed=1)
    port = await sim.start()
    drv = drivers(port)
    await drv.poll()
    await sim.stop()
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "connection"
    sim2 = ModbusPduSimulator("pdu-1", seed=1, port=port)
    await sim2.start()
    try:
        assert len((await drv.poll()).readings) == 199
    finally:
        await sim2.stop()


async def test_wrong_unit_id_answers_gateway_exception(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port, unit_id=9).poll()
    assert ei.value.reason == "exception"
    assert "exception 11 (gateway target device failed to respond)" in str(ei.value)


async def test_simulator_records_writes(pdu: ModbusPduSimulator) -> None:
    """The recorder works, so an empty ``writes`` in the other tests means the driver never wrote."""
    client = AsyncModbusTcpClient("127.0.0.1", port=pdu.port, timeout=1, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        r1 = await client.write_register(32778, 7, device_id=1)
        r2 = await client.write_coil(3, False, device_id=1)
        r3 = await client.write_registers(40000, [1, 2], device_id=1)  # undefined address: still recorded
    finally:
        client.close()
    assert r1.isError() and r2.isError() and r3.isError()
    assert [(w.function_code, w.address, w.values) for w in pdu.writes] == [
        (6, 32778, (7,)), (5, 3, (0,)), (16, 40000, (1, 2))
    ]
    truth = pdu.truth()
    assert truth[("outlet_on", outlet(4))] == 1.0  # refused: nothing changed


async def test_many_polls_send_only_read_function_codes(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port)
    for _ in range(5):
        await drv.poll()
    assert pdu.requests == 5 * 50
    assert pdu.writes == []


async def test_concurrent_drivers_share_nothing(drivers: Drivers) -> None:
    sims = [ModbusPduSimulator(f"pdu-{i}", seed=i) for i in range(5)]
    for s in sims:
        await s.start()
        s.frozen = True
    try:
        ds = [drivers(s.port) for s in sims]
        results = await asyncio.gather(*(d.poll() for d in ds))
        for s, r in zip(sims, results, strict=True):
            assert by_key(r.readings) == s.truth()
    finally:
        for s in sims:
            await s.stop()
