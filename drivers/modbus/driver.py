"""The Modbus driver: polls one device over TCP, RTU-over-TCP or serial RTU.

Two engines carry the requests. On ``transport: tcp`` the default is ``engine: fast``, the lean
Modbus/TCP client in :mod:`drivers.modbus.fasttcp`, which can keep up to ``pipeline`` requests of
a poll in flight at once; ``engine: pymodbus`` (pymodbus 3.16) is the reference, and the only
engine for RTU-over-TCP and serial RTU. Either way each poll issues the pre-planned reads on one
connection, in plan order, and decodes every payload with a pre-compiled
:class:`~drivers.modbus.codec.RegisterDecoder` straight from the answer's bytes. Only read
function codes (01-04) are ever sent. The connection opens on the first poll and is reopened on
the next poll after the device dropped it; pymodbus's own retries and background reconnects are
off because the agent's scheduler owns retries and backoff.

Failure reasons: exception responses -> ``exception``; no answer in time -> ``timeout``; refused,
dropped or unreachable -> ``connection``; a malformed answer -> ``protocol``; undecodable values
-> ``decode``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from drivers.base import Driver, PollSettings
from drivers.errors import DeviceError
from drivers.modbus.codec import BitDecoder, RegisterDecoder, decode_number, decode_string
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.fasttcp import EXCEPTION_NAMES, FastTcpClient, FastTcpError, ReadRequest, unpack_bits
from drivers.modbus.plan import BIT_FUNCTIONS, PlannedRead, plan_reads
from drivers.modbus.profile import FieldDef, InfoField
from drivers.model import DeviceInfo, PollResult, Reading

log = logging.getLogger(__name__)

# pymodbus logs every timeout at ERROR and every refused connect at WARNING; the agent reports
# those itself with the device name, so keep pymodbus quiet unless someone configured it.
_pm_logger = logging.getLogger("pymodbus")
if _pm_logger.level == logging.NOTSET:
    _pm_logger.setLevel(logging.CRITICAL)

_REQUEST_CLASS: dict[str, type[ModbusPDU]] = {
    "coil": ReadCoilsRequest,
    "discrete": ReadDiscreteInputsRequest,
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
}


class _RawHoldingResponse(ModbusPDU):
    """FC03 response that keeps the register bytes as they came: the codec unpacks them in one go.

    pymodbus's own response unpacks each register with a separate ``struct.unpack`` call and
    builds a debug string per response; this class skips both.
    """

    function_code = 3
    rtu_byte_count_pos = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.payload = b""
        self.byte_count = 0

    def decode(self, data: bytes) -> None:
        """Keep the payload bytes; the driver checks the byte count against the request."""
        self.byte_count = data[0] if data else 0
        self.payload = bytes(data[1 : 1 + self.byte_count])

    def __str__(self) -> str:
        return f"{type(self).__name__}(dev_id={self.dev_id}, bytes={self.byte_count})"


class _RawInputResponse(_RawHoldingResponse):
    """FC04 variant of :class:`_RawHoldingResponse`."""

    function_code = 4


class _Link:
    """One pymodbus client plus the bookkeeping to turn a dropped connection into an error.

    pymodbus leaves a request waiting until its timeout when the peer closes the socket; the
    ``trace_connect`` hook fails the pending request at once instead.
    """

    def __init__(self, cfg: ModbusDeviceConfig, timeout: float, key: Any = None) -> None:
        self.key = key
        self.users = 0
        self.inflight = False
        self.where = cfg.where().rsplit(" unit ", 1)[0]
        self.shared = cfg.transport == "rtu"
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if cfg.transport == "rtu":
            assert cfg.serial_port is not None
            self.client = AsyncModbusSerialClient(
                cfg.serial_port,
                framer=FramerType.RTU,
                baudrate=cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
                trace_connect=self._on_connect,
            )
        else:
            assert cfg.host is not None
            self.client = AsyncModbusTcpClient(
                cfg.host,
                port=cfg.tcp_port,
                framer=FramerType.RTU if cfg.transport == "rtu-over-tcp" else FramerType.SOCKET,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
                trace_connect=self._on_connect,
            )
        self.client.register(_RawHoldingResponse)
        self.client.register(_RawInputResponse)

    def _on_connect(self, connected: bool) -> None:
        if connected or not self.inflight:
            return
        fut = getattr(self.client.ctx, "response_future", None)
        if isinstance(fut, asyncio.Future) and not fut.done():
            fut.set_exception(ConnectionException("connection closed by the device"))

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def connect(self) -> None:
        try:
            ok = await self.client.connect()
        except Exception as e:  # pyserial and socket setup errors arrive as assorted types
            raise DeviceError("connection", f"cannot open {self.where}: {e}") from None
        if not ok:
            raise DeviceError("connection", f"cannot connect to {self.where}")

    def close(self) -> None:
        self.client.close()

    async def execute(self, request: ModbusPDU, timeout: float) -> ModbusPDU:
        if self.shared:
            # devices on one bus may have different timeouts; pymodbus reads this per request
            self.client.ctx.comm_params.timeout_connect = timeout
        self.inflight = True
        try:
            return await self.client.execute(False, request)
        finally:
            self.inflight = False


# Serial ports are shared by every device on the same RS-485 bus: one client, one request at a time.
_SERIAL_LINKS: dict[tuple[int, str], _Link] = {}


@dataclass(slots=True)
class _Job:
    read: PlannedRead
    request: ModbusPDU
    decoder: RegisterDecoder | BitDecoder


@dataclass(frozen=True, slots=True)
class _FastJob:
    read: PlannedRead
    request: ReadRequest
    # the decoder's entry point for the answer's data bytes (registers, or bits packed 8 a byte)
    decode: Callable[[bytes, str, float, list[Reading]], int]


Plan = tuple[list[PlannedRead], list[RegisterDecoder | BitDecoder]]
# Devices built from the same profile share one read plan and its (immutable) decoders.
_PLANS: dict[tuple[tuple[FieldDef, ...], int, int], Plan] = {}


def _shared_plan(fields: tuple[FieldDef, ...], max_registers: int, max_gap: int) -> Plan:
    key = (fields, max_registers, max_gap)
    plan = _PLANS.get(key)
    if plan is None:
        reads = plan_reads(fields, max_registers=max_registers, max_gap=max_gap)
        decoders: list[RegisterDecoder | BitDecoder] = []
        for read in reads:
            items = [f for f in read.items if isinstance(f, FieldDef)]
            if read.function in BIT_FUNCTIONS:
                decoders.append(BitDecoder(read.address, read.count, items))
            else:
                decoders.append(RegisterDecoder(read.address, read.count, items))
        plan = _PLANS[key] = (reads, decoders)
    return plan


# ... and, per unit id, the same pre-framed fast-engine requests.
_FAST_JOBS: dict[tuple[tuple[FieldDef, ...], int, int, int], tuple[_FastJob, ...]] = {}


def _shared_fast_jobs(
    fields: tuple[FieldDef, ...], max_registers: int, max_gap: int, unit_id: int
) -> tuple[_FastJob, ...]:
    key = (fields, max_registers, max_gap, unit_id)
    jobs = _FAST_JOBS.get(key)
    if jobs is None:
        reads, decoders = _shared_plan(fields, max_registers, max_gap)
        jobs = _FAST_JOBS[key] = tuple(
            _FastJob(r, ReadRequest(r.function_code, r.address, r.count, unit_id),
                     d.decode_packed if isinstance(d, BitDecoder) else d.decode)
            for r, d in zip(reads, decoders, strict=True)
        )
    return jobs


class ModbusDriver(Driver):
    """Polls one Modbus device according to its expanded fields, with the configured engine."""

    config: ModbusDeviceConfig

    def __init__(
        self,
        config: ModbusDeviceConfig,
        settings: PollSettings,
        fields: Sequence[FieldDef],
        *,
        info_fields: Sequence[InfoField] = (),
        static_info: DeviceInfo | None = None,
    ) -> None:
        super().__init__(config, settings)
        self.fields = tuple(fields)
        self.reads, decoders = _shared_plan(self.fields, config.max_registers, config.max_gap)
        # the config allows engine "fast" on transport tcp only
        self.fast = config.engine == "fast"
        self._jobs: list[_Job] = []
        self._fast_jobs: tuple[_FastJob, ...] = ()
        if self.fast:
            self._fast_jobs = _shared_fast_jobs(self.fields, config.max_registers, config.max_gap, config.unit_id)
        else:
            self._jobs = [_Job(r, self._request(r), d) for r, d in zip(self.reads, decoders, strict=True)]
        self._info_fields = tuple(info_fields)
        self._info_reads = plan_reads(self._info_fields, max_registers=config.max_registers, max_gap=0)
        self._static = static_info or DeviceInfo(driver="modbus")
        self._info: DeviceInfo | None = None
        self._link: _Link | None = None
        self._client: FastTcpClient | None = None

    def _request(self, read: PlannedRead) -> ModbusPDU:
        return _REQUEST_CLASS[read.function](address=read.address, count=read.count, dev_id=self.config.unit_id)

    # -- connection ---------------------------------------------------------------------------

    def _get_link(self) -> _Link:
        if self._link is not None:
            return self._link
        cfg = self.config
        try:
            if cfg.transport == "rtu":
                assert cfg.serial_port is not None
                key = (id(asyncio.get_running_loop()), cfg.serial_port)
                link = _SERIAL_LINKS.get(key)
                if link is None:
                    link = _SERIAL_LINKS[key] = _Link(cfg, self.settings.timeout, key)
            else:
                link = _Link(cfg, self.settings.timeout)
        except (RuntimeError, TypeError, ValueError) as e:  # e.g. pyserial missing
            raise DeviceError("connection", f"cannot set up {cfg.where()}: {e}") from None
        link.users += 1
        self._link = link
        return link

    async def close(self) -> None:
        """Close the connection (a shared serial port closes with its last device)."""
        if self._client is not None:
            self._client.close()
        link, self._link = self._link, None
        if link is None:
            return
        link.users -= 1
        if link.users <= 0:
            link.close()
            if link.key is not None and _SERIAL_LINKS.get(link.key) is link:
                del _SERIAL_LINKS[link.key]

    def _reset(self, link: _Link) -> None:
        # After a timeout a late answer could be taken for the next request's; start clean.
        if not link.shared:
            link.close()
        self._info = None

    # -- polling ------------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        """Read every planned request once and return the readings; raise DeviceError on failure."""
        if self.fast:
            return await self._poll_fast()
        return await self._poll_pymodbus()

    # -- engine fast --------------------------------------------------------------------------

    def _fast_failure(self, client: FastTcpClient, read: PlannedRead, e: FastTcpError) -> DeviceError:
        if e.reason == "exception":
            client.abandon()  # the connection is sound; answers still due to this poll are dropped
        else:
            # timeout, malformed answer or lost connection: a late answer must not meet the next poll
            client.close()
            self._info = None
        return DeviceError(e.reason, f"read {read.describe()}: {e}")

    async def _fast_connect(self) -> FastTcpClient:
        client = self._client
        if client is None:
            cfg = self.config
            assert cfg.host is not None
            client = self._client = FastTcpClient(cfg.host, cfg.tcp_port, cfg.unit_id, self.settings.timeout)
        if not client.connected:
            self._info = None
            try:
                await client.connect()
            except FastTcpError as e:
                raise DeviceError(e.reason, str(e)) from None
        return client

    async def _poll_fast(self) -> PollResult:
        ts = time.time()
        client = await self._fast_connect()
        requests = 0
        if self._info is None:
            requests += await self._read_info(self._fast_info_read)
        assert self._info is not None
        jobs = self._fast_jobs
        n = len(jobs)
        if not n:
            return PollResult(readings=[], info=self._info, requests=requests)
        window = self.config.pipeline
        device = self.config.name
        readings: list[Reading] = []
        tids: list[int] = []
        sent = 0
        job = jobs[0]
        try:
            for i in range(n):
                job = jobs[i]
                if i == sent:  # nothing in flight: send the next window
                    sent = min(n, i + window)
                    tids += client.send([j.request for j in jobs[i:sent]])
                data = client.take(tids[i], job.request)
                if data is None:
                    # about to wait: top the window up first, so the device always has work queued
                    top = min(n, i + window)
                    if top > sent:
                        tids += client.send([j.request for j in jobs[sent:top]])
                        sent = top
                    data = await client.wait(tids[i], job.request)
                job.decode(data, device, ts, readings)
        except FastTcpError as e:
            raise self._fast_failure(client, job.read, e) from None
        except (struct.error, IndexError, TypeError, ValueError) as e:
            client.abandon()
            raise DeviceError("decode", f"read {job.read.describe()}: cannot decode answer: {e}") from None
        except asyncio.CancelledError:
            client.close()
            self._info = None
            raise
        return PollResult(readings=readings, info=self._info, requests=requests + n)

    async def _fast_info_read(self, read: PlannedRead) -> bytes | list[bool]:
        client = self._client
        assert client is not None
        request = ReadRequest(read.function_code, read.address, read.count, self.config.unit_id)
        try:
            data = await client.read(request)
        except FastTcpError as e:
            raise self._fast_failure(client, read, e) from None
        except asyncio.CancelledError:
            client.close()
            self._info = None
            raise
        return unpack_bits(data, read.count) if read.function in BIT_FUNCTIONS else data

    # -- engine pymodbus ----------------------------------------------------------------------

    async def _read(self, link: _Link, read: PlannedRead, request: ModbusPDU) -> ModbusPDU:
        try:
            resp = await link.execute(request, self.settings.timeout)
        except asyncio.CancelledError:
            self._reset(link)
            raise
        except ConnectionException as e:
            self._reset(link)
            raise DeviceError("connection", f"read {read.describe()}: {self._why(e)}") from None
        except ModbusIOException as e:
            self._reset(link)
            text = self._why(e)
            if "No response" in text:
                raise DeviceError(
                    "timeout", f"read {read.describe()}: no response within {self.settings.timeout:g}s"
                ) from None
            if not link.connected:
                raise DeviceError("connection", f"read {read.describe()}: {text}") from None
            raise DeviceError("protocol", f"read {read.describe()}: {text}") from None
        except ModbusException as e:
            self._reset(link)
            raise DeviceError("protocol", f"read {read.describe()}: {self._why(e)}") from None
        except OSError as e:
            self._reset(link)
            raise DeviceError("connection", f"read {read.describe()}: {e}") from None
        except ValueError as e:  # pymodbus refusing to encode the request: a planning bug
            raise DeviceError("internal", f"read {read.describe()}: {e}") from None
        if resp.isError():
            code = getattr(resp, "exception_code", 0)
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise DeviceError("exception", f"read {read.describe()}: exception {code} ({name})")
        if resp.function_code != read.function_code:
            self._reset(link)
            raise DeviceError(
                "protocol",
                f"read {read.describe()}: answer has function code {resp.function_code}, "
                f"expected {read.function_code}",
            )
        if read.function not in BIT_FUNCTIONS:
            payload = getattr(resp, "payload", b"")
            if resp.byte_count != read.count * 2 or len(payload) != read.count * 2:  # type: ignore[attr-defined]
                self._reset(link)
                raise DeviceError(
                    "protocol",
                    f"read {read.describe()}: answer carries {len(payload)} bytes, expected {read.count * 2}",
                )
        elif len(resp.bits) < read.count:
            self._reset(link)
            raise DeviceError(
                "protocol", f"read {read.describe()}: answer carries {len(resp.bits)} bits, expected {read.count}"
            )
        return resp

    @staticmethod
    def _why(e: BaseException) -> str:
        text = str(e)
        # pymodbus prefixes messages with "Modbus Error: [Connection] "; keep the useful tail.
        return text.split("] ", 1)[-1].strip() or type(e).__name__

    async def _poll_pymodbus(self) -> PollResult:
        ts = time.time()
        link = self._get_link()
        requests = 0
        if not link.connected:
            self._info = None
            await link.connect()
        if self._info is None:

            async def read_one(read: PlannedRead) -> bytes | list[bool]:
                resp = await self._read(link, read, self._request(read))
                if read.function in BIT_FUNCTIONS:
                    return list(resp.bits)
                payload: bytes = resp.payload  # type: ignore[attr-defined]
                return payload

            requests += await self._read_info(read_one)
        device = self.config.name
        readings: list[Reading] = []
        for job in self._jobs:
            resp = await self._read(link, job.read, job.request)
            requests += 1
            try:
                if isinstance(job.decoder, RegisterDecoder):
                    job.decoder.decode(resp.payload, device, ts, readings)  # type: ignore[attr-defined]
                else:
                    job.decoder.decode(resp.bits, device, ts, readings)
            except (struct.error, IndexError, TypeError, ValueError) as e:
                raise DeviceError("decode", f"read {job.read.describe()}: cannot decode answer: {e}") from None
        assert self._info is not None
        return PollResult(readings=readings, info=self._info, requests=requests)

    # -- identity -----------------------------------------------------------------------------

    async def _read_info(self, read_one: Callable[[PlannedRead], Awaitable[bytes | list[bool]]]) -> int:
        """Read identity registers once per connection; a device lacking them keeps static info."""
        s = self._static
        info = DeviceInfo(s.vendor, s.model, s.serial, s.firmware, s.profile, s.driver)
        n = 0
        for read in self._info_reads:
            try:
                data = await read_one(read)
            except DeviceError as e:
                if e.reason != "exception":
                    raise
                n += 1
                log.debug("%s: identity %s unavailable: %s", self.config.name, read.describe(), e)
                continue
            n += 1
            for item in read.items:
                assert isinstance(item, InfoField)
                setattr(info, item.key, _info_text(item, read, data))
        self._info = info
        return n


def _info_text(item: InfoField, read: PlannedRead, data: bytes | list[bool]) -> str:
    if item.function in BIT_FUNCTIONS:
        return "1" if data[item.address - read.address] else "0"
    assert isinstance(data, bytes)
    off = (item.address - read.address) * 2
    regs = list(struct.unpack_from(f">{item.width}H", data, off))
    if item.type == "string":
        return decode_string(regs, item.byte_order)
    return str(decode_number(item.type, regs, item.word_order, item.byte_order))
