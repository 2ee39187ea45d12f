"""FastSession against a scripted UDP agent that misbehaves in specific ways.

The agent decodes requests and encodes answers with pysnmp/pyasn1, independently of fastcodec.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v2c

from drivers.errors import DeviceError
from drivers.snmp import wire
from drivers.snmp.fastwire import FastSession
from drivers.snmp.wire import VarBind

Answer = list[tuple[float, bytes]]  # (delay in seconds, datagram)
BASE = (1, 3, 6, 1, 4, 1, 99999, 1)


@dataclass
class Request:
    """A request as the scripted agent saw it."""

    n: int
    request_id: int
    tag: int
    oids: list[tuple[int, ...]]
    max_repetitions: int
    community: bytes
    msg: Any = field(repr=False)


def answer(
    req: Request,
    varbinds: list[tuple[tuple[int, ...], Any]],
    *,
    status: int = 0,
    index: int = 0,
    request_id: int | None = None,
    community: bytes | None = None,
) -> bytes:
    pdu = v2c.GetResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, req.request_id if request_id is None else request_id)
    v2c.apiPDU.set_error_status(pdu, status)
    v2c.apiPDU.set_error_index(pdu, index)
    v2c.apiPDU.set_varbinds(pdu, varbinds)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, req.community if community is None else community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, script: Callable[[Request], Answer]) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
        pdu = v2c.apiMessage.get_pdu(msg)
        t = pdu.tagSet[0]
        tag = t.tagClass | t.tagFormat | t.tagId
        reps = int(v2c.apiBulkPDU.get_max_repetitions(pdu)) if tag == 0xA5 else 0
        req = Request(len(self.requests), int(v2c.apiPDU.get_request_id(pdu)), tag,
                      [tuple(o) for o, _ in v2c.apiPDU.get_varbinds(pdu)], reps,
                      bytes(v2c.apiMessage.get_community(msg)), msg)  # fmt: skip
        self.requests.append(req)
        loop = asyncio.get_running_loop()
        for delay, out in self.script(req):
            assert self.transport is not None
            loop.call_later(delay, self.transport.sendto, out, addr)


@pytest.fixture
async def agent() -> AsyncIterator[Callable[[Callable[[Request], Answer]], Any]]:
    made: list[tuple[asyncio.DatagramTransport, _Agent]] = []

    async def start(script: Callable[[Request], Answer]) -> tuple[FastSession, _Agent]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(lambda: _Agent(script), local_addr=("127.0.0.1", 0))
        made.append((transport, proto))
        port = transport.get_extra_info("sockname")[1]
        return FastSession(wire.SnmpTarget("scripted", "127.0.0.1", port, timeout=0.25, retries=1)), proto

    yield start
    for transport, _ in made:
        transport.close()


def table(n: int = 10) -> list[tuple[tuple[int, ...], Any]]:
    return [((*BASE, i), v2c.Counter32(i * 10)) for i in range(1, n + 1)]


def bulk(req: Request, rows: list[tuple[tuple[int, ...], Any]], reps: int | None = None) -> list[Any]:
    """GETBULK semantics over a sorted table, for one column per requested OID."""
    out = []
    reps = reps or req.max_repetitions
    cursors = list(req.oids)
    for _ in range(reps):
        for i, cur in enumerate(cursors):
            nxt = next(((o, v) for o, v in rows if o > cur), None)
            out.append(nxt or (cur, rfc1905.endOfMibView))
            cursors[i] = nxt[0] if nxt else cur
    return out


async def test_malformed_answer_is_decode_error(agent: Any) -> None:
    def script(req: Request) -> Answer:
        good = answer(req, [(req.oids[0], v2c.Integer(1))])
        return [(0, good[:-3] + b"\x41\x09" + good[-1:])]  # a bad value header inside a readable PDU

    session, _ = await agent(script)
    with pytest.raises(DeviceError) as e:
        await session.get([(*BASE, 1)])
    assert e.value.reason == "decode" and "malformed answer: at offset" in str(e.value)


async def test_garbage_is_ignored_and_counted(agent: Any) -> None:
    session, _ = await agent(lambda req: [(0, b"\x30\x03\x02\x01"), (0, b"junk")])
    with pytest.raises(DeviceError) as e:
        await session.get([(*BASE, 1)])
    assert e.value.reason == "timeout" and session.stray_packets == 4


async def test_stale_and_foreign_ids_are_skipped(agent: Any) -> None:
    def script(req: Request) -> Answer:
        vb = [(req.oids[0], v2c.OctetString(b"x"))]
        return [(0, answer(req, vb, request_id=req.request_id + 1000)), (0.01, answer(req, vb))]

    session, _ = await agent(script)
    assert await session.get([(*BASE, 1)]) == [VarBind((*BASE, 1), wire.OCTET_STRING, b"x")]
    assert session.stray_packets == 1


async def test_late_answer_to_first_attempt_counts(agent: Any) -> None:
    def script(req: Request) -> Answer:
        return [(0.35, answer(req, [(req.oids[0], v2c.Gauge32(7))]))] if req.n == 0 else []

    session, proto = await agent(script)
    assert await session.get([(*BASE, 1)]) == [VarBind((*BASE, 1), wire.GAUGE32, 7)]
    assert len(proto.requests) == 2 and proto.requests[0].request_id != proto.requests[1].request_id


async def test_other_community_is_protocol_error(agent: Any) -> None:
    session, _ = await agent(lambda req: [(0, answer(req, [(req.oids[0], v2c.Integer(1))], community=b"x"))])
    with pytest.raises(DeviceError) as e:
        await session.get([(*BASE, 1)])
    assert e.value.reason == "protocol"


@pytest.mark.parametrize(
    ("status", "reason"), [(5, "protocol"), (16, "auth"), (6, "auth"), (2, "no_such_object"), (3, "protocol")]
)
async def test_error_status_reasons(agent: Any, status: int, reason: str) -> None:
    session, _ = await agent(lambda req: [(0, answer(req, [(o, v2c.Null()) for o in req.oids], status=status,
                                                     index=2))])  # fmt: skip
    with pytest.raises(DeviceError) as e:
        await session.get([(*BASE, 1), (*BASE, 2)])
    assert e.value.reason == reason and "1.3.6.1.4.1.99999.1.2" in str(e.value)


async def test_too_big_get_is_split(agent: Any) -> None:
    def script(req: Request) -> Answer:
        if len(req.oids) > 2:
            return [(0, answer(req, [], status=1))]
        return [(0, answer(req, [(o, v2c.Integer(o[-1])) for o in req.oids]))]

    session, proto = await agent(script)
    got = await session.get([(*BASE, i) for i in range(1, 6)])
    assert [v.value for v in got] == [1, 2, 3, 4, 5]
    assert [len(r.oids) for r in proto.requests] == [5, 2, 3, 1, 2]


async def test_too_big_walk_asks_for_less(agent: Any) -> None:
    rows = table(30)

    def script(req: Request) -> Answer:
        if req.max_repetitions * len(req.oids) > 8:
            return [(0, answer(req, [], status=1))]
        return [(0, answer(req, bulk(req, rows)))]

    session, proto = await agent(script)
    got = await session.walk([BASE], 25)
    assert [v.oid for v in got[BASE]] == [o for o, _ in rows]
    assert [r.max_repetitions for r in proto.requests][:3] == [25, 12, 6]


async def test_walk_stops_at_end_of_mib_and_subtree_end(agent: Any) -> None:
    rows = [*table(5), ((1, 3, 6, 1, 4, 1, 99999, 2, 1), v2c.Integer(0))]
    session, _ = await agent(lambda req: [(0, answer(req, bulk(req, rows)))])
    other = (1, 3, 6, 1, 4, 1, 99999, 2)
    got = await session.walk([BASE, other], 3)
    assert [v.value for v in got[BASE]] == [10, 20, 30, 40, 50]
    assert got[other] == [VarBind((*other, 1), wire.INTEGER, 0)]


async def test_non_increasing_oids_are_protocol_error(agent: Any) -> None:
    session, _ = await agent(
        lambda req: [(0, answer(req, [((*BASE, 5), v2c.Integer(1)), ((*BASE, 4), v2c.Integer(1))]))]
    )
    with pytest.raises(DeviceError) as e:
        await session.walk([BASE], 2)
    assert e.value.reason == "protocol" and "not increasing" in str(e.value)


async def test_empty_walk_answer_and_mismatched_get_are_protocol_errors(agent: Any) -> None:
    session, _ = await agent(lambda req: [(0, answer(req, [] if req.tag == 0xA5 else [((*BASE, 9), v2c.Integer(1))]))])
    with pytest.raises(DeviceError, match="empty GETBULK") as e:
        await session.walk([BASE], 5)
    assert e.value.reason == "protocol"
    with pytest.raises(DeviceError, match="answered for") as e:
        await session.get([(*BASE, 1)])
    with pytest.raises(DeviceError, match="answered with 1") as e:
        await session.get([(*BASE, 1), (*BASE, 2)])


async def test_close_fails_waiting_requests(agent: Any) -> None:
    session, _ = await agent(lambda req: [])
    task = asyncio.create_task(session.get([(*BASE, 1)]))
    await asyncio.sleep(0.05)
    await session.close()
    with pytest.raises(DeviceError) as e:
        await task
    assert e.value.reason == "connection"
