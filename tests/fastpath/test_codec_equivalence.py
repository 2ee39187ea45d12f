"""The fast codec decodes and encodes v1/v2c messages exactly as pysnmp/pyasn1 do."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder
from pysnmp.proto.api import v1, v2c

from drivers.snmp import fastcodec as fc
from drivers.snmp import wire
from drivers.snmp.wire import VarBind

from .strategies import Case, cases, oids, plain

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_decode_matches_pyasn1_encoding(case: Case) -> None:
    assert fc.decode_message(case.data) == case.expected()


@SETTINGS
@given(cases())
def test_encode_is_byte_identical_and_pyasn1_decodes_it(case: Case) -> None:
    ours = fc.encode_message(
        case.version,
        case.community,
        fc.encode_pdu(case.tag, case.request_id, case.error_status, case.error_index, case.varbinds),
    )
    if not _pyasn1_pads(case):
        assert ours == case.data
    api = v1 if case.version == fc.V1 else v2c
    msg, rest = decoder.decode(ours, asn1Spec=api.Message())
    assert rest == b""
    assert int(msg["version"]) == case.version
    assert api.apiMessage.get_community(msg).asOctets() == case.community
    pdu = api.apiMessage.get_pdu(msg)
    t = pdu.tagSet[0]
    assert t.tagClass | t.tagFormat | t.tagId == case.tag
    assert int(api.apiPDU.get_request_id(pdu)) == case.request_id
    got = [VarBind(tuple(o), *plain(v)) for o, v in api.apiPDU.get_varbinds(pdu)]
    assert got == case.varbinds


_PADDED = {-(2 ** (8 * k - 1)) for k in range(1, 9)}


def _pyasn1_pads(case: Case) -> bool:
    """pyasn1 encodes -128, -32768, ... with a redundant leading 0xff octet; we encode minimally."""
    ints = [case.request_id, case.error_status, case.error_index]
    ints += [vb.value for vb in case.varbinds if vb.tag == wire.INTEGER]
    return any(i in _PADDED for i in ints)


def test_minimal_negative_integers_decode_both_ways() -> None:
    ours = fc.encode_pdu(fc.RESPONSE, -128, 0, 0, [VarBind((1, 3), wire.INTEGER, -32768)])
    assert ours.startswith(bytes([fc.RESPONSE, len(ours) - 2, 0x02, 0x01, 0x80]))
    msg = fc.encode_message(fc.V2C, b"c", ours)
    decoded, _ = decoder.decode(msg, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(decoded)
    assert int(v2c.apiPDU.get_request_id(pdu)) == -128
    assert int(v2c.apiPDU.get_varbinds(pdu)[0][1]) == -32768
    assert fc.decode_message(msg).pdu.varbinds[0].value == -32768


@settings(max_examples=300, deadline=None)
@given(oids())
def test_oid_round_trip(oid: tuple[int, ...]) -> None:
    fc._OID_CACHE.clear()
    content = fc.encode_oid(oid)
    assert fc.decode_oid(content) == oid
    assert fc.decode_oid(content) == oid  # and again from the cache


@settings(max_examples=50, deadline=None)
@given(cases(max_varbinds=5), st.integers(1, 2**31 - 1))
def test_get_and_getbulk_requests_decode_in_pyasn1(case: Case, rid: int) -> None:
    bases = [vb.oid for vb in case.varbinds]
    req = fc.encode_message(
        fc.V2C, b"public", fc.encode_pdu(fc.GET_BULK_REQUEST, rid, 0, 25, fc.request_varbinds(bases))
    )
    msg, _ = decoder.decode(req, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(msg)
    assert int(v2c.apiBulkPDU.get_max_repetitions(pdu)) == 25
    assert int(v2c.apiBulkPDU.get_non_repeaters(pdu)) == 0
    assert [tuple(o) for o, _ in v2c.apiPDU.get_varbinds(pdu)] == bases


def test_message_version_and_v3_hint() -> None:
    data = fc.encode_message(fc.V2C, b"c", fc.encode_pdu(fc.GET_REQUEST, 1, 0, 0, []))
    assert fc.message_version(data) == 1
    v3 = fc.encode_v3_message(
        msg_id=7, max_size=65507, flags=fc.FLAG_REPORTABLE, engine_id=b"", engine_boots=0, engine_time=0,
        user_name=b"", context_engine_id=b"", context_name=b"", pdu=fc.encode_pdu(fc.GET_REQUEST, 7, 0, 0, []),
    )  # fmt: skip
    assert fc.message_version(v3) == 3
    try:
        fc.decode_message(v3)
    except fc.CodecError as e:
        assert "decode_v3_message" in str(e)
    else:
        raise AssertionError("a v3 message decoded as v1/v2c")


def test_encoder_rejects_bad_values() -> None:
    bad = [
        ((1, 3), wire.INTEGER, 2**31),
        ((1, 3), wire.COUNTER32, -1),
        ((1, 3), wire.COUNTER64, 2**64),
        ((1, 3), wire.IP_ADDRESS, b"\x01\x02\x03"),
        ((1, 3), wire.OCTET_STRING, "text"),
        ((3, 1), wire.NULL, None),
        ((1,), wire.NULL, None),
        ((1, 40), wire.NULL, None),
        ((1, 3), 0x47, 1),
    ]
    for vb in bad:
        try:
            fc.encode_varbinds([vb])
        except ValueError:
            continue
        raise AssertionError(f"{vb} was encoded")
