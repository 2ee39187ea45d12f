"""The reference SNMP session, on pysnmp 7's asyncio API.

All sessions of a process (per event loop) share one SnmpEngine, created lazily inside the running
loop because pysnmp's dispatcher binds to the loop that is current when the engine is built.
pysnmp keys its SNMPv3 user table by user name, so two devices that use the same user name with
different keys cannot share an engine: such a session gets a second engine (rare; see
``_EnginePool.claim``). Errors come back from pysnmp as values; we turn each into a DeviceError
with a reason and a message naming the device, host and OID, never a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import weakref
from collections.abc import Sequence
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pconfig
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import errind, rfc1902, rfc1905

from drivers.errors import DeviceError
from drivers.snmp import wire
from drivers.snmp.wire import Oid, SnmpSession, SnmpTarget, VarBind, format_oid

AUTH = {
    "MD5": pconfig.USM_AUTH_HMAC96_MD5,
    "SHA": pconfig.USM_AUTH_HMAC96_SHA,
    "SHA224": pconfig.USM_AUTH_HMAC128_SHA224,
    "SHA256": pconfig.USM_AUTH_HMAC192_SHA256,
    "SHA384": pconfig.USM_AUTH_HMAC256_SHA384,
    "SHA512": pconfig.USM_AUTH_HMAC384_SHA512,
}
# AES192/AES256 are the Blumenthal key extension (Net-SNMP); the C variants are Reeder (Cisco).
PRIV = {
    "DES": pconfig.USM_PRIV_CBC56_DES,
    "AES": pconfig.USM_PRIV_CFB128_AES,
    "AES192": pconfig.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": pconfig.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": pconfig.USM_PRIV_CFB192_AES,
    "AES256C": pconfig.USM_PRIV_CFB256_AES,
}

MAX_GET_OIDS = 40  # varbinds per GET; agents answer tooBig well before pysnmp's limits
MAX_WALK_VARBINDS = 400  # columns x repetitions asked per GETBULK

_CONVERT: dict[Any, tuple[int, Any]] = {
    rfc1902.Integer32.tagSet: (wire.INTEGER, int),
    rfc1902.OctetString.tagSet: (wire.OCTET_STRING, bytes),
    rfc1902.ObjectIdentifier.tagSet: (wire.OBJECT_IDENTIFIER, tuple),
    rfc1902.IpAddress.tagSet: (wire.IP_ADDRESS, bytes),
    rfc1902.Counter32.tagSet: (wire.COUNTER32, int),
    rfc1902.Gauge32.tagSet: (wire.GAUGE32, int),
    rfc1902.TimeTicks.tagSet: (wire.TIMETICKS, int),
    rfc1902.Opaque.tagSet: (wire.OPAQUE, bytes),
    rfc1902.Counter64.tagSet: (wire.COUNTER64, int),
    rfc1905.NoSuchObject.tagSet: (wire.NO_SUCH_OBJECT, None),
    rfc1905.NoSuchInstance.tagSet: (wire.NO_SUCH_INSTANCE, None),
    rfc1905.EndOfMibView.tagSet: (wire.END_OF_MIB_VIEW, None),
    rfc1902.Null.tagSet: (wire.NULL, None),
}


def to_varbind(oid: Any, value: Any) -> VarBind:
    """Convert one pysnmp (ObjectName, value) pair into a plain VarBind."""
    tag, conv = _CONVERT.get(value.tagSet, (wire.OPAQUE, None))
    if conv is None:
        return VarBind(tuple(oid), tag, None)
    return VarBind(tuple(oid), tag, conv(value))


class _EnginePool:
    """The engines of one event loop; engine 0 serves everyone unless v3 credentials collide."""

    def __init__(self) -> None:
        self.engines: list[SnmpEngine] = []
        # per engine: v3 user name -> (credential fingerprint, sessions using it)
        self.claims: list[dict[str, tuple[str, int]]] = []

    def engine(self, index: int) -> SnmpEngine:
        while len(self.engines) <= index:
            self.engines.append(_new_engine())
            self.claims.append({})
        return self.engines[index]

    def claim(self, user: str | None, fingerprint: str) -> int:
        """Pick the engine for a session; v3 users with differing keys go to different engines."""
        if user is None:
            self.engine(0)
            return 0
        i = 0
        while True:
            self.engine(i)
            have = self.claims[i].get(user)
            if have is None or have[0] == fingerprint:
                self.claims[i][user] = (fingerprint, (have[1] if have else 0) + 1)
                return i
            i += 1

    def release(self, index: int, user: str | None) -> None:
        if user is None or index >= len(self.claims):
            return
        fp, n = self.claims[index].get(user, ("", 0))
        if n <= 1:
            self.claims[index].pop(user, None)
        else:
            self.claims[index][user] = (fp, n - 1)

    def close(self) -> None:
        for e in self.engines:
            e.close_dispatcher()
        self.engines.clear()
        self.claims.clear()


RECEIVE_BUFFER = 4 * 1024 * 1024  # the kernel caps it at net.core.rmem_max


def _new_engine() -> SnmpEngine:
    """An engine whose IPv4 socket has a large receive buffer.

    Many devices answering at once (dozens of GETBULK responses of several KiB) overflow the
    default ~200 KiB buffer while the loop is busy decoding, and a dropped answer costs a timeout.
    """
    engine = SnmpEngine()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        return engine  # pysnmp opens its own socket on first use
    pconfig.add_transport(engine, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode(sock=sock))
    return engine


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _EnginePool] = weakref.WeakKeyDictionary()


def shared_pool() -> _EnginePool:
    """The engine pool of the running loop (created on first use, inside the loop)."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _EnginePool()
    return pool


async def close_shared_engines() -> None:
    """Close the running loop's engines (tests and shutdown); they are rebuilt on next use."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool:
        pool.close()


class PysnmpSession(SnmpSession):
    """One device reached through the shared pysnmp engine; see SnmpSession for the contract."""

    def __init__(self, target: SnmpTarget) -> None:
        self.target = target
        self.requests = 0
        self._where = f"{target.device} ({target.host}:{target.port})"
        self._auth: CommunityData | UsmUserData = self._auth_data(target)
        self._context = ContextData(contextName=target.context_name.encode()) if target.version == "3" \
            else ContextData()
        self._user = target.user if target.version == "3" else None
        self._fingerprint = hashlib.sha256(
            repr((target.auth_protocol, target.auth_key, target.priv_protocol, target.priv_key)).encode()
        ).hexdigest()
        self._transport: UdpTransportTarget | Udp6TransportTarget | None = None
        self._engine: SnmpEngine | None = None
        self._engine_index = -1
        self._pool: _EnginePool | None = None

    @staticmethod
    def _auth_data(t: SnmpTarget) -> CommunityData | UsmUserData:
        if t.version in ("1", "2c"):
            return CommunityData(t.community, mpModel=0 if t.version == "1" else 1)
        kw: dict[str, Any] = {}
        if t.auth_protocol:
            kw["authKey"] = t.auth_key
            kw["authProtocol"] = AUTH[t.auth_protocol]
        if t.priv_protocol:
            kw["privKey"] = t.priv_key
            kw["privProtocol"] = PRIV[t.priv_protocol]
        return UsmUserData(t.user, **kw)

    async def _ready(self) -> tuple[SnmpEngine, UdpTransportTarget | Udp6TransportTarget]:
        if self._engine is None or self._pool is not _POOLS.get(asyncio.get_running_loop()):
            self._pool = shared_pool()
            self._engine_index = self._pool.claim(self._user, self._fingerprint)
            self._engine = self._pool.engine(self._engine_index)
            self._transport = None
        if self._transport is None:
            t = self.target
            cls = Udp6TransportTarget if ":" in t.host else UdpTransportTarget
            try:
                self._transport = await cls.create((t.host, t.port), timeout=t.timeout, retries=t.retries)
            except PySnmpError as e:
                raise DeviceError("connection", f"{self._where}: cannot resolve or reach host: {e}") from None
        return self._engine, self._transport

    async def close(self) -> None:
        """Forget the transport target (re-resolved next time) and release the engine claim."""
        if self._pool is not None:
            self._pool.release(self._engine_index, self._user)
        self._pool = None
        self._engine = None
        self._transport = None

    # -- requests ---------------------------------------------------------------------------

    async def _call(self, op: str, oids: Sequence[Oid], reps: int = 0) -> list[VarBind]:
        """Send one GET / GETNEXT / GETBULK and return its varbinds; errors become DeviceError."""
        engine, transport = await self._ready()
        objs = [ObjectType(ObjectIdentity(format_oid(o))) for o in oids]
        self.requests += 1
        try:
            if op == "GET":
                res = await get_cmd(engine, self._auth, transport, self._context, *objs, lookupMib=False)
            elif op == "GETNEXT":
                res = await next_cmd(engine, self._auth, transport, self._context, *objs, lookupMib=False)
            else:
                res = await bulk_cmd(engine, self._auth, transport, self._context, 0, reps, *objs,
                                     lookupMib=False)
        except PySnmpError as e:
            raise DeviceError("connection", f"{self._where}: {op} {self._what(oids)} failed: {e}") from None
        except OSError as e:
            raise DeviceError("connection", f"{self._where}: {op} {self._what(oids)}: {e.strerror or e}") \
                from None
        err_ind, err_status, err_index, vbs = res
        if err_ind:
            raise self._indication_error(err_ind, op, oids)
        status = int(err_status)
        if status:
            raise _StatusError(status, int(err_index), str(err_status.prettyPrint()
                                                            if hasattr(err_status, "prettyPrint") else status))
        return [to_varbind(o, v) for o, v in vbs]

    @staticmethod
    def _what(oids: Sequence[Oid]) -> str:
        first = format_oid(oids[0]) if oids else "(none)"
        return first + (f" (+{len(oids) - 1} more)" if len(oids) > 1 else "")

    def _indication_error(self, ind: Any, op: str, oids: Sequence[Oid]) -> DeviceError:
        t = self.target
        what = f"{op} {self._what(oids)}"
        if isinstance(ind, errind.RequestTimedOut):
            hint = "check host, port and firewall" + (
                "; agents silently drop a wrong community" if t.version != "3" else "")
            return DeviceError("timeout", f"{self._where}: no response to {what} after "
                                          f"{t.retries + 1} attempt(s) of {t.timeout:g}s ({hint})")
        if isinstance(ind, errind.WrongDigest | errind.AuthenticationFailure | errind.AuthenticationError):
            return DeviceError("auth", f"{self._where}: SNMPv3 authentication failed for user {t.user!r} "
                                       f"(wrong auth key or auth protocol {t.auth_protocol}): {ind}")
        if isinstance(ind, errind.DecryptionError):
            return DeviceError("auth", f"{self._where}: SNMPv3 decryption failed for user {t.user!r} "
                                       f"(wrong priv key or priv protocol {t.priv_protocol}): {ind}")
        if isinstance(ind, errind.UnknownUserName | errind.UnknownSecurityName):
            return DeviceError("auth", f"{self._where}: the agent does not know SNMPv3 user {t.user!r}")
        if isinstance(ind, errind.UnsupportedSecurityLevel):
            return DeviceError("auth", f"{self._where}: the agent refuses security level for user "
                                       f"{t.user!r} (check auth/priv protocols): {ind}")
        if isinstance(ind, errind.UnknownEngineID | errind.NotInTimeWindow | errind.EngineIDMismatch):
            return DeviceError("auth", f"{self._where}: SNMPv3 engine discovery failed for user "
                                       f"{t.user!r}: {ind}")
        if isinstance(ind, errind.EncryptionError | errind.NoEncryption):
            return DeviceError("internal", f"{self._where}: cannot encrypt for SNMPv3 privacy "
                                           f"(is the 'cryptography' package installed?): {ind}")
        if isinstance(ind, errind.DeserializationError | errind.SerializationError):
            return DeviceError("decode", f"{self._where}: {what}: undecodable message: {ind}")
        if isinstance(ind, errind.OidNotIncreasing):
            return DeviceError("protocol", f"{self._where}: {what}: the agent returned OIDs out of order")
        return DeviceError("protocol", f"{self._where}: {what}: {type(ind).__name__}: {ind}")

    def _status_error(self, e: _StatusError, op: str, oids: Sequence[Oid]) -> DeviceError:
        bad = oids[e.index - 1] if 0 < e.index <= len(oids) else None
        at = f" at {format_oid(bad)}" if bad else ""
        if e.status in (6, 16):  # noAccess, authorizationError
            who = f"user {self.target.user!r}" if self.target.version == "3" else "this community"
            return DeviceError("auth", f"{self._where}: {op}{at}: access denied for {who} ({e.name})")
        if e.status == 2:
            return DeviceError("no_such_object", f"{self._where}: {op}{at}: no such name")
        return DeviceError("protocol", f"{self._where}: {op} {self._what(oids)}: agent error {e.name}{at}")

    async def get(self, oids: Sequence[Oid]) -> list[VarBind]:
        """GET in chunks of MAX_GET_OIDS; missing OIDs come back as NO_SUCH_* varbinds."""
        out: list[VarBind] = []
        for i in range(0, len(oids), MAX_GET_OIDS):
            out.extend(await self._get_chunk(list(oids[i:i + MAX_GET_OIDS])))
        return out

    async def _get_chunk(self, oids: list[Oid]) -> list[VarBind]:
        if not oids:
            return []
        try:
            vbs = await self._call("GET", oids)
        except _StatusError as e:
            if e.status == 1 and len(oids) > 1:  # tooBig: split and retry
                half = len(oids) // 2
                return await self._get_chunk(oids[:half]) + await self._get_chunk(oids[half:])
            if e.status == 2 and self.target.version == "1" and 0 < e.index <= len(oids):
                # SNMPv1 fails the whole request for one missing name: mark it and ask again.
                k = e.index - 1
                rest = await self._get_chunk(oids[:k] + oids[k + 1:])
                rest.insert(k, VarBind(oids[k], wire.NO_SUCH_OBJECT, None))
                return rest
            raise self._status_error(e, "GET", oids) from None
        if len(vbs) != len(oids):
            raise DeviceError("protocol", f"{self._where}: GET {self._what(oids)}: asked for {len(oids)} "
                                          f"OIDs, got {len(vbs)}")
        return vbs

    async def walk(self, bases: Sequence[Oid], max_repetitions: int) -> dict[Oid, list[VarBind]]:
        """Walk the subtrees side by side: each GETBULK carries several columns' cursors."""
        result: dict[Oid, list[VarBind]] = {b: [] for b in bases}
        pending = list(result)
        cursor = {b: b for b in pending}
        reps = max(1, max_repetitions)
        while pending:
            width = max(1, min(len(pending), MAX_WALK_VARBINDS // reps))
            batch, vbs = await self._walk_step(pending[:width], cursor, reps)
            if not vbs:
                raise DeviceError("protocol", f"{self._where}: empty GETBULK response at "
                                              f"{format_oid(cursor[batch[0]])}")
            done: set[Oid] = set()
            for i, vb in enumerate(vbs):
                b = batch[i % len(batch)]
                if b in done:
                    continue
                if vb.tag in wire.EXCEPTIONS or vb.oid[: len(b)] != b or len(vb.oid) == len(b):
                    done.add(b)
                    continue
                if vb.oid <= cursor[b]:
                    raise DeviceError("protocol", f"{self._where}: walk of {format_oid(b)}: agent returned "
                                                  f"{format_oid(vb.oid)} after {format_oid(cursor[b])}")
                result[b].append(vb)
                cursor[b] = vb.oid
            pending = [b for b in pending if b not in done]
        return result

    async def _walk_step(
        self, batch: list[Oid], cursor: dict[Oid, Oid], reps: int
    ) -> tuple[list[Oid], list[VarBind]]:
        """One request for ``batch``; returns the columns actually asked for and the varbinds."""
        cursors = [cursor[b] for b in batch]
        if self.target.version == "1":
            return batch, await self._next_v1(cursors)
        try:
            return batch, await self._call("GETBULK", cursors, reps)
        except _StatusError as e:
            if e.status == 1 and (reps > 1 or len(batch) > 1):  # tooBig: ask for less
                if reps > 1:
                    return await self._walk_step(batch, cursor, reps // 2)
                return await self._walk_step(batch[:1], cursor, 1)
            raise self._status_error(e, "GETBULK", cursors) from None

    async def _next_v1(self, cursors: list[Oid]) -> list[VarBind]:
        try:
            return await self._call("GETNEXT", cursors)
        except _StatusError as e:
            if e.status == 2 and 0 < e.index <= len(cursors):
                # v1 reports the end of the MIB as noSuchName on that varbind.
                k = e.index - 1
                rest = await self._next_v1(cursors[:k] + cursors[k + 1:]) if len(cursors) > 1 else []
                rest.insert(k, VarBind(cursors[k], wire.END_OF_MIB_VIEW, None))
                return rest
            raise self._status_error(e, "GETNEXT", cursors) from None


class _StatusError(Exception):
    """An errorStatus in a response; turned into DeviceError after any retry logic."""

    def __init__(self, status: int, index: int, name: str) -> None:
        super().__init__(name)
        self.status, self.index, self.name = status, index, name


def pysnmp_session(target: SnmpTarget) -> SnmpSession:
    """The default session factory."""
    return PysnmpSession(target)
