"""A simulated SNMP agent: switches and PDUs behind one pysnmp engine on one UDP port.

Devices are told apart the way many real proxies do it:
- SNMPv1/v2c: each device has its own community, ``community_for(name)`` = ``"<community>@<name>"``
  (the plain community reaches the first device added);
- SNMPv3: one USM user; the context name is the device name (the empty context reaches the first
  device).

Values are computed when asked for, from the device's seed and the clock, so a switch costs a few
small objects however many ports it has, and devices with the same shape share their sorted OID list.
Counters move at realistic rates; PDU readings agree with each other (P = V x I x PF, energy grows
with power). Faults come from drivers.simfaults: ``timeout``/``drop`` (never answer), ``delay=DUR``,
``garbage`` (a malformed datagram instead of the answer), ``wrong-community`` (the device's community
or context is refused, so requests go unanswered, as real agents do) and ``truncate=N`` (tables end
after N rows). Every SET is recorded in ``.sets`` and refused with notWritable.

pysnmp's engine answers SNMPv3 and v1. SNMPv2c requests, the bulk of a benchmark, are answered
on a fast path in the same UDP transport (decoded and encoded with drivers.snmp.fastcodec), which
costs a fraction of pysnmp's per-varbind CPU; ``fast_v2c=False`` sends them through pysnmp too.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pconfig
from pysnmp.entity import engine as pengine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c

from drivers.simfaults import Fault, faults_for
from drivers.snmp import fastcodec, wire
from drivers.snmp.wire import Oid, format_oid, parse_oid

Index = tuple[int, ...]
Value = tuple[int, Any]  # (wire tag, python value)
CellFn = Callable[[Any, Index, float], Value | None]

MAX_RESPONSE_VARBINDS = 128


@dataclass(frozen=True)
class SimV3User:
    """The simulator's single SNMPv3 user (authPriv SHA/AES by default)."""

    user: str = "simuser"
    auth_protocol: str = "SHA"
    auth_key: str = field(default="authpass123", repr=False)
    priv_protocol: str = "AES"
    priv_key: str = field(default="privpass123", repr=False)


@dataclass
class SetRecord:
    """One SET the simulator received (and refused)."""

    device: str
    oid: str
    value: str


# -- the OID layout of a device shape ------------------------------------------------------------


class Layout:
    """Sorted OIDs of one device shape and the function computing each; shared by same-shape devices."""

    def __init__(self) -> None:
        self.cells: dict[Oid, tuple[CellFn, Index]] = {}
        self.keys: list[Oid] = []

    def scalar(self, oid: str, fn: CellFn) -> None:
        self.cells[parse_oid(oid)] = (fn, ())

    def table(self, entry: str, indexes: Iterable[Index], columns: dict[int, CellFn],
              truncate: int | None = None) -> None:
        """Add columns ``entry.<col>.<index>`` for every index (only the first ``truncate`` rows)."""
        base = parse_oid(entry)
        rows = list(indexes)[:truncate] if truncate is not None else list(indexes)
        for col, fn in columns.items():
            for idx in rows:
                self.cells[(*base, col, *idx)] = (fn, idx)

    def done(self) -> Layout:
        self.keys = sorted(self.cells)
        return self


def _const(tag: int, value: Any) -> CellFn:
    return lambda dev, idx, now: (tag, value)


def _s(text: str) -> tuple[int, bytes]:
    return (wire.OCTET_STRING, text.encode())


class SimDevice:
    """One simulated device: a layout, per-device parameters, overrides and faults."""

    kind = "static"

    def __init__(self, name: str, layout: Layout, faults: list[Fault],
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.layout = layout
        self.faults = faults
        self.clock = clock
        self.keys = layout.keys
        self.overrides: dict[Oid, Value | None] = {}
        self.boot = clock()
        self.seed = zlib.crc32(name.encode())

    def fault(self, kind: str) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind), None)

    def uptime(self, now: float) -> Value:
        return (wire.TIMETICKS, int((now - self.boot) * 100) % 2**32)

    def get(self, oid: Oid, now: float) -> Value | None:
        if oid in self.overrides:
            return self.overrides[oid]
        cell = self.layout.cells.get(oid)
        return cell[0](self, cell[1], now) if cell else None

    def next(self, oid: Oid, now: float, v1: bool = False) -> tuple[Oid, Value] | None:
        keys = self.keys
        i = bisect.bisect_right(keys, oid)
        while i < len(keys):
            k = keys[i]
            v = self.get(k, now)
            if v is not None and not (v1 and v[0] == wire.COUNTER64):
                return k, v
            i += 1
        return None

    def set_value(self, oid: Oid, value: Value | None) -> None:
        """Override one OID (None removes it); new OIDs are added to this device's own key list."""
        self.overrides[oid] = value
        if value is not None and oid not in self.layout.cells and oid not in self.keys:
            self.keys = sorted([*self.keys, oid])

    def reboot(self) -> None:
        """Restart: sysUpTime and counters start again from zero."""
        self.boot = self.clock()


def _h(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for a device/port/column."""
    return (zlib.crc32(":".join(map(str, parts)).encode()) % 100000) / 100000.0


# -- switch ---------------------------------------------------------------------------------------

SWITCH_OBJECT_ID = "1.3.6.1.4.1.8072.3.2.10"  # Net-SNMP's Linux agent OID: a white-box switch


class SwitchDevice(SimDevice):
    """A switch: IF-MIB ports, ENTITY-MIB inventory and ENTITY-SENSOR temperatures, fans, PSUs, optics."""

    kind = "switch"

    def __init__(self, name: str, layout: Layout, faults: list[Fault], ports: int,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, layout, faults, clock)
        self.ports = ports
        self.base = {(p, d): int(_h(name, p, d, "base") * 2**40) for p in range(1, ports + 1) for d in ("in", "out")}

    def speed(self, p: int) -> int:
        return 100_000_000_000 if p > self.ports - 4 else 10_000_000_000

    def oper_up(self, p: int) -> bool:
        return p % 7 != 0 and self.admin_up(p)

    def admin_up(self, p: int) -> bool:
        return p % 11 != 0

    def octets(self, p: int, direction: str, now: float) -> int:
        """Octets so far: a per-port starting point (zero after a reboot) plus traffic since boot."""
        start = self.base[(p, direction)] if self.boot_epoch == 0 else 0
        if not self.oper_up(p):
            return start
        util = 0.02 + 0.5 * _h(self.name, p, direction)
        return start + int(self.speed(p) / 8 * util * (now - self.boot))

    boot_epoch = 0  # 0 until the first reboot: counters then start from zero

    def reboot(self) -> None:
        super().reboot()
        self.boot_epoch += 1


def _port_cells() -> dict[str, dict[int, CellFn]]:
    def octets(direction: str, bits: int) -> CellFn:
        tag = wire.COUNTER64 if bits == 64 else wire.COUNTER32
        return lambda d, i, now: (tag, d.octets(i[0], direction, now) % 2**bits)

    def packets(direction: str, bits: int) -> CellFn:
        tag = wire.COUNTER64 if bits == 64 else wire.COUNTER32
        return lambda d, i, now: (tag, (d.octets(i[0], direction, now) // 900) % 2**bits)

    def errors(kind: str) -> CellFn:
        return lambda d, i, now: (wire.COUNTER32, int(max(0.0, now - d.boot) * 0.05 * _h(d.name, i[0], kind))
                                  % 2**32)

    if_table: dict[int, CellFn] = {
        1: lambda d, i, now: (wire.INTEGER, i[0]),
        2: lambda d, i, now: _s(f"Ethernet{i[0]}"),
        3: _const(wire.INTEGER, 6),
        5: lambda d, i, now: (wire.GAUGE32, min(d.speed(i[0]), 4294967295)),
        7: lambda d, i, now: (wire.INTEGER, 1 if d.admin_up(i[0]) else 2),
        8: lambda d, i, now: (wire.INTEGER, 1 if d.oper_up(i[0]) else 2),
        10: octets("in", 32),
        11: packets("in", 32),
        13: errors("in-discards"),
        14: errors("in-errors"),
        16: octets("out", 32),
        17: packets("out", 32),
        19: errors("out-discards"),
        20: errors("out-errors"),
    }
    if_x_table: dict[int, CellFn] = {
        1: lambda d, i, now: _s(f"Ethernet{i[0]}"),
        6: octets("in", 64),
        7: packets("in", 64),
        10: octets("out", 64),
        11: packets("out", 64),
        15: lambda d, i, now: (wire.GAUGE32, d.speed(i[0]) // 1_000_000),
        18: lambda d, i, now: _s(f"server-{i[0]}"),
    }
    return {"if": if_table, "ifx": if_x_table}


# entPhysicalIndex -> (class, name, sensor type, scale, precision, value function(dev, now))
SensorFn = Callable[[Any, float], float]


def _wave(base: float, spread: float, swing: float, period: float, *key: object) -> SensorFn:
    """base + a per-device offset up to ``spread`` + a slow sine of amplitude ``swing``."""
    return lambda d, now: base + spread * _h(d.name, *key) + swing * math.sin(now / period)


def switch_sensors(ports: int) -> list[tuple[int, int, str, int, int, int, SensorFn]]:
    """(entPhysicalIndex, class, name, sensor type, scale, precision, SI value fn) of a switch's sensors."""
    out: list[tuple[int, int, str, int, int, int, SensorFn]] = []
    for k in range(1, 4):
        out.append((100 + k, 8, f"Temp Sensor {k}", 8, 9, 1, _wave(30.0 + 4 * k, 3, 1, 300, "temp", k)))
    for k in range(1, 5):
        out.append((200 + k, 8, f"Fan {k} Speed", 10, 9, 0, _wave(8000, 1500, 50, 60, "fan", k)))
    for k in range(1, 3):
        out.append((300 + k, 8, f"PowerSupply{k} Input Power", 6, 9, 1, _wave(180, 40, 5, 90, "psu", k)))
    for p in range(max(1, ports - 3), ports + 1):
        b = 1000 + p * 10
        out.append((b + 1, 8, f"DOM Temperature Sensor for Ethernet{p}", 8, 9, 1, _wave(35, 5, 1, 300, p, "t")))
        out.append((b + 2, 8, f"DOM TX Bias Sensor for Ethernet{p}", 5, 8, 2, _wave(0.0065, 0.001, 0, 1, p, "b")))
        out.append((b + 3, 8, f"DOM RX Power Sensor for Ethernet{p}", 6, 8, 4,
                    _wave(0.0005, 0.0004, 0, 1, p, "rx")))
        out.append((b + 4, 8, f"DOM TX Power Sensor for Ethernet{p}", 6, 8, 4,
                    _wave(0.0008, 0.0003, 0, 1, p, "tx")))
    return out


def _sensor_raw(value_si: float, scale: int, precision: int) -> int:
    """Invert ENTITY-SENSOR scaling: SI value -> raw integer for (scale, precision)."""
    return round(value_si / 10.0 ** (3 * (scale - 9)) * 10.0**precision)


def switch_layout(ports: int, hc: bool = True, truncate: int | None = None) -> Layout:
    """The OID layout of a simulated switch with ``ports`` ports."""
    lay = Layout()
    _system(lay, lambda d: f"rackpulse simulated switch, {d.ports} ports", SWITCH_OBJECT_ID)
    lay.scalar("1.3.6.1.2.1.2.1.0", lambda d, i, now: (wire.INTEGER, d.ports))
    cells = _port_cells()
    rows = [(p,) for p in range(1, ports + 1)]
    lay.table("1.3.6.1.2.1.2.2.1", rows, cells["if"], truncate)
    if hc:
        lay.table("1.3.6.1.2.1.31.1.1.1", rows, cells["ifx"], truncate)
    sensors = switch_sensors(ports)
    ent_rows = [(1,)] + [(s[0],) for s in sensors]
    info = {s[0]: s for s in sensors}

    def phys(col: int) -> CellFn:
        def fn(d: Any, i: Index, now: float) -> Value:
            if i[0] == 1:
                return {2: _s("rackpulse simulated switch chassis"), 5: (wire.INTEGER, 3), 7: _s("Chassis"),
                        10: _s("4.30.1F-sim"), 11: _s(f"SIM{d.seed:08X}"), 12: _s("Rackpulse Sim"),
                        13: _s(f"RPS-{d.ports}X")}[col]
            s = info[i[0]]
            return {2: _s(s[2]), 5: (wire.INTEGER, s[1]), 7: _s(s[2]), 10: _s(""), 11: _s(""),
                    12: _s(""), 13: _s("")}[col]
        return fn

    lay.table("1.3.6.1.2.1.47.1.1.1.1", ent_rows, {c: phys(c) for c in (2, 5, 7, 10, 11, 12, 13)}, truncate)

    def sensor(col: int) -> CellFn:
        def fn(d: Any, i: Index, now: float) -> Value:
            _, _, _, typ, scale, prec, f = info[i[0]]
            if col == 1:
                return (wire.INTEGER, typ)
            if col == 2:
                return (wire.INTEGER, scale)
            if col == 3:
                return (wire.INTEGER, prec)
            if col == 4:
                return (wire.INTEGER, _sensor_raw(f(d, now), scale, prec))
            if col == 5:
                return (wire.INTEGER, 1)
            return _s({8: "C", 10: "RPM", 6: "W", 5: "A"}.get(typ, ""))
        return fn

    lay.table("1.3.6.1.2.1.99.1.1.1", [(s[0],) for s in sensors], {c: sensor(c) for c in range(1, 7)}, truncate)
    return lay.done()


def _system(lay: Layout, descr: Callable[[Any], str], object_id: str) -> None:
    lay.scalar("1.3.6.1.2.1.1.1.0", lambda d, i, now: _s(descr(d)))
    lay.scalar("1.3.6.1.2.1.1.2.0", _const(wire.OBJECT_IDENTIFIER, parse_oid(object_id)))
    lay.scalar("1.3.6.1.2.1.1.3.0", lambda d, i, now: d.uptime(now))
    lay.scalar("1.3.6.1.2.1.1.5.0", lambda d, i, now: _s(d.name))


# -- PDUs -------------------------------------------------------------------------------------------


class PduDevice(SimDevice):
    """A metered, switched rack PDU: one inlet (single phase), ``outlets`` outlets, one temp probe."""

    kind = "pdu"
    VOLTS = 230.0
    FREQ = 50.0

    def __init__(self, name: str, layout: Layout, faults: list[Fault], outlets: int, model: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, layout, faults, clock)
        self.outlets = outlets
        self.model = model
        self.energy_base = {o: 3.6e6 * (100 + 400 * _h(name, o, "e")) for o in range(1, outlets + 1)}

    def outlet_on(self, o: int) -> bool:
        return o % 9 != 0

    def volts(self, now: float) -> float:
        return self.VOLTS + 2.0 * math.sin(now / 45.0 + self.seed)

    def pf(self, o: int) -> float:
        return 0.90 + 0.08 * _h(self.name, o, "pf")

    def watts(self, o: int, now: float) -> float:
        if not self.outlet_on(o):
            return 0.0
        return 40.0 + 260.0 * _h(self.name, o, "w") + 10.0 * math.sin(now / 30.0 + o)

    def amps(self, o: int, now: float) -> float:
        w = self.watts(o, now)
        return w / (self.volts(now) * self.pf(o)) if w else 0.0

    def energy_j(self, o: int, now: float) -> float:
        # Integral of the mean power since boot (the sine term averages out).
        mean = 40.0 + 260.0 * _h(self.name, o, "w") if self.outlet_on(o) else 0.0
        return self.energy_base[o] + mean * (now - self.boot)

    def total_watts(self, now: float) -> float:
        return sum(self.watts(o, now) for o in range(1, self.outlets + 1))

    def total_amps(self, now: float) -> float:
        return sum(self.amps(o, now) for o in range(1, self.outlets + 1))

    def total_va(self, now: float) -> float:
        return self.volts(now) * self.total_amps(now)

    def total_energy_j(self, now: float) -> float:
        return sum(self.energy_j(o, now) for o in range(1, self.outlets + 1))

    def temperature(self, now: float) -> float:
        return 24.0 + 2.0 * _h(self.name, "t") + 0.5 * math.sin(now / 200.0)


APC_OBJECT_ID = "1.3.6.1.4.1.318.1.3.4.6"  # PowerNet-MIB masterSwitchrPDU2
RARITAN_OBJECT_ID = "1.3.6.1.4.1.13742.6"  # PDU2-MIB


def apc_layout(outlets: int, truncate: int | None = None) -> Layout:
    """APC rPDU2 (PowerNet-MIB ``318.1.1.26``), scaled exactly like the real device."""
    lay = Layout()
    _system(lay, lambda d: f"APC Web/SNMP Management Card (MB:v4.1.0 PF:v6.8.2 MN:{d.model} SN: "
                           f"5A{d.seed % 10**10:010d})", APC_OBJECT_ID)
    r = "1.3.6.1.4.1.318.1.1.26"
    i = lambda v: (wire.INTEGER, round(v))  # noqa: E731 - tiny local helper
    lay.table(f"{r}.2.1", [(1,)], {
        3: lambda d, x, now: _s(d.name), 6: _const(*_s("v6.8.2")), 8: lambda d, x, now: _s(d.model),
        9: lambda d, x, now: _s(f"5A{d.seed % 10**10:010d}"),
    })
    lay.table(f"{r}.4.3.1", [(1,)], {
        1: _const(wire.INTEGER, 1), 3: lambda d, x, now: _s(d.name), 4: _const(wire.INTEGER, 2),
        5: lambda d, x, now: i(d.total_watts(now) / 10), 6: lambda d, x, now: i(d.total_watts(now) / 10 + 12),
        9: lambda d, x, now: i(d.total_energy_j(now) / 3.6e5),
        16: lambda d, x, now: i(d.total_va(now) / 10),
        17: lambda d, x, now: i(100 * d.total_watts(now) / d.total_va(now)) if d.total_va(now) else i(100),
    })
    lay.table(f"{r}.6.3.1", [(1,)], {
        1: _const(wire.INTEGER, 1), 2: _const(wire.INTEGER, 1), 3: _const(wire.INTEGER, 1), 4: _const(wire.INTEGER, 2),
        5: lambda d, x, now: i(d.total_amps(now) * 10), 6: lambda d, x, now: i(d.volts(now)),
        7: lambda d, x, now: i(d.total_watts(now) / 10), 8: lambda d, x, now: i(d.total_va(now) / 10),
        9: lambda d, x, now: i(100 * d.total_watts(now) / d.total_va(now)) if d.total_va(now) else i(100),
        10: lambda d, x, now: i(d.total_amps(now) * 10 + 5),
    }, truncate)
    rows = [(o,) for o in range(1, outlets + 1)]
    lay.table(f"{r}.9.4.3.1", rows, {
        1: lambda d, x, now: (wire.INTEGER, x[0]), 3: lambda d, x, now: _s(f"server-{x[0]:02d}"),
        4: lambda d, x, now: (wire.INTEGER, x[0]), 5: _const(wire.INTEGER, 2),
        6: lambda d, x, now: i(d.amps(x[0], now) * 10), 7: lambda d, x, now: i(d.watts(x[0], now)),
        8: lambda d, x, now: i(d.watts(x[0], now) + 15), 11: lambda d, x, now: i(d.energy_j(x[0], now) / 3.6e5),
    }, truncate)
    lay.table(f"{r}.9.2.3.1", rows, {
        1: lambda d, x, now: (wire.INTEGER, x[0]), 3: lambda d, x, now: _s(f"server-{x[0]:02d}"),
        4: lambda d, x, now: (wire.INTEGER, x[0]),
        5: lambda d, x, now: (wire.INTEGER, 2 if d.outlet_on(x[0]) else 1),
    }, truncate)
    return lay.done()


# Raritan sensor types and the DecimalDigits a PX3 reports for them.
_RARITAN_INLET = {1: 3, 4: 0, 5: 0, 6: 0, 7: 2, 8: 0, 23: 1}
_RARITAN_OUTLET = {1: 3, 4: 0, 5: 0, 7: 2, 8: 0}


def raritan_layout(outlets: int, truncate: int | None = None) -> Layout:
    """Raritan PDU2-MIB (``13742.6``): values are integers scaled by per-sensor DecimalDigits."""
    lay = Layout()
    _system(lay, lambda d: f"Raritan PX3 {d.model} (simulated)", RARITAN_OBJECT_ID)
    r = "1.3.6.1.4.1.13742.6"
    lay.table(f"{r}.3.2.1.1", [(1,)], {
        2: _const(*_s("Raritan")), 3: lambda d, x, now: _s(d.model),
        4: lambda d, x, now: _s(f"QFC{d.seed % 10**7:07d}"),
    })

    def inlet(d: Any, now: float, typ: int) -> float:
        return {1: d.total_amps(now), 4: d.volts(now), 5: d.total_watts(now), 6: d.total_va(now),
                7: d.total_watts(now) / d.total_va(now) if d.total_va(now) else 1.0,
                8: d.total_energy_j(now) / 3600.0, 23: d.FREQ}[typ]

    def outlet(d: Any, now: float, o: int, typ: int) -> float:
        return {1: d.amps(o, now), 4: d.volts(now), 5: d.watts(o, now), 7: d.pf(o),
                8: d.energy_j(o, now) / 3600.0}[typ]

    def scaled(v: float, digits: int) -> Value:
        return (wire.GAUGE32, max(0, round(v * 10**digits)))

    inlet_rows = [(1, 1, t) for t in _RARITAN_INLET]
    lay.table(f"{r}.3.3.4.1", inlet_rows, {
        6: lambda d, x, now: (wire.INTEGER, {1: 2, 4: 1, 5: 3, 6: 4, 7: -1, 8: 5, 23: 8}[x[2]]),
        7: lambda d, x, now: (wire.GAUGE32, _RARITAN_INLET[x[2]]),
    })
    lay.table(f"{r}.5.2.3.1", inlet_rows, {
        3: _const(wire.INTEGER, 4),
        4: lambda d, x, now: scaled(inlet(d, now, x[2]), _RARITAN_INLET[x[2]]),
    })
    orows = [(1, o, t) for o in range(1, outlets + 1) for t in _RARITAN_OUTLET]
    lay.table(f"{r}.3.5.4.1", orows, {7: lambda d, x, now: (wire.GAUGE32, _RARITAN_OUTLET[x[2]])}, truncate)
    lay.table(f"{r}.5.4.3.1", orows, {
        3: _const(wire.INTEGER, 4),
        4: lambda d, x, now: scaled(outlet(d, now, x[1], x[2]), _RARITAN_OUTLET[x[2]]),
    }, truncate)
    names = [(1, o) for o in range(1, outlets + 1)]
    lay.table(f"{r}.3.5.3.1", names, {
        2: lambda d, x, now: _s(str(x[1])), 3: lambda d, x, now: _s(f"server-{x[1]:02d}"),
    }, truncate)
    lay.table(f"{r}.4.1.2.1", names, {
        3: lambda d, x, now: (wire.INTEGER, 7 if d.outlet_on(x[1]) else 8),
    }, truncate)
    # One external temperature probe (type 10, DecimalDigits 1) and one humidity probe (11, 0).
    ext = {1: (10, 1, "Temperature 1"), 2: (11, 0, "Humidity 1")}
    erows = [(1, s) for s in ext]
    lay.table(f"{r}.3.6.3.1", erows, {
        2: lambda d, x, now: (wire.INTEGER, ext[x[1]][0]), 4: lambda d, x, now: _s(ext[x[1]][2]),
        17: lambda d, x, now: (wire.GAUGE32, ext[x[1]][1]),
    }, truncate)
    lay.table(f"{r}.5.5.3.1", erows, {
        3: _const(wire.INTEGER, 4),
        4: lambda d, x, now: scaled(d.temperature(now) if x[1] == 1 else 40.0 + 5 * _h(d.name, "rh"),
                                    ext[x[1]][1]),
    }, truncate)
    return lay.done()


# -- static walks (data cases) -----------------------------------------------------------------------

_SNMPREC_TAGS = {"2": wire.INTEGER, "4": wire.OCTET_STRING, "5": wire.NULL, "6": wire.OBJECT_IDENTIFIER,
                 "64": wire.IP_ADDRESS, "65": wire.COUNTER32, "66": wire.GAUGE32, "67": wire.TIMETICKS,
                 "68": wire.OPAQUE, "70": wire.COUNTER64}
_WALK_TYPES = {"INTEGER": wire.INTEGER, "STRING": wire.OCTET_STRING, "Hex-STRING": wire.OCTET_STRING,
               "OID": wire.OBJECT_IDENTIFIER, "IpAddress": wire.IP_ADDRESS, "Counter32": wire.COUNTER32,
               "Gauge32": wire.GAUGE32, "Unsigned32": wire.GAUGE32, "Timeticks": wire.TIMETICKS,
               "Counter64": wire.COUNTER64, "Opaque": wire.OPAQUE, "Null": wire.NULL}
_WALK_LINE = re.compile(r"^\s*(\.?[0-9][0-9.]*)\s*=\s*(?:([A-Za-z0-9-]+):\s*)?(.*)$")


def _convert(tag: int, text: str, hexed: bool, where: str) -> Any:
    try:
        if tag in (wire.OCTET_STRING, wire.OPAQUE):
            if hexed:
                return bytes.fromhex(text.replace(" ", "").replace(":", ""))
            return text.encode()
        if tag == wire.IP_ADDRESS:
            return bytes(int(p) for p in text.split("."))
        if tag == wire.OBJECT_IDENTIFIER:
            return parse_oid(text)
        if tag == wire.NULL:
            return None
        if tag == wire.TIMETICKS and text.startswith("("):
            text = text[1:text.index(")")]
        m = re.fullmatch(r"\s*(?:[A-Za-z][\w-]*\()?(-?\d+)\)?\s*", text)  # also 'up(1)' from MIB-aware snmpwalk
        if not m:
            raise ValueError(f"{text!r} is not an integer")
        return int(m.group(1))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def load_walk(path: str | Path) -> dict[Oid, Value]:
    """Parse a file of ``snmpwalk -On`` output or snmprec lines (``oid|tag|value``); see parse_walk."""
    p = Path(path)
    return parse_walk(p.read_text(encoding="utf-8"), str(p))


def parse_walk(text: str, source: str = "<walk>") -> dict[Oid, Value]:
    """Parse ``snmpwalk -On`` output or snmprec lines into {oid: (tag, value)}.

    ValueError names the source and line of anything it cannot read.
    """
    out: dict[Oid, Value] = {}
    last: Oid | None = None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{n}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "|" in line and "=" not in line.split("|")[0]:
            oid_s, tag_s, value = ([*line.split("|", 2), ""])[:3]
            hexed = tag_s.endswith("x")
            tag = _SNMPREC_TAGS.get(tag_s.rstrip("x"))
            if tag is None:
                raise ValueError(f"{where}: unknown snmprec tag {tag_s!r}")
            oid = _parse_walk_oid(oid_s, where)
            out[oid] = (tag, _convert(tag, value, hexed, where))
            continue
        m = _WALK_LINE.match(line)
        if not m:
            if last is not None and out[last][0] == wire.OCTET_STRING:  # a string continued on a new line
                tag, prev = out[last]
                out[last] = (tag, prev + b"\n" + line.rstrip('"').encode())
                continue
            raise ValueError(f"{where}: cannot parse {line!r}; expected '.OID = TYPE: value' or 'oid|tag|value'")
        oid = _parse_walk_oid(m.group(1), where)
        typ, value = m.group(2), m.group(3).strip()
        if typ is None:
            if value.startswith('"'):
                typ = "STRING"
            elif value.startswith("No Such") or value.startswith("No more"):
                continue
            else:
                raise ValueError(f"{where}: value without a type: {value!r}")
        tag = _WALK_TYPES.get(typ)
        if tag is None:
            raise ValueError(f"{where}: unknown snmpwalk type {typ!r}")
        if typ == "STRING" and value.startswith('"'):
            value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
        out[oid] = (tag, _convert(tag, value.lstrip("."), typ == "Hex-STRING", where))
        last = oid
    return out


def _parse_walk_oid(text: str, where: str) -> Oid:
    try:
        return parse_oid(text)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def static_layout(values: dict[Oid, Value]) -> Layout:
    """A layout serving fixed values (a recorded walk)."""
    lay = Layout()
    for oid, v in values.items():
        lay.cells[oid] = (_const(*v), ())
    return lay.done()


# -- pysnmp plumbing ---------------------------------------------------------------------------------

_TO_ASN1: dict[int, Callable[[Any], Any]] = {
    wire.INTEGER: rfc1902.Integer32,
    wire.OCTET_STRING: rfc1902.OctetString,
    wire.OBJECT_IDENTIFIER: rfc1902.ObjectName,
    wire.IP_ADDRESS: rfc1902.IpAddress,
    wire.COUNTER32: rfc1902.Counter32,
    wire.GAUGE32: rfc1902.Gauge32,
    wire.TIMETICKS: rfc1902.TimeTicks,
    wire.OPAQUE: rfc1902.Opaque,
    wire.COUNTER64: rfc1902.Counter64,
    wire.NULL: lambda v: rfc1902.Null(""),
}


def _asn1(v: Value) -> Any:
    return _TO_ASN1[v[0]](v[1])


class _Responder(cmdrsp.CommandResponderBase):
    """Shared plumbing: find the device by context name, apply faults, send (maybe late)."""

    def __init__(self, sim: SnmpSimulator, snmp_engine: Any, snmp_context: Any) -> None:
        super().__init__(snmp_engine, snmp_context)
        self.sim = sim
        self._deferred: set[Any] = set()

    def varbinds(self, dev: SimDevice, pdu: Any, v1: bool) -> list[tuple[Any, Any]]:
        raise NotImplementedError

    def handle_management_operation(self, snmpEngine: Any, stateReference: Any, contextName: Any,
                                    PDU: Any) -> None:
        dev = self.sim.device_for_context(bytes(contextName))
        if dev is None or dev.fault("timeout") or dev.fault("drop") or dev.fault("wrong-community"):
            return  # unanswered, as a dead agent or a refused community would be
        v1 = self._is_v1(stateReference)
        vbs = self.varbinds(dev, PDU, v1)
        if dev.fault("garbage"):
            self._send_garbage(snmpEngine)
            return
        delay = dev.fault("delay")
        if delay and delay.arg:
            self._deferred.add(stateReference)
            asyncio.get_running_loop().call_later(delay.arg, self._send_late, snmpEngine, stateReference, vbs)
            return
        self.respond(snmpEngine, stateReference, vbs)

    def respond(self, engine: Any, ref: Any, vbs: list[tuple[Any, Any]], status: int = 0, index: int = 0) -> None:
        self.send_varbinds(engine, ref, status, index, vbs)

    def _send_late(self, engine: Any, ref: Any, vbs: list[tuple[Any, Any]]) -> None:
        self._deferred.discard(ref)
        try:
            self.respond(engine, ref, vbs)
        finally:
            super().release_state_information(ref)

    def release_state_information(self, stateReference: Any) -> None:
        if stateReference not in self._deferred:
            super().release_state_information(stateReference)

    def _is_v1(self, ref: Any) -> bool:
        pending = self._CommandResponderBase__pendingReqs.get(ref)
        return bool(pending and pending[0] == 0)

    def _send_garbage(self, engine: Any) -> None:
        ctx = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        engine.transport_dispatcher.send_message(b"\x30\x03\x02\x01", ctx["transportDomain"],
                                                 ctx["transportAddress"])


class _Get(_Responder):
    SUPPORTED_PDU_TYPES = (rfc1905.GetRequestPDU.tagSet,)

    def varbinds(self, dev: SimDevice, pdu: Any, v1: bool) -> list[tuple[Any, Any]]:
        now = self.sim.clock()
        out = []
        for name, _ in v2c.apiPDU.get_varbinds(pdu):
            v = dev.get(tuple(name), now)
            if v is None or (v1 and v[0] == wire.COUNTER64):
                out.append((name, rfc1905.noSuchObject))
            else:
                out.append((name, _asn1(v)))
        return out


class _Next(_Responder):
    SUPPORTED_PDU_TYPES = (rfc1905.GetNextRequestPDU.tagSet,)

    def varbinds(self, dev: SimDevice, pdu: Any, v1: bool) -> list[tuple[Any, Any]]:
        now = self.sim.clock()
        out = []
        for name, _ in v2c.apiPDU.get_varbinds(pdu):
            nxt = dev.next(tuple(name), now, v1)
            out.append((name, rfc1905.endOfMibView) if nxt is None
                       else (rfc1902.ObjectName(nxt[0]), _asn1(nxt[1])))
        return out


class _Bulk(_Responder):
    SUPPORTED_PDU_TYPES = (rfc1905.GetBulkRequestPDU.tagSet,)

    def varbinds(self, dev: SimDevice, pdu: Any, v1: bool) -> list[tuple[Any, Any]]:
        req = [tuple(n) for n, _ in v2c.apiPDU.get_varbinds(pdu)]
        vbs = _bulk_varbinds(dev, req, int(v2c.apiBulkPDU.get_non_repeaters(pdu)),
                             int(v2c.apiBulkPDU.get_max_repetitions(pdu)), self.sim.max_response_varbinds,
                             self.sim.clock())
        return [(rfc1902.ObjectName(o), rfc1905.endOfMibView if t == wire.END_OF_MIB_VIEW else _asn1((t, v)))
                for o, t, v in vbs]


class _Set(_Responder):
    SUPPORTED_PDU_TYPES = (rfc1905.SetRequestPDU.tagSet,)

    def handle_management_operation(self, snmpEngine: Any, stateReference: Any, contextName: Any,
                                    PDU: Any) -> None:
        dev = self.sim.device_for_context(bytes(contextName))
        vbs = list(v2c.apiPDU.get_varbinds(PDU))
        for name, value in vbs:
            self.sim.sets.append(SetRecord(dev.name if dev else bytes(contextName).decode(errors="replace"),
                                           format_oid(tuple(name)), value.prettyPrint()))
        if dev is None or dev.fault("timeout") or dev.fault("wrong-community"):
            return
        self.respond(snmpEngine, stateReference, vbs, status=17, index=1)  # notWritable: read-only by design


class _Transport(udp.UdpAsyncioTransport):
    """pysnmp's UDP transport, with SNMPv2c requests answered before they reach the engine."""

    def __init__(self, sim: SnmpSimulator) -> None:
        super().__init__()
        self.sim = sim

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        if self.sim.fast_v2c and self.sim.answer_v2c(datagram, transportAddress, self):
            return
        super().datagram_received(datagram, transportAddress)

    def reply(self, data: bytes, address: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():  # a late reply after stop()
            self.transport.sendto(data, address)


def _bulk_varbinds(dev: SimDevice, oids: list[Oid], non_repeaters: int, max_reps: int, cap: int,
                   now: float, v1: bool = False) -> list[tuple[Oid, int, Any]]:
    """GETBULK semantics (RFC 3416 4.2.3) over a device, as (oid, tag, value) triples."""
    out: list[tuple[Oid, int, Any]] = []

    def step(oid: Oid) -> tuple[Oid, int, Any]:
        nxt = dev.next(oid, now, v1)
        return (oid, wire.END_OF_MIB_VIEW, None) if nxt is None else (nxt[0], nxt[1][0], nxt[1][1])

    n = min(max(0, non_repeaters), len(oids))
    out.extend(step(o) for o in oids[:n])
    cursors = oids[n:]
    if not cursors:
        return out
    reps = min(max(0, max_reps), max(1, (cap - n) // len(cursors)))
    for _ in range(reps):
        ended = 0
        for k, oid in enumerate(cursors):
            vb = step(oid)
            if vb[1] == wire.END_OF_MIB_VIEW:
                ended += 1
            cursors[k] = vb[0]
            out.append(vb)
        if ended == len(cursors):
            break
    return out


_AUTH = {"MD5": pconfig.USM_AUTH_HMAC96_MD5, "SHA": pconfig.USM_AUTH_HMAC96_SHA,
         "SHA224": pconfig.USM_AUTH_HMAC128_SHA224, "SHA256": pconfig.USM_AUTH_HMAC192_SHA256,
         "SHA384": pconfig.USM_AUTH_HMAC256_SHA384, "SHA512": pconfig.USM_AUTH_HMAC384_SHA512}
_PRIV = {"DES": pconfig.USM_PRIV_CBC56_DES, "AES": pconfig.USM_PRIV_CFB128_AES,
         "AES192": pconfig.USM_PRIV_CFB192_AES_BLUMENTHAL, "AES256": pconfig.USM_PRIV_CFB256_AES_BLUMENTHAL}


class SnmpSimulator:
    """Simulated switches and PDUs on one UDP port; see the module docstring for addressing."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        community: str = "public",
        v3_user: SimV3User | None = None,
        faults: Iterable[Fault] = (),
        clock: Callable[[], float] = time.time,
        fast_v2c: bool = True,
    ) -> None:
        self.host = host
        self.clock = clock
        self.port = port
        self.community = community
        self.v3_user = v3_user or SimV3User()
        self.faults = list(faults)
        self.devices: dict[str, SimDevice] = {}
        self.sets: list[SetRecord] = []
        self.max_response_varbinds = MAX_RESPONSE_VARBINDS
        self.fast_v2c = fast_v2c
        self._by_community: dict[bytes, SimDevice] = {}
        self._layouts: dict[tuple[Any, ...], Layout] = {}
        self._engine: Any = None
        self._by_context: dict[bytes, SimDevice] = {}

    # -- devices --

    def community_for(self, name: str) -> str:
        """The v1/v2c community that reaches device ``name``."""
        return f"{self.community}@{name}"

    def _add(self, dev: SimDevice) -> SimDevice:
        if dev.name in self.devices:
            raise ValueError(f"simulated device {dev.name!r} already exists")
        self.devices[dev.name] = dev
        if self._engine is not None:
            self._register(dev)
        return dev

    def _truncate(self, name: str) -> int | None:
        t = next((f for f in faults_for(self.faults, name) if f.kind == "truncate"), None)
        return int(t.arg) if t and t.arg is not None else None

    def _layout(self, key: tuple[Any, ...], build: Callable[[], Layout]) -> Layout:
        if key not in self._layouts:
            self._layouts[key] = build()
        return self._layouts[key]

    def add_switch(self, name: str, ports: int = 48, hc: bool = True) -> SwitchDevice:
        """A switch with ``ports`` ports; ``hc=False`` leaves out ifXTable (32-bit counters only)."""
        tr = self._truncate(name)
        lay = self._layout(("switch", ports, hc, tr), lambda: switch_layout(ports, hc, tr))
        dev = SwitchDevice(name, lay, faults_for(self.faults, name), ports, self.clock)
        self._add(dev)
        return dev

    def add_pdu(self, name: str, kind: str = "apc-rpdu2", outlets: int = 24) -> PduDevice:
        """A PDU shaped like ``apc-rpdu2`` (APC AP8868) or ``raritan-pdu2`` (Raritan PX3)."""
        tr = self._truncate(name)
        if kind == "apc-rpdu2":
            lay, model = self._layout(("apc", outlets, tr), lambda: apc_layout(outlets, tr)), "AP8868"
        elif kind == "raritan-pdu2":
            lay, model = self._layout(("raritan", outlets, tr), lambda: raritan_layout(outlets, tr)), \
                "PX3-5493U-K2"
        else:
            raise ValueError(f"unknown simulated PDU kind {kind!r}; use apc-rpdu2 or raritan-pdu2")
        dev = PduDevice(name, lay, faults_for(self.faults, name), outlets, model, self.clock)
        self._add(dev)
        return dev

    def add_static(self, name: str, values: dict[Oid, Value]) -> SimDevice:
        """A device answering a fixed recorded walk (see ``load_walk``)."""
        return self._add(SimDevice(name, static_layout(values), faults_for(self.faults, name), self.clock))

    def device(self, name: str) -> SimDevice:
        """The simulated device ``name``."""
        return self.devices[name]

    def device_for_context(self, context_name: bytes) -> SimDevice | None:
        """The device a request's context (v3) or community (v1/v2c) points at."""
        return self._by_context.get(context_name)

    # -- serving --

    async def start(self) -> int:
        """Bind the UDP port (0 = any free port) and return it; must run inside the serving loop."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise OSError(err.errno, f"simulated SNMP agent cannot bind udp {self.host}:{self.port}: "
                                     f"{err.strerror}") from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        e = pengine.SnmpEngine()
        transport = _Transport(self).open_server_mode(sock=sock)
        pconfig.add_transport(e, udp.DOMAIN_NAME, transport)
        u = self.v3_user
        pconfig.add_v3_user(e, u.user, _AUTH[u.auth_protocol], u.auth_key, _PRIV[u.priv_protocol], u.priv_key)
        ctx = context.SnmpContext(e)
        for cls in (_Get, _Next, _Bulk, _Set):
            cls(self, e, ctx)
        e.transport_dispatcher.job_started(1)
        self._engine = e
        for dev in self.devices.values():
            self._register(dev)
        await transport._lport  # the asyncio endpoint exists once this future is done
        return self.port

    def _register(self, dev: SimDevice) -> None:
        name = dev.name.encode()
        first = not self._by_context
        self._by_context[name] = dev
        if first:
            self._by_context[b""] = dev
        if dev.fault("wrong-community"):
            return  # its community is never registered: requests for it go unanswered
        pconfig.add_v1_system(self._engine, f"c-{dev.name}", self.community_for(dev.name), contextName=name)
        self._by_community[self.community_for(dev.name).encode()] = dev
        if first:
            pconfig.add_v1_system(self._engine, "c-default", self.community, contextName=name)
            self._by_community[self.community.encode()] = dev

    def answer_v2c(self, data: bytes, address: Any, transport: _Transport) -> bool:
        """Answer an SNMPv2c GET/GETNEXT/GETBULK/SET; False hands the datagram to pysnmp instead."""
        if len(data) < 5 or data[0] != 0x30:
            return False
        try:
            if fastcodec.message_version(data) != fastcodec.V2C:
                return False
            msg = fastcodec.decode_message(data)
        except fastcodec.CodecError:
            return False
        pdu = msg.pdu
        dev = self._by_community.get(msg.community)
        if dev is None:
            return True  # unknown community: real agents stay silent
        if pdu.tag == fastcodec.SET_REQUEST:
            for vb in pdu.varbinds:
                text = vb.value.decode(errors="replace") if isinstance(vb.value, bytes) else str(vb.value)
                self.sets.append(SetRecord(dev.name, format_oid(vb.oid), text))
        if dev.fault("timeout") or dev.fault("drop"):
            return True
        if dev.fault("garbage"):
            transport.reply(b"\x30\x03\x02\x01", address)
            return True
        now = self.clock()
        oids = [vb.oid for vb in pdu.varbinds]
        status = index = 0
        if pdu.tag == fastcodec.GET_REQUEST:
            vbs: list[Any] = []
            for o in oids:
                v = dev.get(o, now)
                vbs.append((o, wire.NO_SUCH_OBJECT, None) if v is None else (o, v[0], v[1]))
        elif pdu.tag == fastcodec.GET_NEXT_REQUEST:
            vbs = _bulk_varbinds(dev, oids, len(oids), 0, len(oids), now)
        elif pdu.tag == fastcodec.GET_BULK_REQUEST:
            vbs = _bulk_varbinds(dev, oids, pdu.error_status, pdu.error_index, self.max_response_varbinds, now)
        elif pdu.tag == fastcodec.SET_REQUEST:
            vbs, status, index = list(pdu.varbinds), 17, 1  # notWritable: read-only by design
        else:
            return False
        reply = fastcodec.encode_message(msg.version, msg.community,
                                         fastcodec.encode_pdu(fastcodec.RESPONSE, pdu.request_id, status, index, vbs))
        delay = dev.fault("delay")
        if delay and delay.arg:
            asyncio.get_running_loop().call_later(delay.arg, transport.reply, reply, address)
        else:
            transport.reply(reply, address)
        return True

    async def stop(self) -> None:
        """Close the port."""
        if self._engine is not None:
            self._engine.transport_dispatcher.job_finished(1)
            self._engine.close_dispatcher()
            self._engine = None

    async def __aenter__(self) -> SnmpSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
