"""Identify an SNMP device and suggest profiles: ``rackpulse discover HOST``.

A profile is suggested when the device's sysObjectID starts with one of its ``match:`` prefixes
(longest prefix first). Generic profiles (no ``match:``, e.g. if-mib, entity-sensor) are suggested
when the device answers their first table column.
"""

from __future__ import annotations

from typing import NamedTuple

from drivers.errors import DeviceError, ProfileError
from drivers.profiles import ProfileLibrary
from drivers.snmp import load_profile
from drivers.snmp.driver import SYS_DESCR, SYS_OBJECT_ID, vb_text
from drivers.snmp.fastwire import fast_session
from drivers.snmp.profile import SnmpProfile
from drivers.snmp.wire import SessionFactory, SnmpSession, SnmpTarget, format_oid


class Discovery(NamedTuple):
    """What discover learned: identity and the profiles that fit, best first."""

    sys_object_id: str
    sys_descr: str
    profiles: list[str]


def snmp_profiles(library: ProfileLibrary) -> list[SnmpProfile]:
    """Every valid SNMP profile in the library (broken ones are skipped here; check-config reports them)."""
    out = []
    for name, doc in library.names().items():
        if doc.driver != "snmp":
            continue
        try:
            out.append(load_profile(library, name))
        except ProfileError:
            continue
    return out


async def discover_snmp(
    host: str,
    port: int = 161,
    community: str = "public",
    *,
    target: SnmpTarget | None = None,
    library: ProfileLibrary | None = None,
    timeout: float = 2.0,
    session_factory: SessionFactory = fast_session,
) -> Discovery:
    """Read sysObjectID and sysDescr and suggest profiles; raises DeviceError if the device is silent.

    Give ``target`` for SNMPv3 or other settings; otherwise v2c with ``community`` is used.
    """
    t = target or SnmpTarget(device=host, host=host, port=port, version="2c", community=community,
                             timeout=timeout / 2, retries=1)
    sess = session_factory(t)
    try:
        got = {vb.oid: vb for vb in await sess.get([SYS_OBJECT_ID, SYS_DESCR])}
        oid_vb = got.get(SYS_OBJECT_ID)
        object_id = oid_vb.value if oid_vb is not None and isinstance(oid_vb.value, tuple) else ()
        descr = vb_text(got.get(SYS_DESCR)) or ""
        profiles = snmp_profiles(library or ProfileLibrary())
        matched = sorted(
            ((max(len(p) for p in prof.match if object_id[: len(p)] == p), prof.name)
             for prof in profiles if object_id and prof.matches(object_id)),
            key=lambda x: (-x[0], x[1]),
        )
        names = [n for _, n in matched]
        for prof in profiles:
            if not prof.match and await _answers(sess, prof):
                names.append(prof.name)
        return Discovery(format_oid(object_id) if object_id else "", descr, names)
    finally:
        await sess.close()


async def _answers(sess: SnmpSession, prof: SnmpProfile) -> bool:
    """True when the device has rows in the profile's first table column."""
    if not prof.tables:
        return False
    col = prof.tables[0].columns[0].oid
    try:
        walked = await sess.walk([col], 50)
    except DeviceError:
        return False
    return bool(walked.get(col))
