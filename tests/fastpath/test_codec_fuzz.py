"""Malformed input: the fast codec either decodes it or raises CodecError, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.snmp import fastcodec as fc
from drivers.snmp.wire import VarBind

from .strategies import Case, cases

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = fc.UsmUser("admin", "SHA", "authpass123", "AES", "privpass123").localize(b"\x80\x00\x1f\x88\x04fuzz")


def _decodes_or_codec_error(data: bytes, v3_keys: fc.UsmKeys | None = None) -> None:
    try:
        if v3_keys is not None:
            fc.decode_v3_message(data, v3_keys)
        else:
            fc.decode_message(data)
    except fc.CodecError as e:
        assert str(e).startswith("at offset "), str(e)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete", "extend"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0xFF, 0x30, 0x06, 0x02]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(mutated(cases(max_varbinds=8).map(lambda c: c.data)))
def test_mutated_community_messages(data: bytes) -> None:
    _decodes_or_codec_error(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_varbinds=8))
def test_every_truncation_is_rejected(case: Case) -> None:
    for cut in range(len(case.data)):
        with pytest.raises(fc.CodecError):
            fc.decode_message(case.data[:cut])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _decodes_or_codec_error(data)
    _decodes_or_codec_error(data, KEYS)
    _decodes_or_codec_error(b"\x30" + bytes([len(data) & 0x7F]) + data)


def _v3(flags: int, varbinds: list[VarBind]) -> bytes:
    return fc.encode_v3_message(
        msg_id=9, max_size=65507, flags=flags, engine_id=KEYS.engine_id, engine_boots=1, engine_time=2,
        user_name=b"admin", context_engine_id=KEYS.engine_id, context_name=b"",
        pdu=fc.encode_pdu(fc.RESPONSE, 9, 0, 0, varbinds), keys=KEYS, salt=5,
    )  # fmt: skip


@st.composite
def v3_messages(draw: st.DrawFn) -> bytes:
    flags = draw(st.sampled_from([0, fc.FLAG_AUTH, fc.FLAG_AUTH | fc.FLAG_PRIV]))
    return _v3(flags, draw(cases(max_varbinds=6)).varbinds)


@FUZZ
@given(mutated(v3_messages()))
def test_mutated_v3_messages(data: bytes) -> None:
    _decodes_or_codec_error(data, KEYS)
    _decodes_or_codec_error(data, None)


MALFORMED = [
    (b"", "offset 0: expected message SEQUENCE"),
    (b"\x04\x00", "offset 0: expected message SEQUENCE (tag 0x30), found tag 0x04"),
    (b"\x30\x80\x00\x00", "indefinite length"),
    (b"\x30\x85\x00\x00\x00\x00\x01", "at most 4 supported"),
    (b"\x30\x05\x02\x01\x01", "claims 5 content octets but only 3 remain"),
    (b"\x30\x03\x02\x01\x05", "expected msgVersion 0 (v1) or 1 (v2c), found 5"),
    (b"\x30\x03\x02\x00\x01", "INTEGER with zero content octets"),
    (b"\x30\x05\x02\x01\x01\x04\x00", "expected a PDU, found end of data"),
    (b"\x30\x07\x02\x01\x01\x04\x00\xa4\x00", "Trap-PDU (unsupported)"),
    (b"\x30\x04\x02\x01\x01\x04", "expected length of community"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_headers_name_offset_and_expectation(data: bytes, message: str) -> None:
    with pytest.raises(fc.CodecError, match=r"^at offset") as e:
        fc.decode_message(data)
    assert message in str(e.value)


def _with_varbind(raw: bytes) -> bytes:
    vbl = b"\x30" + bytes([len(raw)]) + raw
    pdu = b"\x02\x01\x07\x02\x01\x00\x02\x01\x00" + vbl
    pdu = b"\xa2" + bytes([len(pdu)]) + pdu
    body = b"\x02\x01\x01\x04\x01c" + pdu
    return b"\x30" + bytes([len(body)]) + body


BAD_VARBINDS = [
    (b"\x04\x00", "expected VarBind SEQUENCE"),
    (b"\x30\x02\x04\x00", "expected VarBind name OID"),
    (b"\x30\x04\x06\x02\x2b\x06", "no room for a value"),
    (b"\x30\x05\x06\x01\x2b\x41\x00", "Counter32 with 0 content octets"),
    (b"\x30\x0a\x06\x01\x2b\x41\x05\x01\x00\x00\x00\x00", "exceeds 32 bits"),
    (b"\x30\x06\x06\x01\x2b\x40\x01\x01", "IpAddress with 1 content octets (expected 4)"),
    (b"\x30\x06\x06\x01\x2b\x05\x01\x00", "NULL with 1 content octets (expected 0)"),
    (b"\x30\x05\x06\x01\x2b\x47\x00", "unsupported VarBind value tag 0x47"),
    (b"\x30\x06\x06\x02\x2b\x86\x05\x00", "OID ends inside a sub-identifier"),
    (b"\x30\x07\x06\x03\x2b\x80\x01\x05\x00", "leading 0x80"),
    (b"\x30\x06\x06\x01\x2b\x05\x00\xff", "its VarBind ends at offset"),
    (b"\x30\x04\x06\x00\x05\x00", "zero length"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_VARBINDS)
def test_malformed_varbinds_name_offset_and_expectation(raw: bytes, message: str) -> None:
    with pytest.raises(fc.CodecError, match=r"^at offset") as e:
        fc.decode_message(_with_varbind(raw))
    assert message in str(e.value)
    assert e.value.request_id == 7  # read before the varbinds, so a transport can match the request


def test_oversized_oid_arcs_are_rejected_quickly() -> None:
    arc = b"\xff" * 20000 + b"\x7f"  # one enormous sub-identifier
    with pytest.raises(fc.CodecError, match="longer than 5 octets"):
        fc.decode_oid(b"\x2b" + arc)
    assert fc.decode_oid(b"\x2b\x8f\xff\xff\xff\x7f") == (1, 3, 2**32 - 1)
