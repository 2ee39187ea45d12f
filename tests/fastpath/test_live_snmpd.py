"""FastSession against a real Net-SNMP snmpd, cross-checked with pysnmp 7 and snmpbulkwalk."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from pysnmp.entity import config as pconfig
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
)

from drivers.errors import DeviceError
from drivers.snmp import wire
from drivers.snmp.fastwire import FastSession, fast_session
from drivers.snmp.wire import Oid, VarBind, format_oid

from .agents import COMMUNITY, USERS, Snmpd, free_udp_port, netsnmp_name, snmpbulkwalk
from .strategies import plain

IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
MISSING = (1, 3, 6, 1, 2, 1, 1, 99, 0)

PYSNMP_AUTH = {
    "MD5": pconfig.USM_AUTH_HMAC96_MD5,
    "SHA": pconfig.USM_AUTH_HMAC96_SHA,
    "SHA256": pconfig.USM_AUTH_HMAC192_SHA256,
    "SHA512": pconfig.USM_AUTH_HMAC384_SHA512,
}
# Net-SNMP's AES-192/AES-256 stretch short keys the Blumenthal way, which pysnmp calls *_BLUMENTHAL.
PYSNMP_PRIV = {
    "DES": pconfig.USM_PRIV_CBC56_DES,
    "AES": pconfig.USM_PRIV_CFB128_AES,
    "AES192": pconfig.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": pconfig.USM_PRIV_CFB256_AES_BLUMENTHAL,
}


def _pysnmp_auth(user: str | None) -> Any:
    if user is None:
        return CommunityData(COMMUNITY, mpModel=1)
    auth, akey, priv, pkey = USERS[user]
    kw: dict[str, Any] = {"authKey": akey, "authProtocol": PYSNMP_AUTH[auth]} if auth else {}
    if priv:
        kw.update(privKey=pkey, privProtocol=PYSNMP_PRIV[priv])
    return UsmUserData(user, **kw)


async def pysnmp_walk(snmpd: Snmpd, base: Oid, user: str | None = None) -> list[VarBind]:
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", snmpd.port), timeout=2, retries=1)
        out: list[VarBind] = []
        async for err, status, _idx, vbs in bulk_walk_cmd(
            engine, _pysnmp_auth(user), target, ContextData(), 0, 25,
            ObjectType(ObjectIdentity(format_oid(base))), lexicographicMode=False, lookupMib=False,
        ):  # fmt: skip
            assert not err and not int(status), (err, status)
            out += [VarBind(tuple(o), *plain(v)) for o, v in vbs]
        return out
    finally:
        engine.close_dispatcher()


def _netsnmp_args(snmpd: Snmpd, user: str | None = None) -> list[str]:
    if user is None:
        return ["-v2c", "-c", COMMUNITY, f"127.0.0.1:{snmpd.port}"]
    auth, akey, priv, pkey = USERS[user]
    args = ["-v3", "-u", user, "-l", "authPriv" if priv else "authNoPriv" if auth else "noAuthNoPriv"]
    if auth and akey:
        args += ["-a", netsnmp_name(auth), "-A", akey]
    if priv and pkey:
        args += ["-x", netsnmp_name(priv), "-X", pkey]
    return [*args, f"127.0.0.1:{snmpd.port}"]


def assert_same_walk(a: list[VarBind], b: list[VarBind], what: str) -> None:
    """Same OIDs and types; same values except counters, which may only have grown in between."""
    assert [(v.oid, v.tag) for v in a] == [(v.oid, v.tag) for v in b], what
    for x, y in zip(a, b, strict=True):
        if x.tag in (wire.COUNTER32, wire.COUNTER64):
            assert isinstance(x.value, int) and isinstance(y.value, int) and x.value <= y.value, (what, x, y)
        else:
            assert x == y, what


async def test_v2c_walk_equals_pysnmp_and_snmpbulkwalk(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.target())
    before = {base: await pysnmp_walk(snmpd, base) for base in (IF_ENTRY, IFX_ENTRY)}
    ours = await session.walk([IF_ENTRY, IFX_ENTRY], 25)
    after = {base: snmpbulkwalk(_netsnmp_args(snmpd), base) for base in (IF_ENTRY, IFX_ENTRY)}
    await session.close()
    assert len(ours[IF_ENTRY]) >= 22 and len(ours[IFX_ENTRY]) >= 18  # at least the lo row
    for base in (IF_ENTRY, IFX_ENTRY):
        assert_same_walk(before[base], ours[base], f"pysnmp vs FastSession {format_oid(base)}")
        assert_same_walk(ours[base], after[base], f"FastSession vs snmpbulkwalk {format_oid(base)}")
    assert any(v.tag == wire.COUNTER64 for v in ours[IFX_ENTRY])
    assert session.requests >= 2


async def test_walk_single_columns_and_small_repetitions(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.target())
    columns = [(*IF_ENTRY, 2), (*IF_ENTRY, 10), (*IFX_ENTRY, 1), (*IFX_ENTRY, 6), (*IFX_ENTRY, 14)]
    wide = await session.walk(columns, 50)
    narrow = await session.walk(columns, 1)
    whole = await session.walk([IF_ENTRY, IFX_ENTRY], 7)
    await session.close()
    for col in columns:
        entry = IF_ENTRY if col[: len(IF_ENTRY)] == IF_ENTRY else IFX_ENTRY
        expected = [v for v in whole[entry] if v.oid[: len(col)] == col]
        assert_same_walk(wide[col], narrow[col], format_oid(col))
        assert_same_walk(narrow[col], expected, format_oid(col))
        assert all(v.oid[: len(col)] == col for v in wide[col])


@pytest.mark.parametrize("user", list(USERS))
async def test_v3_walk_equals_pysnmp(snmpd: Snmpd, user: str) -> None:
    session = FastSession(snmpd.v3_target(user))
    before = await pysnmp_walk(snmpd, IFX_ENTRY, user)
    ours = await session.walk([IFX_ENTRY, IF_ENTRY], 25)
    got = await session.get([SYS_NAME, MISSING])
    await session.close()
    assert_same_walk(before, ours[IFX_ENTRY], f"pysnmp vs FastSession as {user}")
    assert got[0].tag == wire.OCTET_STRING and got[1] == VarBind(MISSING, wire.NO_SUCH_OBJECT, None)


async def test_v3_sha_aes_walk_equals_snmpbulkwalk(snmpd: Snmpd) -> None:
    session = fast_session(snmpd.v3_target("sha256aes256"))
    ours = await session.walk([IF_ENTRY], 25)
    await session.close()
    assert_same_walk(ours[IF_ENTRY], snmpbulkwalk(_netsnmp_args(snmpd, "sha256aes256"), IF_ENTRY), "v3 walk")


async def test_get_equals_pysnmp(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.target())
    oids = [SYS_NAME, SYS_OBJECT_ID, MISSING, (1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 1)]
    ours = await session.get(oids)
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(("127.0.0.1", snmpd.port), timeout=2, retries=1)
    objects = [ObjectType(ObjectIdentity(format_oid(o))) for o in oids]
    err, status, _, vbs = await get_cmd(engine, _pysnmp_auth(None), target, ContextData(), *objects, lookupMib=False)
    engine.close_dispatcher()
    await session.close()
    assert not err and not int(status)
    assert ours == [VarBind(tuple(o), *plain(v)) for o, v in vbs]
    assert ours[2] == VarBind(MISSING, wire.NO_SUCH_OBJECT, None)


async def test_get_many_oids_is_split(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.target(), max_get_oids=3)
    oids = [(*IF_ENTRY, col, 1) for col in range(1, 22)]
    got = await session.get(oids)
    await session.close()
    assert [v.oid for v in got] == oids
    assert session.requests == 7


async def test_concurrent_requests_share_one_session(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.target())
    alone = await session.walk([(*IF_ENTRY, 2), (*IFX_ENTRY, 1)], 3)
    results = await asyncio.gather(
        *[session.walk([(*IF_ENTRY, 2), (*IFX_ENTRY, 1)], 3) for _ in range(8)],
        *[session.get([SYS_NAME, (*IF_ENTRY, 2, 1)]) for _ in range(8)],
    )
    await session.close()
    for r in results[:8]:
        assert r == alone
    for r in results[8:]:
        assert isinstance(r, list) and r[1].value == b"lo"


async def test_v1_get_and_walk(snmpd: Snmpd) -> None:
    v1 = FastSession(snmpd.target(version="1"))
    v2 = FastSession(snmpd.target())
    got = await v1.get([SYS_NAME, MISSING, SYS_OBJECT_ID])
    assert [v.tag for v in got] == [wire.OCTET_STRING, wire.NO_SUCH_OBJECT, wire.OBJECT_IDENTIFIER]
    col = (*IF_ENTRY, 2)
    assert (await v1.walk([col], 25))[col] == (await v2.walk([col], 25))[col]
    end = (1, 3, 6, 1, 6, 3, 16, 1, 5, 2, 1, 6)  # near the end of snmpd's MIB view
    tail = await v1.walk([end], 10)
    assert all(v.oid[: len(end)] == end for v in tail[end])
    await v1.close()
    await v2.close()


async def test_wrong_auth_key_is_auth_error(snmpd: Snmpd) -> None:
    session = FastSession(dataclasses.replace(snmpd.v3_target("shaaes"), auth_key="not-the-key"))
    with pytest.raises(DeviceError) as e:
        await session.get([SYS_NAME])
    await session.close()
    assert e.value.reason == "auth" and "usmStatsWrongDigests" in str(e.value)


async def test_unknown_user_and_low_security_level_are_auth_errors(snmpd: Snmpd) -> None:
    stranger = FastSession(snmpd.target(version="3", user="nobody", auth_protocol="SHA", auth_key="whatever12"))
    with pytest.raises(DeviceError) as e:
        await stranger.get([SYS_NAME])
    assert e.value.reason == "auth" and "usmStatsUnknownUserNames" in str(e.value)
    _, akey, _, _ = USERS["shaaes"]
    no_priv = FastSession(snmpd.target(version="3", user="shaaes", auth_protocol="SHA", auth_key=akey))
    with pytest.raises(DeviceError) as e:
        await no_priv.get([SYS_NAME])
    assert e.value.reason == "auth" and "authorizationError" in str(e.value)
    await stranger.close()
    await no_priv.close()


async def test_wrong_community_and_dead_port_time_out(snmpd: Snmpd) -> None:

    wrong = FastSession(snmpd.target(community="wrong", timeout=0.2, retries=1))
    dead = FastSession(wire.SnmpTarget("dead", "127.0.0.1", free_udp_port(), timeout=0.2, retries=1))
    for session in (wrong, dead):
        with pytest.raises(DeviceError) as e:
            await session.walk([IF_ENTRY], 10)
        assert e.value.reason == "timeout" and "2 attempts" in str(e.value)
        await session.close()


async def test_v3_resyncs_time_and_rediscovers_engine(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.v3_target("shaaes"))
    first = await session.get([SYS_NAME])
    boots = session._boots
    session._boots, session._time = boots + 5, 12345  # as if the agent had rebooted meanwhile
    assert await session.get([SYS_NAME]) == first
    assert session._boots == boots  # taken from the agent's notInTimeWindow report
    session._engine_id = b"\x80\x00\x1f\x88\x80stale-engine"  # as if the agent's engine id changed
    session._keys = session._user.localize(session._engine_id) if session._user else None
    assert await session.get([SYS_NAME]) == first
    assert session._engine_id != b"\x80\x00\x1f\x88\x80stale-engine"
    await session.close()


async def test_concurrent_v3_requests_discover_once(snmpd: Snmpd) -> None:
    session = FastSession(snmpd.v3_target("shaaes"))
    discover, probes = session._discover, []

    async def counted() -> None:
        probes.append(1)
        await discover()

    session._discover = counted  # type: ignore[method-assign]
    results = await asyncio.gather(*[session.get([SYS_NAME]) for _ in range(6)])
    await session.close()
    assert all(r == results[0] for r in results)
    assert len(probes) == 1 and session.stray_packets == 0
