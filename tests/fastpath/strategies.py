"""Hypothesis strategies and pysnmp/pyasn1 builders shared by the fast-path tests.

Each generated varbind carries both the plain expectation (oid, tag, value) and the pysnmp value
object, so a message can be built with pyasn1 and the fast codec's result compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v1, v2c

from drivers.snmp import fastcodec as fc
from drivers.snmp import wire
from drivers.snmp.wire import VarBind

U32 = st.integers(0, 2**32 - 1)
ARC = st.one_of(st.integers(0, 127), st.integers(0, 2**32 - 1))


@st.composite
def oids(draw: st.DrawFn) -> tuple[int, ...]:
    """Any OID pyasn1 can encode: first arc 0-2, second < 40 unless the first is 2."""
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39)) if first < 2 else draw(ARC)
    return (first, second, *draw(st.lists(ARC, max_size=14)))


# (tag, strategy of plain values, pysnmp v2c constructor)
V2C_TYPES: list[tuple[int, st.SearchStrategy[Any], Any]] = [
    (wire.INTEGER, st.integers(-(2**31), 2**31 - 1), v2c.Integer),
    (wire.OCTET_STRING, st.binary(max_size=300), v2c.OctetString),
    (wire.NULL, st.none(), lambda _: v2c.Null("")),
    (wire.OBJECT_IDENTIFIER, oids(), v2c.ObjectIdentifier),
    (wire.IP_ADDRESS, st.binary(min_size=4, max_size=4), v2c.IpAddress),
    (wire.COUNTER32, U32, v2c.Counter32),
    (wire.GAUGE32, U32, v2c.Gauge32),
    (wire.TIMETICKS, U32, v2c.TimeTicks),
    (wire.OPAQUE, st.binary(max_size=40), v2c.Opaque),
    (wire.COUNTER64, st.integers(0, 2**64 - 1), v2c.Counter64),
    (wire.NO_SUCH_OBJECT, st.none(), lambda _: rfc1905.noSuchObject),
    (wire.NO_SUCH_INSTANCE, st.none(), lambda _: rfc1905.noSuchInstance),
    (wire.END_OF_MIB_VIEW, st.none(), lambda _: rfc1905.endOfMibView),
]
V1_TYPES: list[tuple[int, st.SearchStrategy[Any], Any]] = [
    (wire.INTEGER, st.integers(-(2**31), 2**31 - 1), v1.Integer),
    (wire.OCTET_STRING, st.binary(max_size=300), v1.OctetString),
    (wire.NULL, st.none(), lambda _: v1.Null("")),
    (wire.OBJECT_IDENTIFIER, oids(), v1.ObjectIdentifier),
    (wire.IP_ADDRESS, st.binary(min_size=4, max_size=4), v1.IpAddress),
    (wire.COUNTER32, U32, v1.Counter),
    (wire.GAUGE32, U32, v1.Gauge),
    (wire.TIMETICKS, U32, v1.TimeTicks),
    (wire.OPAQUE, st.binary(max_size=40), v1.Opaque),
]


@dataclass
class Case:
    """One generated message: what the fast codec should see, and its pysnmp-encoded bytes."""

    version: int
    community: bytes
    tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]
    data: bytes

    def expected(self) -> fc.CommunityMessage:
        return fc.CommunityMessage(
            self.version,
            self.community,
            fc.Pdu(self.tag, self.request_id, self.error_status, self.error_index, self.varbinds),
        )


@st.composite
def varbind_pairs(draw: st.DrawFn, types: list[tuple[int, st.SearchStrategy[Any], Any]]) -> tuple[VarBind, Any]:
    tag, values, make = draw(st.sampled_from(types))
    value = draw(values)
    return VarBind(draw(oids()), tag, value), make(value)


_V2C_PDUS = {
    fc.GET_REQUEST: v2c.GetRequestPDU,
    fc.GET_NEXT_REQUEST: v2c.GetNextRequestPDU,
    fc.RESPONSE: v2c.GetResponsePDU,
    fc.SET_REQUEST: v2c.SetRequestPDU,
    fc.GET_BULK_REQUEST: v2c.GetBulkRequestPDU,
    fc.INFORM_REQUEST: v2c.InformRequestPDU,
    fc.TRAP_V2: v2c.SNMPv2TrapPDU,
    fc.REPORT: v2c.ReportPDU,
}
_V1_PDUS = {
    fc.GET_REQUEST: v1.GetRequestPDU,
    fc.GET_NEXT_REQUEST: v1.GetNextRequestPDU,
    fc.RESPONSE: v1.GetResponsePDU,
    fc.SET_REQUEST: v1.SetRequestPDU,
}


@st.composite
def cases(draw: st.DrawFn, max_varbinds: int = 25) -> Case:
    """A v1 or v2c message of a random PDU type with random varbinds, encoded by pyasn1."""
    version = draw(st.sampled_from([fc.V1, fc.V2C]))
    api, pdus, types = (v1, _V1_PDUS, V1_TYPES) if version == fc.V1 else (v2c, _V2C_PDUS, V2C_TYPES)
    tag = draw(st.sampled_from(sorted(pdus)))
    pairs = draw(st.lists(varbind_pairs(types), max_size=max_varbinds))
    community = draw(st.binary(max_size=40))
    request_id = draw(st.integers(-(2**31), 2**31 - 1))
    pdu = pdus[tag]()
    if tag == fc.GET_BULK_REQUEST:
        status, index = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
        v2c.apiBulkPDU.set_defaults(pdu)
        v2c.apiBulkPDU.set_non_repeaters(pdu, status)
        v2c.apiBulkPDU.set_max_repetitions(pdu, index)
    else:
        status, index = draw(st.integers(0, 18 if version else 5)), draw(st.integers(0, 2**31 - 1))
        api.apiPDU.set_defaults(pdu)
        api.apiPDU.set_error_status(pdu, status)
        api.apiPDU.set_error_index(pdu, index)
    api.apiPDU.set_request_id(pdu, request_id)
    api.apiPDU.set_varbinds(pdu, [(vb.oid, obj) for vb, obj in pairs])
    msg = api.Message()
    api.apiMessage.set_defaults(msg)
    api.apiMessage.set_community(msg, community)
    api.apiMessage.set_pdu(msg, pdu)
    return Case(version, community, tag, request_id, status, index, [vb for vb, _ in pairs], encoder.encode(msg))


def plain(value: Any) -> tuple[int, Any]:
    """(BER identifier octet, plain value) of a pyasn1 value, as the fast codec represents it."""
    t = value.tagSet[0]
    tag = t.tagClass | t.tagFormat | t.tagId
    if tag in (wire.NULL, *wire.EXCEPTIONS):
        return tag, None
    if tag == wire.OBJECT_IDENTIFIER:
        return tag, tuple(value)
    if tag in (wire.OCTET_STRING, wire.OPAQUE, wire.IP_ADDRESS):
        return tag, value.asOctets()
    return tag, int(value)
