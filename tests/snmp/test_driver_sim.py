"""The SNMP driver against the simulated agent (real UDP on loopback), v2c and v3, every profile.

The simulator's clock is frozen, so expected values are computed from the same device model the
simulator answers from, scaled the way the real device would report them.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from drivers.catalog import Kind
from drivers.errors import DeviceError
from drivers.model import PollResult, Reading
from drivers.simfaults import parse_faults
from drivers.snmp.simulator import PduDevice, SnmpSimulator, SwitchDevice, switch_sensors
from tests.snmp.conftest import V3, FakeClock, MakeDriver


def by_key(result: PollResult) -> dict[tuple[str, tuple[tuple[str, str], ...]], Reading]:
    out = {(r.metric, r.labels): r for r in result.readings}
    assert len(out) == len(result.readings), "duplicate series in one poll"
    return out


def value(result: PollResult, metric: str, **labels: str) -> float:
    """The one reading of ``metric`` whose labels include ``labels`` (exactly ``labels`` if several do)."""
    got = [r for r in result.readings if r.metric == metric and all(dict(r.labels).get(k) == v
                                                                       for k, v in labels.items())]
    if len(got) > 1:
        got = [r for r in got if dict(r.labels) == labels]
    assert len(got) == 1, f"{metric} {labels}: {len(got)} readings"
    return got[0].value


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_switch_if_mib_and_entity_sensor(sim: SnmpSimulator, make_driver: MakeDriver, clock: FakeClock,
                                               version: str) -> None:
    dev = sim.add_switch("sw-1", ports=12)
    clock.advance(3600)
    drv = make_driver(sim, "sw-1", ["if-mib", "entity-sensor"], version=version)
    res = await drv.poll()
    now = clock.now
    series = by_key(res)
    assert len(series) == len(res.readings)
    for p in range(1, 13):
        lbl = {"port": f"Ethernet{p}", "if_index": str(p)}
        assert value(res, "port_receive_bytes_total", **lbl) == dev.octets(p, "in", now)
        assert value(res, "port_transmit_bytes_total", **lbl) == dev.octets(p, "out", now)
        assert value(res, "port_receive_packets_total", **lbl) == dev.octets(p, "in", now) // 900
        assert value(res, "port_up", **lbl) == (1.0 if dev.oper_up(p) else 0.0)
        assert value(res, "port_admin_up", **lbl) == (1.0 if dev.admin_up(p) else 0.0)
        assert value(res, "port_speed_bytes", **lbl) == dev.speed(p) / 8
    assert [r.kind for r in res.readings if r.metric == "port_receive_bytes_total"] == [Kind.COUNTER] * 12
    assert value(res, "port_up", port="Ethernet7") == 0.0 and value(res, "port_admin_up", port="Ethernet11") == 0.0

    for _idx, _cls, name, typ, scale, prec, fn in switch_sensors(12):
        raw = round(fn(dev, now) / 10.0 ** (3 * (scale - 9)) * 10.0**prec)
        si = raw * 10.0 ** (3 * (scale - 9)) * 10.0 ** (-prec)
        port = name.rsplit(" ", 1)[1] if " for " in name else None
        if typ == 6 and port:
            metric = "optic_rx_power_dbm" if "RX" in name else "optic_tx_power_dbm"
            assert value(res, metric, sensor=name, port=port) == pytest.approx(10 * math.log10(si * 1000))
        elif typ == 5:
            assert value(res, "optic_bias_current_amperes", sensor=name, port=port or "") == pytest.approx(si)
        elif typ == 8:
            metric = "optic_temperature_celsius" if port else "sensor_temperature_celsius"
            assert value(res, metric, sensor=name) == pytest.approx(si)
        elif typ == 10:
            assert value(res, "fan_speed_rpm", sensor=name) == pytest.approx(si)
        else:
            assert value(res, "psu_power_watts", sensor=name) == pytest.approx(si)
    # Optic power is in dBm within the range a real transceiver reports.
    rx = [r.value for r in res.readings if r.metric == "optic_rx_power_dbm"]
    assert len(rx) == 4 and all(-5 < v < 0 for v in rx)
    assert (res.info.vendor, res.info.model, res.info.profile) == ("Rackpulse Sim", "RPS-12X",
                                                                   "if-mib,entity-sensor")
    assert res.info.serial == f"SIM{dev.seed:08X}" and res.info.firmware == "4.30.1F-sim"
    assert drv.sys_descr.startswith("rackpulse simulated switch")
    # One GET plus a handful of multi-column GETBULKs; fewer than one request per column.
    assert 2 <= res.requests <= 8, res.requests
    assert sim.sets == []


async def test_counters_move_with_time(sim: SnmpSimulator, make_driver: MakeDriver, clock: FakeClock) -> None:
    sim.add_switch("sw-1", ports=4)
    drv = make_driver(sim, "sw-1", ["if-mib"])
    first = value(await drv.poll(), "port_receive_bytes_total", port="Ethernet1")
    clock.advance(10)
    second = value(await drv.poll(), "port_receive_bytes_total", port="Ethernet1")
    rate = (second - first) / 10
    assert 0.02 * 1.25e9 <= rate <= 0.52 * 1.25e9  # 2-52 % of a 10 Gb/s port


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_apc_rpdu2(sim: SnmpSimulator, make_driver: MakeDriver, clock: FakeClock, version: str) -> None:
    dev: PduDevice = sim.add_pdu("pdu-a", "apc-rpdu2", outlets=24)
    clock.advance(86400)
    res = await make_driver(sim, "pdu-a", ["apc-rpdu2"], version=version).poll()
    now = clock.now
    for o in range(1, 25):
        lbl = {"outlet": str(o), "outlet_name": f"server-{o:02d}"}
        assert value(res, "outlet_power_watts", **lbl) == round(dev.watts(o, now))
        assert value(res, "outlet_current_amperes", **lbl) == pytest.approx(round(dev.amps(o, now) * 10) / 10)
        assert value(res, "outlet_energy_joules_total", **lbl) == round(dev.energy_j(o, now) / 3.6e5) * 3.6e5
        assert value(res, "outlet_on", **lbl) == (1.0 if dev.outlet_on(o) else 0.0)
    phase = {"inlet": "1", "phase": "1"}
    volts = value(res, "inlet_voltage_volts", **phase)
    amps = value(res, "inlet_current_amperes", **phase)
    watts = value(res, "inlet_power_watts", **phase)
    pf = value(res, "inlet_power_factor_ratio", **phase)
    assert volts == round(dev.volts(now))
    assert watts == round(dev.total_watts(now) / 10) * 10
    assert watts == pytest.approx(volts * amps * pf, rel=0.03)  # the readings agree with each other
    assert value(res, "inlet_energy_joules_total", inlet="1") == round(dev.total_energy_j(now) / 3.6e5) * 3.6e5
    assert value(res, "inlet_apparent_power_voltamperes", inlet="1") == round(dev.total_va(now) / 10) * 10
    assert (res.info.vendor, res.info.model, res.info.firmware) == ("APC", "AP8868", "v6.8.2")


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_raritan_pdu2_decimal_digits(sim: SnmpSimulator, make_driver: MakeDriver, clock: FakeClock,
                                           version: str) -> None:
    dev = sim.add_pdu("pdu-r", "raritan-pdu2", outlets=8)
    clock.advance(7200)
    drv = make_driver(sim, "pdu-r", ["raritan-pdu2"], version=version)
    res = await drv.poll()
    now = clock.now
    assert value(res, "inlet_current_amperes", inlet="1") == round(dev.total_amps(now) * 1000) / 1000
    assert value(res, "inlet_voltage_volts", inlet="1") == round(dev.volts(now))
    assert value(res, "inlet_frequency_hertz", inlet="1") == 50.0
    assert value(res, "inlet_power_factor_ratio", inlet="1") == pytest.approx(
        round(dev.total_watts(now) / dev.total_va(now) * 100) / 100)
    assert value(res, "inlet_energy_joules_total", inlet="1") == round(dev.total_energy_j(now) / 3600) * 3600
    for o in range(1, 9):
        lbl = {"outlet": str(o), "outlet_name": f"server-{o:02d}"}
        assert value(res, "outlet_current_amperes", **lbl) == pytest.approx(round(dev.amps(o, now) * 1000) / 1000)
        assert value(res, "outlet_power_watts", **lbl) == round(dev.watts(o, now))
        assert value(res, "outlet_on", **lbl) == (1.0 if dev.outlet_on(o) else 0.0)
    assert value(res, "sensor_temperature_celsius", sensor="Temperature 1") == round(dev.temperature(now), 1)
    assert 0.3 < value(res, "sensor_humidity_ratio", sensor="Humidity 1") < 0.5
    assert (res.info.vendor, res.info.model) == ("Raritan", "PX3-5493U-K2")
    assert drv.sys_object_id == (1, 3, 6, 1, 4, 1, 13742, 6)


async def test_energy_grows_and_agrees_with_power(sim: SnmpSimulator, make_driver: MakeDriver,
                                                  clock: FakeClock) -> None:
    sim.add_pdu("pdu-r", "raritan-pdu2", outlets=4)
    drv = make_driver(sim, "pdu-r", ["raritan-pdu2"])
    e1 = value(await drv.poll(), "inlet_energy_joules_total", inlet="1")
    clock.advance(3600)
    res = await drv.poll()
    e2 = value(res, "inlet_energy_joules_total", inlet="1")
    mean_watts = (e2 - e1) / 3600
    assert mean_watts == pytest.approx(value(res, "inlet_power_watts", inlet="1"), rel=0.1)


async def test_many_devices_share_one_engine(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    names = [f"sw-{i}" for i in range(20)]
    for n in names:
        sim.add_switch(n, ports=8)
    drivers = [make_driver(sim, n, ["if-mib"], version="3" if i % 2 else "2c") for i, n in enumerate(names)]
    results = await asyncio.gather(*(d.poll() for d in drivers))
    for n, res in zip(names, results, strict=True):
        dev = sim.device(n)
        assert isinstance(dev, SwitchDevice)
        assert len(res.readings) == 8 * 11
        assert value(res, "port_receive_bytes_total", port="Ethernet3") == dev.octets(3, "in", sim.clock())


async def test_wrong_profile_is_no_such_object(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    sim.add_switch("sw-1", ports=4)
    with pytest.raises(DeviceError) as e:
        await make_driver(sim, "sw-1", ["apc-rpdu2"]).poll()
    assert e.value.reason == "no_such_object"
    assert "sw-1" in str(e.value) and "apc-rpdu2" in str(e.value) and "1.3.6.1.4.1.8072.3.2.10" in str(e.value)


async def test_inline_oids(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    sim.add_switch("sw-1", ports=2)
    drv = make_driver(sim, "sw-1", [], oids=[
        {"oid": "1.3.6.1.2.1.99.1.1.1.4.101", "metric": "sensor_temperature_celsius", "scale": 0.1,
         "labels": {"sensor": "cpu"}}])
    res = await drv.poll()
    [r] = res.readings
    assert r.metric == "sensor_temperature_celsius" and dict(r.labels) == {"sensor": "cpu"} and 25 < r.value < 45
    assert res.info.profile == "inline"


async def test_timeout_fault_names_the_device_and_spares_the_others(make_driver: MakeDriver,
                                                                    clock: FakeClock) -> None:
    async with SnmpSimulator(faults=parse_faults("sw-dead:timeout,sw-refused:wrong-community"), clock=clock,
                             v3_user=V3) as s:
        for n in ("sw-ok", "sw-dead", "sw-refused"):
            s.add_switch(n, ports=4)
        ok, dead, refused = (make_driver(s, n, ["if-mib"], timeout=0.6) for n in ("sw-ok", "sw-dead", "sw-refused"))
        res = await asyncio.gather(ok.poll(), dead.poll(), refused.poll(), return_exceptions=True)
        assert isinstance(res[0], PollResult) and len(res[0].readings) == 44
        for err, name in ((res[1], "sw-dead"), (res[2], "sw-refused")):
            assert isinstance(err, DeviceError) and err.reason == "timeout", err
            assert name in str(err) and f"127.0.0.1:{s.port}" in str(err) and "1.3.6.1.2.1.1.3.0" in str(err)
            assert s.community_for(name) not in str(err)


async def test_delay_fault_is_slow_but_answers(make_driver: MakeDriver, clock: FakeClock) -> None:
    async with SnmpSimulator(faults=parse_faults("sw-slow:delay=150ms"), clock=clock, v3_user=V3) as s:
        s.add_switch("sw-slow", ports=2)
        drv = make_driver(s, "sw-slow", ["if-mib"], timeout=2)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        res = await drv.poll()
        assert loop.time() - t0 >= 0.15 * res.requests and len(res.readings) == 22


async def test_truncate_fault_ends_tables_early(make_driver: MakeDriver, clock: FakeClock) -> None:
    async with SnmpSimulator(faults=parse_faults("sw-t:truncate=3"), clock=clock, v3_user=V3) as s:
        s.add_switch("sw-t", ports=8)
        res = await make_driver(s, "sw-t", ["if-mib"]).poll()
        assert sorted({dict(r.labels)["port"] for r in res.readings}) == ["Ethernet1", "Ethernet2", "Ethernet3"]


async def test_close_and_poll_again(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    sim.add_switch("sw-1", ports=2)
    drv = make_driver(sim, "sw-1", ["if-mib"], version="3")
    assert (await drv.poll()).readings
    await drv.close()
    assert (await drv.poll()).readings
