"""A simulated Modbus PDU or meter, served from the same profile the driver reads.

The simulator builds a pymodbus 3.16 ``SimDevice`` whose register blocks cover exactly the
profile's fields (small holes filled, everything else undefined, so a read outside a defined
block gets exception 2 as on real Xerus PDUs) and encodes a small physical model into them with
the profile's own types, word orders and scales:

- voltage ~230 V with slow noise, frequency ~50 Hz;
- per-outlet currents that drift around their own mean; power = V x I x PF;
- inlet/phase totals are sums of the outlets (or a synthetic load for meters without outlets);
- energy counters integrate power over time, so they only grow, in step with power.

The model advances lazily when a request arrives (at most every ``tick`` seconds), so thousands
of idle simulated PDUs cost nothing. Faults (:mod:`drivers.simfaults`): ``delay``, ``timeout``,
``drop``, ``exception=CODE`` and ``garbage``. Every write request is recorded in :attr:`writes`
and refused with exception 1: the agent must never send one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.catalog import Kind
from drivers.modbus import load_profile
from drivers.modbus.codec import decode_value, encode_raw, encode_string, encode_value
from drivers.modbus.plan import BIT_FUNCTIONS, plan_reads
from drivers.modbus.profile import ExpandedProfile, FieldDef, InfoField
from drivers.model import Labels
from drivers.profiles import ProfileLibrary
from drivers.simfaults import Fault

WRITE_CODES = frozenset({5, 6, 15, 16, 22, 23})
_FC_FUNCTION = {1: "coil", 2: "discrete", 3: "holding", 4: "input", 5: "coil", 15: "coil"}
_BLOCK_ORDER = ("coil", "discrete", "holding", "input")  # SimDevice's 4-tuple order


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One write request the simulator received (and refused)."""

    function_code: int
    address: int
    values: tuple[int, ...]
    unit_id: int


# -- the SimDevice, with its register layout built once per profile shape ----------------------

_LAYOUTS: dict[tuple[Any, ...], dict[str, tuple[int, list[int], list[int]]]] = {}


class _LayoutSimDevice(SimDevice):
    """A SimDevice whose runtime layout is cached per profile shape and stored compactly.

    ``SimDevice.build_device`` walks every address between the lowest and highest defined
    register in Python (a Xerus PDU spans 12288..44800: ~30 ms each). Simulating hundreds of
    PDUs from one profile, we build that layout once, share the read-only flag lists, and give
    each PDU its own registers as a 2-byte ``array('H')`` instead of a list of ints.
    """

    layout_key: tuple[Any, ...] = ()

    def build_device(self) -> Any:
        """Return this device's register blocks (``{"c"|"d"|"h"|"i": (start, regs, flags)}``)."""
        cached = _LAYOUTS.get(self.layout_key)
        if cached is None:
            cached = super().build_device()  # type: ignore[assignment]
            assert isinstance(cached, dict)
            _LAYOUTS[self.layout_key] = cached
        return {k: (start, array("H", regs), flags) for k, (start, regs, flags) in cached.items()}


def _block_simdata(fields: Iterable[FieldDef | InfoField], function: str, fill_gap: int) -> list[SimData]:
    items = [f for f in fields if f.function == function]
    if not items:
        # SimDevice needs every block non-empty; one undefined register answers exception 2.
        if function in BIT_FUNCTIONS:
            return [SimData(address=65520, count=16, values=False, datatype=DataType.BITS)]
        return [SimData(address=65535, datatype=DataType.INVALID)]
    out = []
    limit = 2000 if function in BIT_FUNCTIONS else 125
    for r in plan_reads(items, max_gap=fill_gap, max_registers=125, max_bits=limit):
        if function in BIT_FUNCTIONS:
            out.append(SimData(address=r.address, count=r.count, values=False, datatype=DataType.BITS))
        else:
            out.append(SimData(address=r.address, count=r.count, values=0, datatype=DataType.REGISTERS))
    # Merge touching regions: SimDevice rejects overlapping SimData.
    out.sort(key=lambda s: s.address)
    merged: list[SimData] = []
    for s in out:
        if merged and s.address <= merged[-1].address + merged[-1].count:
            prev = merged[-1]
            end = max(prev.address + prev.count, s.address + s.count)
            merged[-1] = SimData(address=prev.address, count=end - prev.address, values=prev.values,
                                 datatype=prev.datatype)
        else:
            merged.append(s)
    return merged


_EXPANDED: dict[tuple[Any, ...], ExpandedProfile] = {}


def _expanded(library: ProfileLibrary, name: str, outlets: int | None) -> ExpandedProfile:
    # Hundreds of simulated PDUs share one immutable expansion of their profile.
    key = (tuple(str(d) for d in library.dirs), name, outlets)
    if key not in _EXPANDED:
        _EXPANDED[key] = load_profile(library, name, outlets)
    return _EXPANDED[key]


# -- the physical model -------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """A mean-reverting random walk (Ornstein-Uhlenbeck): drifts, never runs away."""

    mean: float
    sigma: float
    theta: float = 0.2
    value: float = field(default=0.0)
    low: float = 0.0

    def step(self, rng: random.Random, dt: float) -> float:
        # Exact OU transition, stable for any dt (an Euler step explodes once theta*dt > 2).
        decay = math.exp(-self.theta * dt)
        spread = self.sigma * math.sqrt((1.0 - decay * decay) / (2.0 * self.theta))
        self.value = max(self.low, self.mean + (self.value - self.mean) * decay + spread * rng.gauss(0, 1))
        return self.value


class PduModel:
    """Inlet, phase and outlet electrical values that move like a real rack's.

    It serves whatever (metric, labels) pairs the profile asks for; unknown metrics get a
    plausible steady value (gauges) or a steadily growing one (counters).
    """

    def __init__(self, fields: Iterable[FieldDef], rng: random.Random) -> None:
        fields = list(fields)
        self.rng = rng
        phases = sorted({dict(f.labels).get("phase", "") for f in fields if f.metric.startswith("inlet_")} - {""})
        self.phases = phases or [""]
        outlets = {dict(f.labels)["outlet"] for f in fields if "outlet" in dict(f.labels)}
        self.outlets = sorted(outlets, key=lambda s: (len(s), s))
        self.volts = {p: _Walk(230.0 + rng.uniform(-2, 2), 0.4, 0.5, low=0.0) for p in self.phases}
        for w in self.volts.values():
            w.value = w.mean
        self.hertz = _Walk(50.0, 0.01, 0.5, value=50.0)
        self.outlet_amps: dict[str, _Walk] = {}
        self.outlet_pf: dict[str, float] = {}
        self.outlet_phase: dict[str, str] = {}
        self.outlet_on: dict[str, bool] = {}
        self.outlet_joules: dict[str, float] = {}
        for i, o in enumerate(self.outlets):
            mean = rng.uniform(0.15, 2.2)
            self.outlet_amps[o] = _Walk(mean, 0.03 + 0.02 * mean, 0.1, value=mean)
            self.outlet_pf[o] = rng.uniform(0.90, 0.99)
            self.outlet_phase[o] = self.phases[i % len(self.phases)]
            self.outlet_on[o] = True
            self.outlet_joules[o] = rng.uniform(1e7, 5e8)
        # Meters without outlets carry a synthetic load per phase.
        self.load_amps: dict[str, _Walk] = {}
        for p in self.phases:
            mean = rng.uniform(4, 14)
            self.load_amps[p] = _Walk(mean, 0.2, 0.1, value=mean)
        self.load_pf = {p: rng.uniform(0.85, 0.98) for p in self.phases}
        self.phase_joules = {p: rng.uniform(1e9, 5e10) for p in self.phases}
        self.total_joules = sum(self.phase_joules.values())
        self.temperature = _Walk(24.0, 0.05, 0.05, value=24.0, low=-40)
        self.humidity = _Walk(0.40, 0.002, 0.05, value=0.40)
        self.extra: dict[tuple[str, Labels], float] = {}
        self.extra_walks: dict[tuple[str, Labels], _Walk] = {}
        self.values: dict[tuple[str, Labels], float] = {}
        self._derive(0.0)

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` seconds: drift, then integrate energy over the interval."""
        if dt <= 0:
            return
        rng = self.rng
        for w in self.volts.values():
            w.step(rng, dt)
        self.hertz.step(rng, dt)
        for w in self.outlet_amps.values():
            w.step(rng, dt)
        for w in self.load_amps.values():
            w.step(rng, dt)
        self.temperature.step(rng, dt)
        self.humidity.step(rng, dt)
        for w in self.extra_walks.values():
            w.step(rng, dt)
        self._derive(dt)

    def refresh(self) -> None:
        """Recompute derived values after a state change (no time passes)."""
        self._derive(0.0)

    def _derive(self, dt: float) -> None:
        v: dict[tuple[str, Labels], float] = {}
        phase_p: dict[str, float] = dict.fromkeys(self.phases, 0.0)
        phase_i: dict[str, float] = dict.fromkeys(self.phases, 0.0)
        for o in self.outlets:
            p = self.outlet_phase[o]
            amps = self.outlet_amps[o].value if self.outlet_on[o] else 0.0
            watts = self.volts[p].value * amps * self.outlet_pf[o]
            self.outlet_joules[o] += watts * dt
            phase_p[p] += watts
            phase_i[p] += amps
            lab = (("outlet", o),)
            v[("outlet_current_amperes", lab)] = amps
            v[("outlet_power_watts", lab)] = watts
            v[("outlet_energy_joules_total", lab)] = self.outlet_joules[o]
            v[("outlet_on", lab)] = 1.0 if self.outlet_on[o] else 0.0
        if not self.outlets:
            for p in self.phases:
                phase_i[p] = self.load_amps[p].value
                phase_p[p] = self.volts[p].value * phase_i[p] * self.load_pf[p]
        total_p = total_s = total_i = 0.0
        for p in self.phases:
            volts = self.volts[p].value
            s = volts * phase_i[p]
            self.phase_joules[p] += phase_p[p] * dt
            total_p += phase_p[p]
            total_s += s
            total_i += phase_i[p]
            if p:
                self._inlet(v, (("phase", p),), volts, phase_i[p], phase_p[p], s, self.phase_joules[p])
        self.total_joules += total_p * dt
        mean_v = sum(w.value for w in self.volts.values()) / len(self.volts)
        self._inlet(v, (), mean_v, total_i, total_p, total_s, self.total_joules)
        self.values = v

    def _inlet(self, v: dict[tuple[str, Labels], float], extra: Labels, volts: float, amps: float,
               watts: float, va: float, joules: float) -> None:
        for metric, value in (
            ("inlet_voltage_volts", volts),
            ("inlet_current_amperes", amps),
            ("inlet_power_watts", watts),
            ("inlet_apparent_power_voltamperes", va),
            ("inlet_power_factor_ratio", watts / va if va > 0 else 1.0),
            ("inlet_frequency_hertz", self.hertz.value),
            ("inlet_energy_joules_total", joules),
        ):
            v[(metric, extra)] = value

    def _extra_walk(self, f: FieldDef, mean: float, sigma: float) -> _Walk:
        key = (f.metric, f.labels)
        if key not in self.extra_walks:
            self.extra_walks[key] = _Walk(mean * self.rng.uniform(0.9, 1.1), sigma, 0.1)
            self.extra_walks[key].value = self.extra_walks[key].mean
        return self.extra_walks[key]

    def value(self, f: FieldDef) -> float:
        """The current true value for one profile field."""
        labels = f.labels
        if f.metric.startswith("inlet_"):
            phase = tuple(kv for kv in labels if kv[0] == "phase")
            return self.values[(f.metric, phase)]
        if f.metric.startswith("outlet_"):
            outlet = tuple(kv for kv in labels if kv[0] == "outlet")
            return self.values[(f.metric, outlet)]
        if f.metric == "sensor_temperature_celsius":
            return self.temperature.value
        if f.metric == "sensor_humidity_ratio":
            return self.humidity.value
        if f.metric == "fan_speed_rpm":
            return self._extra_walk(f, 9000.0, 150.0).value
        if f.metric == "psu_power_watts":
            total = self.values[("inlet_power_watts", ())]
            return total * 0.95 if "out" in dict(labels).get("sensor", "") else total
        key = (f.metric, labels)
        if key not in self.extra:
            self.extra[key] = self.rng.uniform(100, 1000)
        if f.kind.value == "counter":
            self.extra[key] += 1.0
        return self.extra[key]


# -- the server side --------------------------------------------------------------------------


def _crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_TASKS: set[asyncio.Task[None]] = set()  # strong references to in-flight request tasks


class _Handler(ServerRequestHandler):
    """Per-connection handler that applies the simulator's connection-level faults.

    Unlike pymodbus's own handler it answers every complete frame that arrives, not only the
    first: a client may pipeline requests (several transaction ids in flight at once).
    """

    sim: ModbusPduSimulator

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._frames: deque[tuple[ModbusPDU, Any]] = deque()  # parsed, waiting for handle_later

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        kind = self.sim.active_fault()
        if kind is None or kind.kind in ("delay", "exception"):
            used = 0
            while used < len(data):
                n = int(super().callback_data(data[used:] if used else data, addr))  # one frame
                if self.last_pdu is not None:
                    self._frames.append((self.last_pdu, self.last_addr))
                if n <= 0:
                    break
                used += n
            return used
        if kind.kind == "drop":
            if self.transport:
                self.transport.close()
            return len(data)
        if kind.kind == "garbage":
            self.send(self.sim.garbage_reply(data))
        return len(data)  # timeout: swallow the request, never answer

    def handle_later(self) -> None:
        """Answer the oldest parsed frame in a plain task (pymodbus schedules one call per frame).

        pymodbus would use ``run_coroutine_threadsafe``, which wakes the loop through its
        self-pipe: an extra syscall pair per request, a third of the server's CPU on loopback.
        """
        if not self._frames:
            return
        pdu, addr = self._frames.popleft()
        task = self.loop.create_task(self._answer(pdu, addr))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _answer(self, pdu: ModbusPDU, addr: Any) -> None:
        # pymodbus's handle_request, but on this frame's PDU: with requests pipelined (and a delay
        # fault) several answers are under way at once, so self.last_pdu is not this one's.
        if pdu.dev_id != self.sim.unit_id:
            if self.sim.framer is FramerType.SOCKET:
                # A TCP device answers for units it does not have like a gateway would.
                resp = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
                resp.transaction_id = pdu.transaction_id
                resp.dev_id = pdu.dev_id
                self.server_send(resp, addr)
            return  # on a serial bus other units' requests are none of our business
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except Exception:  # what pymodbus answers when its datastore fails
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.server_send(response, addr)


class _TcpServer(ModbusTcpServer):
    sim: ModbusPduSimulator

    def callback_new_connection(self) -> _Handler:
        h = _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
        h.sim = self.sim
        return h


class _SerialServer(ModbusSerialServer):
    sim: ModbusPduSimulator

    def callback_new_connection(self) -> _Handler:
        h = _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
        h.sim = self.sim
        return h


class ModbusPduSimulator:
    """A simulated Modbus device serving one profile on 127.0.0.1 (or a serial port).

    ``transport`` is ``tcp`` (MBAP framing), ``rtu-over-tcp`` (RTU frames on a TCP socket) or
    ``rtu`` (a serial device path in ``serial_port``). ``outlets`` caps the profile's repeat
    blocks (e.g. 24 for a 24-outlet unit). ``tick`` is the minimum model step in seconds.
    """

    def __init__(
        self,
        name: str,
        profile: str = "raritan-px-modbus",
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        outlets: int | None = None,
        faults: Iterable[Fault] = (),
        seed: int | None = None,
        *,
        transport: str = "tcp",
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        library: ProfileLibrary | None = None,
        tick: float = 1.0,
        fill_gap: int = 16,
    ) -> None:
        if transport not in ("tcp", "rtu-over-tcp", "rtu"):
            raise ValueError(f"transport {transport!r} is not one of tcp, rtu-over-tcp, rtu")
        if transport == "rtu" and not serial_port:
            raise ValueError("transport 'rtu' needs serial_port")
        self.name = name
        self.profile_name = profile
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.transport = transport
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity = parity
        self.framer = FramerType.SOCKET if transport == "tcp" else FramerType.RTU
        self.profile: ExpandedProfile = _expanded(library or ProfileLibrary(), profile, outlets)
        self.fields = self.profile.fields
        self.writes: list[WriteRecord] = []
        self.requests = 0
        self.frozen = False
        self.tick = tick
        self.fill_gap = fill_gap
        self.rng = random.Random(seed if seed is not None else name)
        self.model = PduModel(self.fields, self.rng)
        self.serial_number = 10_000_000 + self.rng.randrange(89_999_999)
        self.firmware = "1.0-sim"
        self._info_regs = [(i, self._info_registers(i)) for i in self.profile.info_fields]
        self._faults: list[Fault] = []
        self.set_faults(faults)
        self._last_step = time.monotonic()
        self._version = 1
        self._written: dict[str, int] = {}
        self._by_function: dict[str, list[FieldDef]] = {}
        for f in self.fields:
            self._by_function.setdefault(f.function, []).append(f)
        self._server: _TcpServer | _SerialServer | None = None

    # -- faults -----------------------------------------------------------------------------

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """Replace the active faults; only those naming this device (or ``*``) apply."""
        self._faults = [f for f in faults if f.device in (self.name, "*")]

    @property
    def faults(self) -> list[Fault]:
        """The faults in force."""
        return list(self._faults)

    def active_fault(self) -> Fault | None:
        """The first fault in force, if any."""
        return self._faults[0] if self._faults else None

    def garbage_reply(self, request: bytes) -> bytes:
        """A well-framed answer with a malformed body: odd byte count or no bits at all."""
        if self.framer is FramerType.SOCKET:
            if len(request) < 8:
                return b"\x00\x00\x00\x00\x00\x01\x00"
            fc = request[7]
            body = bytes([fc, 0]) if _FC_FUNCTION.get(fc) in BIT_FUNCTIONS else bytes([fc, 3, 0xDE, 0xAD, 0xBE])
            return request[:4] + (len(body) + 1).to_bytes(2, "big") + request[6:7] + body
        unit, fc = (request[0], request[1]) if len(request) >= 2 else (self.unit_id, 3)
        body = bytes([unit, fc, 0]) if _FC_FUNCTION.get(fc) in BIT_FUNCTIONS else bytes([unit, fc, 3, 0xDE, 0xAD, 0xBE])
        return body + _crc16(body).to_bytes(2, "little")

    # -- model ------------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` simulated seconds now (tests use this for exact deltas)."""
        self.model.step(dt)
        self._last_step = time.monotonic()
        self._version += 1

    def _maybe_step(self) -> None:
        if self.frozen:
            return
        now = time.monotonic()
        dt = now - self._last_step
        if dt >= self.tick:
            self.model.step(dt)
            self._last_step = now
            self._version += 1

    def truth(self) -> dict[tuple[str, Labels], float]:
        """What the device serves right now, per (metric, labels), after its own encoding.

        Values are passed through the field's encoding (e.g. float32, whole Wh) so a correct
        driver reproduces them exactly; fields whose value would be a dropped sentinel are absent.
        """
        out: dict[tuple[str, Labels], float] = {}
        for f in self.fields:
            v = decode_value(f, encode_value(f, self.model.value(f)))
            if v is not None:
                out[(f.metric, f.labels)] = v
        return out

    def set_outlet(self, outlet: str, on: bool) -> None:
        """Switch an outlet (test helper; the relay state is what the coil serves)."""
        self.model.outlet_on[outlet] = on
        self.model.step(0.0)
        self.model.refresh()
        self._version += 1

    def _info_registers(self, item: InfoField) -> list[int]:
        text = {"serial": f"SN{self.serial_number}", "firmware": self.firmware,
                "vendor": self.profile.vendor, "model": self.profile.model}[item.key]
        if item.type == "string":
            return encode_string(text, item.width, item.byte_order)
        number = self.serial_number if item.key == "serial" else 1
        probe = FieldDef(item.function, item.address, item.width, item.type, item.word_order, item.byte_order,
                         1.0, 0.0, "outlet_on", Kind.GAUGE, (), frozenset(), "info")
        return encode_raw(probe, number)

    def _fill(self, function: str, start: int, registers: Any) -> None:
        """Encode every field of one function into the block's registers."""
        for item, regs in self._info_regs:
            if item.function == function and function not in BIT_FUNCTIONS:
                i = item.address - start
                registers[i : i + len(regs)] = array("H", regs) if isinstance(registers, array) else regs
        value = self.model.value
        if function in BIT_FUNCTIONS:
            for f in self._by_function.get(function, ()):
                idx, bit = divmod(f.address, 16)
                idx -= start
                on = (value(f) - f.offset) / f.scale >= 0.5
                registers[idx] = (registers[idx] | (1 << bit)) if on else (registers[idx] & ~(1 << bit))
            return
        for f in self._by_function.get(function, ()):
            regs = encode_value(f, value(f))
            i = f.address - start
            registers[i : i + len(regs)] = array("H", regs) if isinstance(registers, array) else regs

    async def _action(
        self, fc: int, start: int, address: int, count: int, registers: Any, set_values: Any
    ) -> ExcCodes | None:
        if set_values is not None or fc in WRITE_CODES:
            return ExcCodes.ILLEGAL_FUNCTION  # recorded in _trace_pdu; this device is read-only
        fault = self.active_fault()
        if fault is not None:
            if fault.kind == "delay" and fault.arg:
                await asyncio.sleep(fault.arg)
            elif fault.kind == "exception":
                try:
                    return ExcCodes(int(fault.arg or 4))
                except ValueError:
                    return ExcCodes.DEVICE_FAILURE
        function = _FC_FUNCTION.get(fc)
        if function is None:
            return ExcCodes.ILLEGAL_FUNCTION
        self._maybe_step()
        if self._written.get(function) != self._version:
            self._fill(function, start, registers)
            self._written[function] = self._version
        return None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests += 1
            if pdu.function_code in WRITE_CODES:
                values = tuple(int(x) for x in (pdu.registers or pdu.bits or ()))
                self.writes.append(WriteRecord(pdu.function_code, pdu.address, values, pdu.dev_id))
        return pdu

    def _device(self) -> SimDevice:
        spans: list[FieldDef | InfoField] = [*self.fields, *self.profile.info_fields]
        blocks = tuple(_block_simdata(spans, fn, self.fill_gap) for fn in _BLOCK_ORDER)
        dev = _LayoutSimDevice(id=self.unit_id, simdata=blocks, action=self._action)  # type: ignore[arg-type]
        dev.layout_key = (tuple((f.function, f.address, f.width) for f in spans), self.fill_gap)
        return dev

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Start serving; returns the bound TCP port (0 for serial)."""
        if self._server is not None:
            return self.port
        dev = self._device()
        server: _TcpServer | _SerialServer
        if self.transport == "rtu":
            assert self.serial_port is not None
            server = _SerialServer(dev, framer=FramerType.RTU, port=self.serial_port, baudrate=self.baudrate,
                                   parity=self.parity, trace_pdu=self._trace_pdu)
        else:
            server = _TcpServer(dev, framer=self.framer, address=(self.host, self.port), trace_pdu=self._trace_pdu)
        server.sim = self
        await server.serve_forever(background=True)
        self._server = server
        if self.transport != "rtu":
            sockets = getattr(server.transport, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        return self.port if self.transport != "rtu" else 0

    async def stop(self) -> None:
        """Stop serving and close every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def __aenter__(self) -> ModbusPduSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(args: Any) -> None:
    sims = [ModbusPduSimulator(f"{args.name}-{i + 1}" if args.count > 1 else args.name, args.profile,
                               host=args.host, port=args.port + i if args.port else 0, unit_id=args.unit_id,
                               outlets=args.outlets, seed=args.seed, transport=args.transport)
            for i in range(args.count)]
    for s in sims:
        print(f"{s.name} {args.host}:{await s.start()}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for s in sims:
            await s.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m drivers.modbus.simulator``: serve simulated devices until interrupted."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="raritan-px-modbus")
    p.add_argument("--name", default="pdu")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="first port (0: any free port)")
    p.add_argument("--unit-id", type=int, default=1)
    p.add_argument("--outlets", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--transport", default="tcp", choices=["tcp", "rtu-over-tcp"])
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
