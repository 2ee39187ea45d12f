"""Counter continuity through the SNMP driver: 32-bit wraps, device restarts, and HC fallbacks."""

from __future__ import annotations

from drivers.snmp import wire
from drivers.snmp.simulator import SnmpSimulator, Value
from drivers.snmp.wire import Oid, parse_oid
from tests.snmp.conftest import FakeClock, MakeDriver

UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


def oid(base: str, col: int, idx: int) -> Oid:
    return (*parse_oid(base), col, idx)


def small_switch(ports: int, hc_rows: tuple[int, ...] = (), names: bool = True) -> dict[Oid, Value]:
    """A static IF-MIB: ifTable for every port, ifXTable only for ``hc_rows``."""
    v: dict[Oid, Value] = {UPTIME: (wire.TIMETICKS, 100_000),
                           parse_oid("1.3.6.1.2.1.1.2.0"): (wire.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 9))}
    for p in range(1, ports + 1):
        v[oid(IF, 2, p)] = (wire.OCTET_STRING, f"eth{p}".encode())
        v[oid(IF, 5, p)] = (wire.GAUGE32, 1_000_000_000)
        v[oid(IF, 7, p)] = (wire.INTEGER, 1)
        v[oid(IF, 8, p)] = (wire.INTEGER, 1)
        for col in (10, 11, 13, 14, 16, 17, 19, 20):
            v[oid(IF, col, p)] = (wire.COUNTER32, 1000 * p + col)
    for p in hc_rows:
        if names:
            v[oid(IFX, 1, p)] = (wire.OCTET_STRING, f"Ethernet{p}".encode())
        for col in (6, 7, 10, 11):
            v[oid(IFX, col, p)] = (wire.COUNTER64, 10**12 * p + col)
        v[oid(IFX, 15, p)] = (wire.GAUGE32, 10_000)
    return v


def rx(readings: list, port: str) -> float:  # type: ignore[type-arg]
    [v] = [r.value for r in readings if r.metric == "port_receive_bytes_total" and dict(r.labels)["port"] == port]
    return float(v)


async def test_32bit_counter_wraps_stay_monotonic(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    dev = sim.add_static("old-sw", small_switch(2))
    drv = make_driver(sim, "old-sw", ["if-mib"])
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 2**32 - 1000))
    assert rx((await drv.poll()).readings, "eth1") == 2**32 - 1000
    dev.set_value(UPTIME, (wire.TIMETICKS, 101_000))
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 500))  # wrapped: 1500 octets later
    assert rx((await drv.poll()).readings, "eth1") == 2**32 + 500
    dev.set_value(UPTIME, (wire.TIMETICKS, 102_000))
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 7000))
    res = await drv.poll()
    assert rx(res.readings, "eth1") == 2**32 + 7000
    # A 32-bit-only device: port label from ifDescr, speed from ifSpeed (bit/s / 8).
    speed = [r.value for r in res.readings if r.metric == "port_speed_bytes"]
    assert speed == [125_000_000.0, 125_000_000.0]


async def test_uptime_going_backwards_is_a_reset_not_a_wrap(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    dev = sim.add_static("sw", small_switch(1))
    drv = make_driver(sim, "sw", ["if-mib"])
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 4_000_000_000))
    await drv.poll()
    dev.set_value(UPTIME, (wire.TIMETICKS, 200_000))
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 100))  # wrapped
    assert rx((await drv.poll()).readings, "eth1") == 2**32 + 100
    dev.set_value(UPTIME, (wire.TIMETICKS, 3_000))  # rebooted
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 50))
    assert rx((await drv.poll()).readings, "eth1") == 50
    dev.set_value(UPTIME, (wire.TIMETICKS, 4_000))
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 80))
    assert rx((await drv.poll()).readings, "eth1") == 80


async def test_simulated_switch_reboot_resets_counters(sim: SnmpSimulator, make_driver: MakeDriver,
                                                       clock: FakeClock) -> None:
    dev = sim.add_switch("sw", ports=2)
    drv = make_driver(sim, "sw", ["if-mib"])
    clock.advance(3600)
    before = rx((await drv.poll()).readings, "Ethernet1")
    dev.reboot()
    clock.advance(10)
    after = rx((await drv.poll()).readings, "Ethernet1")
    assert after < before and after == dev.octets(1, "in", clock.now)


async def test_hc_counters_missing_on_some_rows_fall_back_per_row(sim: SnmpSimulator,
                                                                   make_driver: MakeDriver) -> None:
    sim.add_static("mixed", small_switch(3, hc_rows=(1, 2)))
    drv = make_driver(sim, "mixed", ["if-mib"])
    res = await drv.poll()
    assert rx(res.readings, "Ethernet1") == 10**12 + 6
    assert rx(res.readings, "Ethernet2") == 2 * 10**12 + 6
    assert rx(res.readings, "eth3") == 3000 + 10  # ifInOctets, and ifDescr as the port name
    speeds = {dict(r.labels)["port"]: r.value for r in res.readings if r.metric == "port_speed_bytes"}
    assert speeds == {"Ethernet1": 1.25e9, "Ethernet2": 1.25e9, "eth3": 1.25e8}


async def test_device_without_ifxtable_stops_asking_for_it(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    sim.add_static("old-sw", small_switch(4))
    drv = make_driver(sim, "old-sw", ["if-mib"])
    first = await drv.poll()
    cols = drv.walk_columns()
    assert oid(IF, 10, 0)[:-1] in cols and oid(IFX, 6, 0)[:-1] not in cols
    second = await drv.poll()
    assert second.requests <= first.requests
    assert {(r.metric, r.labels, r.value) for r in first.readings} == \
        {(r.metric, r.labels, r.value) for r in second.readings}


async def test_uptime_wrapping_after_497_days_is_not_a_restart(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    dev = sim.add_static("sw", small_switch(1))
    drv = make_driver(sim, "sw", ["if-mib"])
    dev.set_value(UPTIME, (wire.TIMETICKS, 2**32 - 1000))
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 4_000_000_000))
    await drv.poll()
    dev.set_value(UPTIME, (wire.TIMETICKS, 500))  # TimeTicks wrapped, the device did not restart
    dev.set_value(oid(IF, 10, 1), (wire.COUNTER32, 100))
    assert rx((await drv.poll()).readings, "eth1") == 2**32 + 100


async def test_meta_columns_are_cached_and_reread_for_new_rows(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    dev = sim.add_static("sw", small_switch(2, hc_rows=(1, 2)))
    drv = make_driver(sim, "sw", ["if-mib"])
    value_cols, meta_cols = drv.column_sets()
    assert oid(IFX, 1, 0)[:-1] in meta_cols and oid(IFX, 6, 0)[:-1] in value_cols
    first = await drv.poll()
    # Rename a port: cached names are kept until the refresh interval (5 min by default)...
    dev.set_value(oid(IFX, 1, 1), (wire.OCTET_STRING, b"uplink"))
    second = await drv.poll()
    assert {dict(r.labels)["port"] for r in second.readings} == {"Ethernet1", "Ethernet2"}
    assert second.requests <= first.requests
    # ...but a new interface makes the driver re-read names at once, so no series lacks its label.
    for col in (2, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20):
        dev.set_value(oid(IF, col, 3), dev.get(oid(IF, col, 1), 0))
    for col in (6, 7, 10, 11, 15):
        dev.set_value(oid(IFX, col, 3), dev.get(oid(IFX, col, 1), 0))
    dev.set_value(oid(IFX, 1, 3), (wire.OCTET_STRING, b"Ethernet3"))
    third = await drv.poll()
    assert {dict(r.labels)["port"] for r in third.readings} == {"uplink", "Ethernet2", "Ethernet3"}


async def test_meta_refresh_zero_rereads_every_poll(sim: SnmpSimulator, make_driver: MakeDriver) -> None:
    dev = sim.add_static("sw", small_switch(1, hc_rows=(1,)))
    drv = make_driver(sim, "sw", ["if-mib"], meta_refresh=0)
    await drv.poll()
    dev.set_value(oid(IFX, 1, 1), (wire.OCTET_STRING, b"renamed"))
    assert {dict(r.labels)["port"] for r in (await drv.poll()).readings} == {"renamed"}
