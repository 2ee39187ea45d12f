"""A lean Modbus/TCP read client on ``asyncio.Protocol``: the ``engine: fast`` transport of the driver.

It exists for CPU: pymodbus's client spends ~60-70 µs of CPU per request in its transaction
layer, and a 48-outlet Raritan PDU needs 50 small requests per poll (its outlet blocks lie 256
registers apart), so the transport, not the decoding, dominated a poll. This module does only
what the driver needs, with each request framed once (a poll stamps a 2-byte transaction id on
it): MBAP framing on one TCP connection, the read function codes 1-4 (it contains no code that
could build a write request), transaction-id matching, optional pipelining of several requests
in flight at once (where most of the saving lies), exception responses, per-request timeouts,
an immediate error when the device drops the connection, and a clear :class:`FrameError` for a
malformed frame. pymodbus remains the reference implementation (``engine: pymodbus``) and the
only engine for RTU, RTU-over-TCP and serial lines.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Sequence

from drivers.errors import DeviceError

READ_FUNCTIONS = {1: "read coils", 2: "read discrete inputs", 3: "read holding registers", 4: "read input registers"}
BIT_CODES = frozenset({1, 2})
MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125}  # per request, from the Modbus spec
MBAP_HEADER = 6  # transaction id, protocol id, length: the unit id counts towards the length
MAX_MBAP_LENGTH = 254  # unit id + a PDU of at most 253 bytes

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

_HEADER = struct.Struct(">HHH")


class FastTcpError(DeviceError):
    """Base of this module's errors; ``reason`` is the DeviceError reason the driver reports."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)


class FrameError(FastTcpError):
    """A frame that breaks Modbus/TCP rules: bad MBAP header, wrong shape, unknown transaction id."""

    def __init__(self, message: str) -> None:
        super().__init__("protocol", message)


class ExceptionReply(FastTcpError):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int) -> None:
        super().__init__("exception", f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown exception')})")
        self.code = code


class ResponseTimeout(FastTcpError):
    """No answer to a request within the timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__("timeout", f"no response within {timeout:g}s")


class ConnectionLost(FastTcpError):
    """The connection could not be opened, or closed while answers were outstanding."""

    def __init__(self, message: str) -> None:
        super().__init__("connection", message)


class ReadRequest:
    """One read request, framed once: only the 2-byte transaction id changes from poll to poll."""

    __slots__ = ("count", "function_code", "nbytes", "tail")

    def __init__(self, function_code: int, address: int, count: int, unit_id: int) -> None:
        if function_code not in READ_FUNCTIONS:
            raise ValueError(f"function code {function_code} is not a read (1-4)")
        if not 1 <= count <= MAX_COUNT[function_code]:
            raise ValueError(f"{READ_FUNCTIONS[function_code]}: count {count} is not 1..{MAX_COUNT[function_code]}")
        if not 0 <= address <= 0xFFFF or address + count > 0x10000:
            raise ValueError(f"{READ_FUNCTIONS[function_code]}: {address}+{count} leaves the 16-bit address space")
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} is not 0..255")
        self.function_code = function_code
        self.count = count
        # the data bytes a correct answer carries: two per register, or the bits packed 8 a byte
        self.nbytes = (count + 7) // 8 if function_code in BIT_CODES else count * 2
        # protocol id 0, length 6 (unit + fc + address + count), unit, fc, address, count
        self.tail = struct.pack(">HHBBHH", 0, 6, unit_id, function_code, address, count)

    def frame(self, tid: int) -> bytes:
        """The complete request frame with transaction id ``tid``."""
        return tid.to_bytes(2, "big") + self.tail


def split_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Cut complete MBAP frames off the front of ``data``.

    Returns ``([(transaction id, unit id + PDU), ...], bytes consumed)``; an incomplete frame at
    the end stays unconsumed. Raises :class:`FrameError` for a header no Modbus/TCP server sends
    (protocol id not 0, or a length outside 2..254), after which the stream cannot be re-synced.
    """
    frames: list[tuple[int, bytes]] = []
    pos = 0
    end_data = len(data)
    unpack = _HEADER.unpack_from
    while end_data - pos >= MBAP_HEADER:
        tid, proto, length = unpack(data, pos)
        if proto != 0:
            raise FrameError(f"answer has MBAP protocol id {proto}, not 0 (is this a Modbus/TCP device?)")
        if not 2 <= length <= MAX_MBAP_LENGTH:
            raise FrameError(f"answer has MBAP length {length}, outside 2..{MAX_MBAP_LENGTH}")
        end = pos + MBAP_HEADER + length
        if end > end_data:
            break
        frames.append((tid, data[pos + MBAP_HEADER : end]))
        pos = end
    return frames, pos


def check_answer(request: ReadRequest, unit_id: int, frame: bytes) -> bytes:
    """The data bytes of a correct answer to ``request`` (``frame`` is unit id + PDU).

    Registers come back as they are on the wire (2 big-endian bytes each), bits packed LSB
    first. Raises :class:`ExceptionReply` for an exception response and :class:`FrameError`
    for an answer of the wrong shape.
    """
    if len(frame) < 2:
        raise FrameError(f"answer of {len(frame)} bytes has no function code")
    fc = frame[1]
    want = request.function_code
    if fc != want:
        if fc == want | 0x80:
            if len(frame) != 3:
                raise FrameError(f"exception answer carries {len(frame) - 2} bytes, expected 1")
            raise ExceptionReply(frame[2])
        raise FrameError(f"answer has function code {fc}, expected {want}")
    if unit_id and frame[0] != unit_id:
        raise FrameError(f"answer comes from unit {frame[0]}, expected {unit_id}")
    if len(frame) < 3:
        raise FrameError("answer has no byte count")
    nbytes = frame[2]
    if nbytes != len(frame) - 3:
        raise FrameError(f"answer's byte count says {nbytes} but it carries {len(frame) - 3} bytes")
    if nbytes != request.nbytes:
        if fc in BIT_CODES and nbytes * 8 < request.count:
            raise FrameError(f"answer carries {nbytes * 8} bits, expected {request.count}")
        raise FrameError(f"answer carries {nbytes} bytes, expected {request.nbytes}")
    return frame[3:]


class _Protocol(asyncio.Protocol):
    """The connection's receiving side: files each answer under its transaction id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        # tid -> None while outstanding, then the answer (unit id + PDU) until it is taken
        self.answers: dict[int, bytes | None] = {}
        # requests given up (after an exception mid-pipeline): their answers are dropped quietly
        self.abandoned: set[int] = set()
        self.error: FastTcpError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.wait_tid = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        if self.buf:
            data = self.buf + data
        try:
            frames, used = split_frames(data)
        except FrameError as e:
            self.fail(e)
            return
        self.buf = data[used:]
        answers = self.answers
        for tid, frame in frames:
            if answers.get(tid, b"") is None:
                answers[tid] = frame
            elif tid in self.abandoned:
                self.abandoned.discard(tid)
            elif tid == 0 and (only := self._single_outstanding()) is not None:
                # pymodbus, the reference, takes a zero transaction id as the answer to its one request
                answers[only] = frame
            else:
                what = "a second answer for" if tid in answers else "an answer for unknown"
                self.fail(FrameError(f"device sent {what} transaction id {tid} (stray or mismatched frame)"))
                return
        waiter = self.waiter
        if waiter is not None and answers.get(self.wait_tid) is not None and not waiter.done():
            waiter.set_result(None)

    def _single_outstanding(self) -> int | None:
        outstanding = [t for t, v in self.answers.items() if v is None]
        return outstanding[0] if len(outstanding) == 1 else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            text = "connection closed by the device" if exc is None else f"connection lost: {exc}"
            self.error = ConnectionLost(text)
        self._wake()

    def fail(self, error: FastTcpError) -> None:
        """Make ``error`` the connection's fate: close it and wake whoever waits."""
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class FastTcpClient:
    """One Modbus/TCP connection to one unit: read requests, pipelined or one at a time.

    ``send`` writes requests and returns their transaction ids; ``take`` returns an answer that
    has arrived (or None); ``wait`` waits for one. After a timeout or a malformed frame the
    connection is closed, so a late answer cannot be taken for another request's; ``connect``
    opens a new one.
    """

    def __init__(self, host: str, port: int, unit_id: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout = timeout
        self._proto: _Protocol | None = None
        self._tid = 0

    @property
    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while the connection is open and has not failed."""
        p = self._proto
        return p is not None and p.error is None and p.transport is not None and not p.transport.is_closing()

    async def connect(self) -> None:
        """Open a new connection (closing any old one); raises :class:`ConnectionLost` on failure."""
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, proto = await loop.create_connection(_Protocol, self.host, self.port)
        except TimeoutError:
            raise ConnectionLost(f"cannot connect to {self.where}: no answer within {self.timeout:g}s") from None
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)  # asyncio's strerror repeats the address
            raise ConnectionLost(f"cannot connect to {self.where}: {why}") from None
        self._proto = proto
        self._tid = 0

    def close(self) -> None:
        """Close the connection; outstanding requests fail with :class:`ConnectionLost`."""
        p, self._proto = self._proto, None
        if p is not None:
            p.fail(ConnectionLost("connection closed"))

    def _live(self) -> _Protocol:
        p = self._proto
        if p is None:
            raise ConnectionLost("not connected")
        if p.error is not None:
            raise p.error
        return p

    def send(self, requests: Sequence[ReadRequest]) -> list[int]:
        """Write ``requests`` in one go; returns their transaction ids, in order."""
        p = self._live()
        assert p.transport is not None
        answers = p.answers
        abandoned = p.abandoned
        tids: list[int] = []
        parts: list[bytes] = []
        tid = self._tid
        for req in requests:
            tid = tid % 0xFFFF + 1  # 1..65535: 0 is what some gateways answer with
            while tid in answers or tid in abandoned:
                tid = tid % 0xFFFF + 1
            answers[tid] = None
            tids.append(tid)
            parts.append(tid.to_bytes(2, "big") + req.tail)
        self._tid = tid
        p.transport.write(b"".join(parts) if len(parts) > 1 else parts[0])
        return tids

    def take(self, tid: int, request: ReadRequest) -> bytes | None:
        """The data bytes of the answer to ``tid`` if it has arrived, else None.

        Raises the connection's error if the answer can no longer arrive, and the errors of
        :func:`check_answer` for a bad answer (a malformed one also closes the connection).
        """
        p = self._proto
        if p is None:
            raise ConnectionLost("not connected")
        frame = p.answers.get(tid)
        if frame is None:
            if p.error is not None:
                raise p.error
            if tid not in p.answers:
                raise RuntimeError(f"transaction id {tid} was never sent")
            return None
        del p.answers[tid]
        try:
            return check_answer(request, self.unit_id, frame)
        except FrameError as e:
            p.fail(e)
            raise

    async def wait(self, tid: int, request: ReadRequest) -> bytes:
        """Wait for the answer to ``tid`` (at most ``timeout`` seconds) and return its data bytes."""
        data = self.take(tid, request)
        if data is not None:
            return data
        p = self._proto
        assert p is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        p.waiter, p.wait_tid = waiter, tid
        timer = loop.call_later(self.timeout, self._expire, p)
        try:
            await waiter
        finally:
            timer.cancel()
            p.waiter = None
        data = self.take(tid, request)
        assert data is not None  # woken only by an answer or a failure, and a failure raised above
        return data

    def _expire(self, p: _Protocol) -> None:
        p.fail(ResponseTimeout(self.timeout))

    async def read(self, request: ReadRequest) -> bytes:
        """Send one request and wait for its answer's data bytes."""
        (tid,) = self.send((request,))
        return await self.wait(tid, request)

    def abandon(self) -> None:
        """Give up every outstanding request (after an error mid-pipeline); late answers are dropped."""
        p = self._proto
        if p is None:
            return
        for tid, frame in p.answers.items():
            if frame is None:
                p.abandoned.add(tid)
        p.answers.clear()


def unpack_bits(data: bytes, count: int) -> list[bool]:
    """The first ``count`` bits of a coil/discrete-input answer (packed LSB first)."""
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]
