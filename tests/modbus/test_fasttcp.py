"""The fast Modbus/TCP engine (``drivers/modbus/fasttcp.py``): same readings as pymodbus, pipelining,
and every way a device can misbehave, over real loopback TCP.

Two kinds of device: the project's simulator (real values, faults), and a scripted raw
Modbus/TCP responder defined here, for what no well-behaved server does (stray or mismatched
transaction ids, answers from the wrong unit, closing mid-poll) and to count requests in flight.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.errors import DeviceError
from drivers.modbus import ModbusDriver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.fasttcp import (
    MAX_MBAP_LENGTH,
    ExceptionReply,
    FastTcpClient,
    FrameError,
    ReadRequest,
    _Protocol,
    check_answer,
    split_frames,
    unpack_bits,
)
from drivers.modbus.simulator import ModbusPduSimulator
from drivers.model import Reading
from drivers.simfaults import parse_faults

Drivers = Callable[..., ModbusDriver]
READ_CODES = {1, 2, 3, 4}


def by_key(readings: list[Reading]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(r.metric, r.labels): r.value for r in readings}


# -- a scripted Modbus/TCP device ------------------------------------------------------------------


def zero_answer(tid: int, unit: int, fc: int, count: int) -> bytes:
    """A correct answer to a read, all registers (or bits) zero."""
    nbytes = (count + 7) // 8 if fc in (1, 2) else count * 2
    body = bytes((fc, nbytes)) + bytes(nbytes)
    return struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body


CLOSE = b"<close>"
# script(index of the request on this device, tid, unit, fc, address, count) -> frame(s) to send,
# b"" for no answer, or CLOSE to drop the connection
Script = Callable[[int, int, int, int, int, int], bytes]


class RawDevice:
    """A Modbus/TCP responder on 127.0.0.1 that answers by script (zeros by default).

    It records every request's function code, counts connections, and tracks how many requests
    were in flight at once (received, not yet answered); answers go out ``delay`` s later.
    """

    def __init__(self, script: Script | None = None, delay: float = 0.0, first_frame_only: bool = False) -> None:
        self.script: Script = script or (lambda i, tid, unit, fc, a, c: zero_answer(tid, unit, fc, c))
        self.delay = delay
        # like pymodbus's server: handle only the first frame of each read, keep the rest buffered
        self.first_frame_only = first_frame_only
        self.requests: list[tuple[int, int, int, int, int]] = []  # tid, unit, fc, address, count
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: list[asyncio.Transport] = []

    async def start(self) -> int:
        dev = self

        class Conn(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.t = transport
                self.buf = b""
                dev.connections += 1
                dev._transports.append(transport)

            def data_received(self, data: bytes) -> None:
                buf = self.buf + data
                while len(buf) >= 12:
                    tid, _proto, length = struct.unpack_from(">HHH", buf)
                    if len(buf) < 6 + length:
                        break
                    unit, fc, addr, count = struct.unpack_from(">BBHH", buf, 6)
                    buf = buf[6 + length :]
                    dev.requests.append((tid, unit, fc, addr, count))
                    dev.in_flight += 1
                    dev.max_in_flight = max(dev.max_in_flight, dev.in_flight)
                    out = dev.script(len(dev.requests) - 1, tid, unit, fc, addr, count)
                    asyncio.get_running_loop().call_later(dev.delay, self.answer, out)
                    if dev.first_frame_only:
                        break
                self.buf = buf

            def answer(self, out: bytes) -> None:
                dev.in_flight -= 1
                if out == CLOSE:
                    self.t.close()
                elif out and not self.t.is_closing():
                    self.t.write(out)

        self._server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in self._transports:
                t.close()
            await self._server.wait_closed()

    @property
    def function_codes(self) -> set[int]:
        return {r[2] for r in self.requests}


@pytest_asyncio.fixture
async def raw_device() -> AsyncIterator[Callable[..., RawDevice]]:
    """Factory for scripted devices (already listening), stopped after the test."""
    made: list[RawDevice] = []

    def factory(script: Script | None = None, delay: float = 0.0, first_frame_only: bool = False) -> RawDevice:
        d = RawDevice(script, delay, first_frame_only)
        made.append(d)
        return d

    yield factory
    for d in made:
        await d.stop()


async def started(dev: RawDevice) -> RawDevice:
    await dev.start()
    return dev


# -- equality with the reference engine --------------------------------------------------------------


@pytest.mark.parametrize("pipeline", [1, 8, 16])
async def test_fast_engine_matches_pymodbus(pdu: ModbusPduSimulator, drivers: Drivers, pipeline: int) -> None:
    ref = await drivers(pdu.port, engine="pymodbus").poll()
    fast_drv = drivers(pdu.port, engine="fast", pipeline=pipeline)
    assert fast_drv.fast
    fast = await fast_drv.poll()
    assert by_key(fast.readings) == by_key(ref.readings) == pdu.truth()
    assert [(r.metric, r.labels, r.kind) for r in fast.readings] == [(r.metric, r.labels, r.kind) for r in ref.readings]
    assert fast.requests == ref.requests == 50
    assert fast.info == ref.info
    again = await fast_drv.poll()  # the second poll on the same connection
    assert by_key(again.readings) == pdu.truth()
    assert pdu.requests == 3 * 50
    assert pdu.writes == []


@pytest.mark.parametrize("pipeline", [1, 16])
async def test_identity_registers_and_input_registers(drivers: Drivers, pipeline: int) -> None:
    async with ModbusPduSimulator("meter", profile="eastron-sdm630", seed=5) as sim:
        sim.frozen = True
        ref = await drivers(sim.port, profile="eastron-sdm630", engine="pymodbus").poll()
        fast = await drivers(sim.port, profile="eastron-sdm630", pipeline=pipeline).poll()
        assert by_key(fast.readings) == by_key(ref.readings) == sim.truth()
        assert fast.info == ref.info and fast.info.serial == str(sim.serial_number)
        assert fast.requests == ref.requests
        assert sim.writes == []


async def test_pipelining_keeps_that_many_requests_in_flight(raw_device: Callable[..., RawDevice],
                                                           drivers: Drivers) -> None:
    for pipeline in (1, 8, 16):
        dev = await started(raw_device(delay=0.002))
        res = await drivers(dev.port, pipeline=pipeline).poll()
        assert res.requests == 50 and len(dev.requests) == 50
        assert dev.max_in_flight == pipeline
        assert len({r[0] for r in dev.requests}) == 50  # distinct transaction ids
        assert [(fc, a, c) for _, _, fc, a, c in dev.requests] == [
            (r.function_code, r.address, r.count) for r in drivers(dev.port).reads
        ]  # in plan order


async def test_pipelining_overlaps_the_device_latency(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_faults(parse_faults("pdu-1:delay=10ms"))
    t0 = time.monotonic()
    res = await drivers(pdu.port, pipeline=16).poll()
    took = time.monotonic() - t0
    assert by_key(res.readings) == pdu.truth()
    assert took < 50 * 0.010 / 2, f"{took:.3f}s: requests did not overlap"


async def test_device_handling_one_transaction_at_a_time(raw_device: Callable[..., RawDevice],
                                                       drivers: Drivers) -> None:
    """Why pipeline is opt-in: such a device leaves pipelined requests unanswered; the poll times out."""
    dev = await started(raw_device(first_frame_only=True))
    assert (await drivers(dev.port).poll()).requests == 50  # pipeline 1: fine
    with pytest.raises(DeviceError) as ei:
        await drivers(dev.port, pipeline=4, timeout=0.3).poll()
    assert ei.value.reason == "timeout"
    assert str(ei.value).endswith("no response within 0.3s")


# -- failures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_exception_response_keeps_the_connection(pdu: ModbusPduSimulator, drivers: Drivers,
                                                       pipeline: int) -> None:
    drv = drivers(pdu.port, pipeline=pipeline)
    pdu.set_faults(parse_faults("pdu-1:exception=2"))
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "exception"
    assert str(ei.value) == "read coil 0+48: exception 2 (illegal data address)"
    pdu.set_faults([])
    await asyncio.sleep(0.05)  # the rest of the window's (exception) answers arrive, to be dropped
    res = await drv.poll()
    assert by_key(res.readings) == pdu.truth()


async def test_exception_mid_pipeline_names_its_read(raw_device: Callable[..., RawDevice],
                                                     drivers: Drivers) -> None:
    def script(i: int, tid: int, unit: int, fc: int, addr: int, count: int) -> bytes:
        if i == 4:  # the fifth request of the first poll
            return struct.pack(">HHHBBB", tid, 0, 3, unit, fc | 0x80, 3)
        return zero_answer(tid, unit, fc, count)

    dev = await started(raw_device(script, delay=0.001))
    drv = drivers(dev.port, pipeline=8)
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "exception"
    assert str(ei.value) == f"read {drv.reads[4].describe()}: exception 3 (illegal data value)"
    await asyncio.sleep(0.05)  # answers to requests 6..8 arrive late and are dropped quietly
    res = await drv.poll()
    assert res.requests == 50
    assert dev.connections == 1  # no reconnect: an exception leaves the connection sound


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_dropped_connection_mid_poll_fails_at_once(raw_device: Callable[..., RawDevice],
                                                         drivers: Drivers, pipeline: int) -> None:
    def script(i: int, tid: int, unit: int, fc: int, addr: int, count: int) -> bytes:
        return CLOSE if i == 10 else zero_answer(tid, unit, fc, count)

    dev = await started(raw_device(script))
    drv = drivers(dev.port, pipeline=pipeline, timeout=2.0)
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert time.monotonic() - t0 < 1.0  # not after the 2 s timeout
    assert ei.value.reason == "connection"
    assert str(ei.value) == f"read {drv.reads[10].describe()}: connection closed by the device"
    res = await drv.poll()  # reconnects on the next poll
    assert res.requests == 50 and dev.connections == 2


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_simulator_drop_fault_then_reconnect(pdu: ModbusPduSimulator, drivers: Drivers, pipeline: int) -> None:
    drv = drivers(pdu.port, pipeline=pipeline)
    await drv.poll()
    pdu.set_faults(parse_faults("pdu-1:drop"))
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "connection"
    pdu.set_faults([])
    assert by_key((await drv.poll()).readings) == pdu.truth()


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_device_that_never_answers_times_out(pdu: ModbusPduSimulator, drivers: Drivers, pipeline: int) -> None:
    drv = drivers(pdu.port, pipeline=pipeline, timeout=0.2)
    pdu.set_faults(parse_faults("pdu-1:timeout"))
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert 0.19 <= time.monotonic() - t0 < 1.0
    assert ei.value.reason == "timeout"
    assert str(ei.value) == "read coil 0+48: no response within 0.2s"
    pdu.set_faults([])
    assert by_key((await drv.poll()).readings) == pdu.truth()


async def test_late_answer_after_timeout_is_not_taken_for_the_next(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port, timeout=0.2, pipeline=4)
    pdu.set_faults(parse_faults("pdu-1:delay=400ms"))
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "timeout"
    pdu.set_faults([])
    res = await drv.poll()  # immediately, while the late answers are still due on the old connection
    assert by_key(res.readings) == pdu.truth()
    await asyncio.sleep(0.3)
    assert by_key((await drv.poll()).readings) == pdu.truth()


async def test_cancelled_poll_closes_the_connection(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    drv = drivers(pdu.port, pipeline=8)
    pdu.set_faults(parse_faults("pdu-1:delay=300ms"))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):  # what the scheduler does to a slow poll
            await drv.poll()
    pdu.set_faults([])
    assert by_key((await drv.poll()).readings) == pdu.truth()


async def test_garbage_answers_are_protocol_errors(pdu: ModbusPduSimulator, drivers: Drivers) -> None:
    pdu.set_faults(parse_faults("pdu-1:garbage"))
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port, pipeline=8).poll()  # coil 0+48 answered with a byte count of 0
    assert ei.value.reason == "protocol"
    assert str(ei.value) == "read coil 0+48: answer carries 0 bits, expected 48"
    with pytest.raises(DeviceError) as ei:
        await drivers(pdu.port, profile="eastron-sdm630").poll()  # registers: 3 bytes
    assert ei.value.reason == "protocol"
    assert "answer carries 3 bytes, expected" in str(ei.value)


async def test_mismatched_transaction_id_is_a_protocol_error(raw_device: Callable[..., RawDevice],
                                                             drivers: Drivers) -> None:
    def script(i: int, tid: int, unit: int, fc: int, addr: int, count: int) -> bytes:
        return zero_answer(tid + 1000 if i == 3 else tid, unit, fc, count)

    dev = await started(raw_device(script))
    drv = drivers(dev.port, timeout=2.0)
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert time.monotonic() - t0 < 1.0  # reported at once, not as a timeout
    assert ei.value.reason == "protocol"
    assert str(ei.value) == (f"read {drv.reads[3].describe()}: device sent an answer for unknown transaction id "
                             f"{dev.requests[3][0] + 1000} (stray or mismatched frame)")
    assert (await drv.poll()).requests == 50  # a fresh connection
    assert dev.connections == 2


async def test_duplicate_answer_is_a_stray_frame(raw_device: Callable[..., RawDevice], drivers: Drivers) -> None:
    def script(i: int, tid: int, unit: int, fc: int, addr: int, count: int) -> bytes:
        frame = zero_answer(tid, unit, fc, count)
        return frame * 2 if i == 0 else frame

    dev = await started(raw_device(script))
    drv = drivers(dev.port)
    with pytest.raises(DeviceError) as ei:
        await drv.poll()
    assert ei.value.reason == "protocol"
    assert str(ei.value).endswith("device sent a second answer for transaction id 1 (stray or mismatched frame)")


async def test_zero_transaction_id_is_accepted_with_one_request_in_flight(
        raw_device: Callable[..., RawDevice], drivers: Drivers) -> None:
    dev = await started(raw_device(lambda i, tid, unit, fc, a, c: zero_answer(0, unit, fc, c)))
    res = await drivers(dev.port, pipeline=1).poll()  # as pymodbus accepts it
    assert res.requests == 50
    with pytest.raises(DeviceError) as ei:
        await drivers(dev.port, pipeline=2).poll()  # ambiguous with two in flight
    assert ei.value.reason == "protocol"


async def test_answer_from_another_unit_is_a_protocol_error(raw_device: Callable[..., RawDevice],
                                                            drivers: Drivers) -> None:
    dev = await started(raw_device(lambda i, tid, unit, fc, a, c: zero_answer(tid, 5, fc, c)))
    with pytest.raises(DeviceError) as ei:
        await drivers(dev.port).poll()
    assert ei.value.reason == "protocol"
    assert str(ei.value) == "read coil 0+48: answer comes from unit 5, expected 1"


async def test_bad_mbap_header_is_a_protocol_error(raw_device: Callable[..., RawDevice], drivers: Drivers) -> None:
    dev = await started(raw_device(lambda i, tid, unit, fc, a, c: struct.pack(">HHHBB", tid, 7, 2, unit, fc)))
    with pytest.raises(DeviceError) as ei:
        await drivers(dev.port).poll()
    assert ei.value.reason == "protocol"
    assert str(ei.value) == "read coil 0+48: answer has MBAP protocol id 7, not 0 (is this a Modbus/TCP device?)"


async def test_wrong_function_code_is_a_protocol_error(raw_device: Callable[..., RawDevice], drivers: Drivers) -> None:
    dev = await started(raw_device(lambda i, tid, unit, fc, a, c: zero_answer(tid, unit, 4 if fc == 3 else fc, c)))
    with pytest.raises(DeviceError) as ei:
        await drivers(dev.port).poll()
    assert ei.value.reason == "protocol"
    assert str(ei.value).endswith("answer has function code 4, expected 3")


async def test_connection_refused(drivers: Drivers) -> None:
    from tests.helpers import free_port

    port = free_port()
    with pytest.raises(DeviceError) as ei:
        await drivers(port).poll()
    assert ei.value.reason == "connection"
    assert str(ei.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_only_read_function_codes_are_sent(pdu: ModbusPduSimulator, raw_device: Callable[..., RawDevice],
                                                 drivers: Drivers) -> None:
    for pipeline in (1, 16):
        for _ in range(3):
            await drivers(pdu.port, pipeline=pipeline).poll()
    assert pdu.writes == []
    dev = await started(raw_device())
    async with ModbusPduSimulator("meter", profile="eastron-sdm630", seed=2) as meter:
        await drivers(meter.port, profile="eastron-sdm630", pipeline=4).poll()
        assert meter.writes == []
    for profile in ("raritan-px-modbus", "eastron-sdm630", "orv3-psu"):
        await drivers(dev.port, profile=profile, pipeline=16).poll()
    assert dev.function_codes <= READ_CODES and dev.function_codes >= {1, 3}


async def test_client_directly(pdu: ModbusPduSimulator) -> None:
    client = FastTcpClient("127.0.0.1", pdu.port, 1, timeout=1.0)
    assert not client.connected
    await client.connect()
    try:
        assert client.connected
        coils = await client.read(ReadRequest(1, 0, 48, 1))
        assert unpack_bits(coils, 48) == [True] * 48
        with pytest.raises(ExceptionReply) as ei:
            await client.read(ReadRequest(3, 40000, 2, 1))  # outside every block
        assert ei.value.code == 2 and client.connected
    finally:
        client.close()
    assert not client.connected


# -- configuration -----------------------------------------------------------------------------------


def cfg(**extra: Any) -> ModbusDeviceConfig:
    return ModbusDeviceConfig.model_validate({"name": "d", "driver": "modbus", "profile": "p", **extra})


def test_engine_defaults_follow_the_transport() -> None:
    assert cfg(host="h").engine == "fast"
    assert cfg(host="h").pipeline == 1
    assert cfg(host="h", transport="rtu-over-tcp").engine == "pymodbus"
    assert cfg(transport="rtu", serial_port="/dev/ttyUSB0").engine == "pymodbus"
    assert cfg(host="h", engine="pymodbus").engine == "pymodbus"
    assert cfg(host="h", pipeline=16).pipeline == 16


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"host": "h", "transport": "rtu-over-tcp", "engine": "fast"}, "engine 'fast' speaks Modbus/TCP (MBAP) only"),
        ({"transport": "rtu", "serial_port": "/dev/ttyS0", "engine": "fast"}, "transport 'rtu' always uses pymodbus"),
        ({"host": "h", "engine": "pymodbus", "pipeline": 4}, "pipeline 4 needs engine 'fast'"),
        ({"host": "h", "pipeline": 17}, "less than or equal to 16"),
        ({"host": "h", "pipeline": 0}, "greater than or equal to 1"),
        ({"host": "h", "engine": "turbo"}, "'fast' or 'pymodbus'"),
    ],
)
def test_engine_config_errors(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as ei:
        cfg(**extra)
    assert message in str(ei.value)


# -- the frame parser, fuzzed ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_split_frames_parses_or_raises_frame_error(data: bytes) -> None:
    try:
        frames, used = split_frames(data)
    except FrameError as e:
        assert e.reason == "protocol" and "MBAP" in str(e)
        return
    assert 0 <= used <= len(data)
    pos = 0
    for tid, frame in frames:
        tid_, proto, length = struct.unpack_from(">HHH", data, pos)
        assert (tid_, proto) == (tid, 0) and len(frame) == length and 2 <= length <= MAX_MBAP_LENGTH
        assert data[pos + 6 : pos + 6 + length] == frame
        pos += 6 + length
    assert pos == used
    rest = data[used:]
    assert len(rest) < 6 or 6 + struct.unpack_from(">H", rest, 4)[0] > len(rest)


requests = st.builds(
    lambda fc, addr, count: ReadRequest(fc, addr, min(count, 125 if fc > 2 else 2000), 1),
    st.sampled_from([1, 2, 3, 4]), st.integers(0, 60000), st.integers(1, 2000),
)


@settings(max_examples=400, deadline=None)
@given(requests, st.binary(max_size=260))
def test_check_answer_returns_data_or_raises_clear_errors(req: ReadRequest, frame: bytes) -> None:
    try:
        data = check_answer(req, 1, frame)
    except ExceptionReply as e:
        assert frame[1] == req.function_code | 0x80 and e.code == frame[2]
        return
    except FrameError as e:
        assert e.reason == "protocol" and str(e)
        return
    assert len(data) == req.nbytes and frame[:3] == bytes((1, req.function_code, req.nbytes))


@settings(max_examples=200, deadline=None)
@given(requests, st.integers(1, 30), st.data())
def test_answers_reassemble_from_any_split(req: ReadRequest, n: int, data: st.DataObject) -> None:
    """Frames cut into arbitrary chunks arrive whole, each filed under its own transaction id."""
    proto = _Protocol()
    tids = list(range(1, n + 1))
    proto.answers = dict.fromkeys(tids)
    fc = req.function_code
    stream = b"".join(
        struct.pack(">HHHBBB", t, 0, 3 + req.nbytes, 1, fc, req.nbytes) + bytes([t & 0xFF]) * req.nbytes for t in tids
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if b > a:
            proto.data_received(stream[a:b])
    assert proto.error is None and proto.buf == b""
    for t in tids:
        frame = proto.answers[t]
        assert frame is not None
        assert check_answer(req, 1, frame) == bytes([t & 0xFF]) * req.nbytes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=8))
def test_protocol_survives_random_bytes(chunks: list[bytes]) -> None:
    """Random input either yields answers, waits for more, or fails the connection with a clear error."""
    proto = _Protocol()
    proto.answers = dict.fromkeys(range(1, 4))
    for chunk in chunks:
        proto.data_received(chunk)
    assert proto.error is None or (isinstance(proto.error, FrameError) and str(proto.error))
