"""A small, fast BER codec for the SNMP messages rackpulse sends and receives.

Why this exists: polling switches means decoding many thousands of varbinds per interval, and
pysnmp spends most of its CPU (about 70% in profiles) inside pyasn1's generic BER decoder, which
makes it cost several times more CPU per varbind than snmp_exporter or Net-SNMP's tools. This
module decodes and encodes exactly the subset the agent uses (SNMP v1/v2c messages and SNMPv3
messages with USM; GET, GETNEXT, GETBULK, Response and Report PDUs; HMAC-MD5/SHA-1/SHA-2
authentication; DES and AES privacy) with direct byte slicing and ``int.from_bytes``, in a single
pass over each PDU and without building generic ASN.1 objects. It is checked against
pysnmp/pyasn1 by property tests. pysnmp remains the reference implementation and the engine for
everything not covered here (SET, traps, other security models, MIB resolution); nothing in this
module is more authoritative than pysnmp.

Decoding is strict about structure and raises :class:`CodecError` (a ``ValueError``) naming the
byte offset and what was expected; it never lets IndexError or similar escape. It is lenient in
one deliberate way: unsigned application types (Counter32, Gauge32, TimeTicks, Counter64) are
read as unsigned even when an agent omits the leading zero octet, as Net-SNMP and gosnmp do.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from drivers.snmp.wire import (
    COUNTER32,
    COUNTER64,
    END_OF_MIB_VIEW,
    GAUGE32,
    INTEGER,
    IP_ADDRESS,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    NULL,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    OPAQUE,
    TIMETICKS,
    Oid,
    VarBind,
)

try:  # cryptography >= 47 keeps CFB only under "decrepit".
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[no-redef,unused-ignore]

__all__ = [
    "GET_BULK_REQUEST",
    "GET_NEXT_REQUEST",
    "GET_REQUEST",
    "REPORT",
    "RESPONSE",
    "CodecError",
    "CommunityMessage",
    "Pdu",
    "UsmError",
    "UsmKeys",
    "UsmUser",
    "V3Message",
    "decode_message",
    "decode_oid",
    "decode_v3_message",
    "encode_message",
    "encode_oid",
    "encode_pdu",
    "encode_v3_message",
    "localize_key",
    "localize_priv_key",
    "message_version",
    "password_to_key",
]

# PDU tags (context-specific, constructed).
GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
RESPONSE = 0xA2
SET_REQUEST = 0xA3
TRAP_V1 = 0xA4
GET_BULK_REQUEST = 0xA5
INFORM_REQUEST = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8
_STANDARD_PDUS = frozenset(
    {GET_REQUEST, GET_NEXT_REQUEST, RESPONSE, SET_REQUEST, GET_BULK_REQUEST, INFORM_REQUEST, TRAP_V2, REPORT}
)

V1, V2C, V3 = 0, 1, 3

FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
USM_SECURITY_MODEL = 3

_SEQUENCE = 0x30


class CodecError(ValueError):
    """A packet is malformed or cannot be handled; the message names the offset and what was expected.

    ``request_id`` is set when the request id (v1/v2c) or msgID (v3) was read before the failure,
    so a transport can tell which outstanding request the bad packet answered.
    """

    def __init__(self, offset: int, message: str, request_id: int | None = None) -> None:
        super().__init__(f"at offset {offset}: {message}")
        self.offset = offset
        self.request_id = request_id


class UsmError(CodecError):
    """A v3 message failed USM processing: unknown user, wrong digest, undecryptable payload."""


class Pdu(NamedTuple):
    """One PDU. For GETBULK, ``error_status``/``error_index`` hold non-repeaters/max-repetitions."""

    tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


class CommunityMessage(NamedTuple):
    """An SNMP v1 (version 0) or v2c (version 1) message."""

    version: int
    community: bytes
    pdu: Pdu


class V3Message(NamedTuple):
    """A decoded SNMPv3/USM message; ``flags`` are the msgFlags bits as received."""

    msg_id: int
    max_size: int
    flags: int
    engine_id: bytes
    engine_boots: int
    engine_time: int
    user_name: bytes
    context_engine_id: bytes
    context_name: bytes
    pdu: Pdu


_VB_NEW = tuple.__new__  # VarBind(...) goes through a Python-level __new__; this skips it.
_FROM = int.from_bytes

# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

# The first OID octet packs the first two arcs (X.690 8.19.4); precompute it for one-octet values.
_FIRST_ARCS: tuple[tuple[int, int], ...] = tuple(
    (0, b) if b < 40 else (1, b - 40) if b < 80 else (2, b - 80) for b in range(128)
)
# Polls repeat the same OIDs every interval, so decoded OIDs are shared via this cache. An entry
# costs about 250 bytes, so the bound keeps it under ~16 MB; past it the cache simply starts over.
_OID_CACHE: dict[bytes, Oid] = {}
_OID_CACHE_MAX = 65_536


def decode_oid(content: bytes, offset: int = 0) -> Oid:
    """Decode the content octets of an OBJECT IDENTIFIER; ``offset`` is only used in errors."""
    oid = _OID_CACHE.get(content)
    if oid is None:
        oid = _decode_oid_uncached(content, offset)
        if len(_OID_CACHE) >= _OID_CACHE_MAX:
            _OID_CACHE.clear()
        _OID_CACHE[content] = oid
    return oid


def _decode_oid_uncached(c: bytes, offset: int) -> Oid:
    if not c:
        raise CodecError(offset, "expected OBJECT IDENTIFIER content, found zero length")
    if c.isascii():  # every arc fits one octet: the common case
        return _FIRST_ARCS[c[0]] + tuple(c[1:])
    arcs: list[int] = []
    value = 0
    start = True
    octets = 0
    for n, b in enumerate(c):
        if start and b == 0x80:
            raise CodecError(offset + n, "non-minimal OID sub-identifier (leading 0x80 octet)")
        octets += 1
        if octets > 5:  # SNMP arcs are 32-bit (RFC 2578 3.5); also bounds the work per packet
            raise CodecError(offset + n, "OID sub-identifier longer than 5 octets (over 32 bits)")
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            arcs.append(value)
            value = 0
            start = True
            octets = 0
        else:
            start = False
    if not start:
        raise CodecError(offset + len(c) - 1, "OID ends inside a sub-identifier (last octet has bit 8 set)")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def _header(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Check a TLV with ``tag`` at ``pos``; return (content start, content end)."""
    if pos >= end:
        raise CodecError(pos, f"expected {what} (tag 0x{tag:02x}), found end of data")
    if data[pos] != tag:
        raise CodecError(pos, f"expected {what} (tag 0x{tag:02x}), found tag 0x{data[pos]:02x}")
    return _length(data, pos + 1, end, what)


def _length(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """Read a definite length at ``pos``; return (content start, content end) checked against ``end``."""
    if pos >= end:
        raise CodecError(pos, f"expected length of {what}, found end of data")
    n = data[pos]
    if n < 0x80:
        start = pos + 1
    else:
        k = n & 0x7F
        if k == 0:
            raise CodecError(pos, f"indefinite length for {what} is not allowed in SNMP")
        if k > 4:
            raise CodecError(pos, f"length of {what} uses {k} octets; at most 4 supported")
        start = pos + 1 + k
        if start > end:
            raise CodecError(pos, f"length of {what} truncated")
        n = _FROM(data[pos + 1 : start], "big")
    stop = start + n
    if stop > end:
        raise CodecError(pos, f"{what} claims {n} content octets but only {end - start} remain")
    return start, stop


def _int(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """Decode an INTEGER TLV at ``pos``; return (value, next position)."""
    s, e = _header(data, pos, end, INTEGER, what)
    if s == e:
        raise CodecError(pos, f"{what}: INTEGER with zero content octets")
    if e - s > 8:
        raise CodecError(pos, f"{what}: INTEGER of {e - s} octets is too long")
    return _FROM(data[s:e], "big", signed=True), e


def _octets(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    """Decode an OCTET STRING TLV at ``pos``; return (value, next position)."""
    s, e = _header(data, pos, end, OCTET_STRING, what)
    return data[s:e], e


_UNSIGNED32 = frozenset({COUNTER32, GAUGE32, TIMETICKS})
_STRINGS = frozenset({OCTET_STRING, OPAQUE})
_EMPTY = frozenset({NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
_TAG_NAMES = {
    INTEGER: "INTEGER", OCTET_STRING: "OCTET STRING", NULL: "NULL", OBJECT_IDENTIFIER: "OID",
    IP_ADDRESS: "IpAddress", COUNTER32: "Counter32", GAUGE32: "Gauge32", TIMETICKS: "TimeTicks",
    OPAQUE: "Opaque", COUNTER64: "Counter64", NO_SUCH_OBJECT: "noSuchObject",
    NO_SUCH_INSTANCE: "noSuchInstance", END_OF_MIB_VIEW: "endOfMibView",
}  # fmt: skip


def _decode_varbinds(data: bytes, pos: int, end: int) -> list[VarBind]:
    """Decode the varbinds between ``pos`` and ``end`` (the VarBindList content) in one pass.

    The TLV headers are inlined (rather than calling _header) because this loop is the hot path;
    IndexError can only come from reading a length octet past the buffer and is turned into a
    CodecError below.
    """
    out: list[VarBind] = []
    append = out.append
    cache = _OID_CACHE
    i = pos
    try:
        while i < end:
            vb_at = i
            if data[i] != _SEQUENCE:
                raise CodecError(i, f"expected VarBind SEQUENCE (tag 0x30), found tag 0x{data[i]:02x}")
            n = data[i + 1]
            if n < 0x80:
                i += 2
            else:
                i, n = _long_length(data, i + 1)
            vb_end = i + n
            if vb_end > end:
                raise CodecError(vb_at, f"VarBind claims {n} octets but only {end - i} remain")
            # name
            if data[i] != OBJECT_IDENTIFIER:
                raise CodecError(i, f"expected VarBind name OID (tag 0x06), found tag 0x{data[i]:02x}")
            n = data[i + 1]
            if n < 0x80:
                s = i + 2
            else:
                s, n = _long_length(data, i + 1)
            e = s + n
            if e >= vb_end:  # the value needs at least its two header octets
                raise CodecError(i, "VarBind name OID overruns its VarBind (no room for a value)")
            chunk = data[s:e]
            oid = cache.get(chunk)
            if oid is None:
                oid = decode_oid(chunk, s)
            # value
            i = e
            tag = data[i]
            n = data[i + 1]
            if n < 0x80:
                s = i + 2
            else:
                s, n = _long_length(data, i + 1)
            e = s + n
            if e != vb_end:
                raise CodecError(i, f"VarBind value ends at offset {e} but its VarBind ends at offset {vb_end}")
            value: Any
            if tag in _UNSIGNED32:
                if n == 0 or n > 5:
                    raise CodecError(i, f"{_TAG_NAMES[tag]} with {n} content octets (expected 1 to 5)")
                value = _FROM(data[s:e], "big")
                if value > 0xFFFFFFFF:
                    raise CodecError(i, f"{_TAG_NAMES[tag]} value {value} exceeds 32 bits")
            elif tag == COUNTER64:
                if n == 0 or n > 9:
                    raise CodecError(i, f"Counter64 with {n} content octets (expected 1 to 9)")
                value = _FROM(data[s:e], "big")
                if value > 0xFFFFFFFFFFFFFFFF:
                    raise CodecError(i, f"Counter64 value {value} exceeds 64 bits")
            elif tag == INTEGER:
                if n == 0 or n > 8:
                    raise CodecError(i, f"INTEGER with {n} content octets (expected 1 to 8)")
                value = _FROM(data[s:e], "big", signed=True)
            elif tag in _STRINGS:
                value = data[s:e]
            elif tag in _EMPTY:
                if n:
                    raise CodecError(i, f"{_TAG_NAMES[tag]} with {n} content octets (expected 0)")
                value = None
            elif tag == OBJECT_IDENTIFIER:
                chunk = data[s:e]
                value = cache.get(chunk)
                if value is None:
                    value = decode_oid(chunk, s)
            elif tag == IP_ADDRESS:
                if n != 4:
                    raise CodecError(i, f"IpAddress with {n} content octets (expected 4)")
                value = data[s:e]
            else:
                raise CodecError(i, f"unsupported VarBind value tag 0x{tag:02x}")
            append(_VB_NEW(VarBind, (oid, tag, value)))
            i = e
    except IndexError:
        raise CodecError(len(data), "packet truncated inside a VarBind") from None
    if i != end:  # pragma: no cover - every branch above lands exactly on vb_end
        raise CodecError(i, "VarBindList content overruns")
    return out


def _long_length(data: bytes, pos: int) -> tuple[int, int]:
    """Long-form length at ``pos`` (IndexError if truncated; callers bound-check the result)."""
    k = data[pos] & 0x7F
    if k == 0:
        raise CodecError(pos, "indefinite length is not allowed in SNMP")
    if k > 4:
        raise CodecError(pos, f"length uses {k} octets; at most 4 supported")
    if pos + k >= len(data):
        raise IndexError
    return pos + 1 + k, _FROM(data[pos + 1 : pos + 1 + k], "big")


def _decode_pdu(data: bytes, pos: int, end: int, request_id_hint: int | None = None) -> tuple[Pdu, int]:
    """Decode a standard PDU at ``pos``; return it and the position after it."""
    if pos >= end:
        raise CodecError(pos, "expected a PDU, found end of data", request_id_hint)
    tag = data[pos]
    if tag not in _STANDARD_PDUS:
        what = "an SNMPv1 Trap-PDU (unsupported)" if tag == TRAP_V1 else f"tag 0x{tag:02x}"
        raise CodecError(pos, f"expected a PDU (tag 0xa0-0xa8), found {what}", request_id_hint)
    s, e = _length(data, pos + 1, end, "PDU")
    request_id, p = _int(data, s, e, "request-id")
    try:
        error_status, p = _int(data, p, e, "error-status")
        error_index, p = _int(data, p, e, "error-index")
        vs, ve = _header(data, p, e, _SEQUENCE, "VarBindList")
        if ve != e:
            raise CodecError(ve, f"{e - ve} unexpected octets after the VarBindList")
        varbinds = _decode_varbinds(data, vs, ve)
    except CodecError as err:
        if request_id_hint is None:
            err.request_id = request_id
        raise
    return Pdu(tag, request_id, error_status, error_index, varbinds), e


def message_version(data: bytes) -> int:
    """Return the msgVersion field (0 = v1, 1 = v2c, 3 = v3) of a message."""
    s, e = _header(data, 0, len(data), _SEQUENCE, "message SEQUENCE")
    return _int(data, s, e, "msgVersion")[0]


def decode_message(data: bytes) -> CommunityMessage:
    """Decode an SNMP v1 or v2c message."""
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    s, e = _header(data, 0, size, _SEQUENCE, "message SEQUENCE")
    if e != size:
        raise CodecError(e, f"{size - e} trailing octets after the message")
    version, p = _int(data, s, e, "msgVersion")
    if version not in (V1, V2C):
        hint = " (use decode_v3_message)" if version == V3 else ""
        raise CodecError(s, f"expected msgVersion 0 (v1) or 1 (v2c), found {version}{hint}")
    community, p = _octets(data, p, e, "community")
    pdu, p = _decode_pdu(data, p, e)
    if p != e:
        raise CodecError(p, f"{e - p} unexpected octets after the PDU", pdu.request_id)
    return CommunityMessage(version, community, pdu)


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    return b"\x83" + n.to_bytes(3, "big")


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + _enc_len(n) + content


def _enc_int(v: int) -> bytes:
    """Minimal two's-complement content octets (also right for unsigned types: adds a 0x00 if needed)."""
    return v.to_bytes(((v + (v < 0)).bit_length() // 8) + 1, "big", signed=True)


def _int_tlv(v: int) -> bytes:
    return _tlv(INTEGER, _enc_int(v))


def encode_oid(oid: Sequence[int]) -> bytes:
    """Encode the content octets of an OBJECT IDENTIFIER (at least two arcs, first arc 0-2)."""
    if len(oid) < 2:
        raise ValueError(f"OID {oid!r} needs at least two arcs")
    a, b = oid[0], oid[1]
    if not 0 <= a <= 2 or b < 0 or (a < 2 and b > 39):
        raise ValueError(f"OID {oid!r} has invalid first arcs")
    out = bytearray()
    for arc in (a * 40 + b, *oid[2:]):
        if arc < 0x80:
            if arc < 0:
                raise ValueError(f"OID {oid!r} has a negative arc")
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


_UINT_MAX = {COUNTER32: 0xFFFFFFFF, GAUGE32: 0xFFFFFFFF, TIMETICKS: 0xFFFFFFFF, COUNTER64: 2**64 - 1}


def _encode_value(tag: int, value: int | bytes | Oid | None) -> bytes:
    if tag in _EMPTY:
        return bytes((tag, 0))
    if tag == INTEGER:
        if not isinstance(value, int) or not -(2**31) <= value < 2**31:
            raise ValueError(f"INTEGER value {value!r} is not an Integer32")
        return _tlv(tag, _enc_int(value))
    if tag in _UINT_MAX:
        if not isinstance(value, int) or not 0 <= value <= _UINT_MAX[tag]:
            raise ValueError(f"{_TAG_NAMES[tag]} value {value!r} out of range")
        return _tlv(tag, _enc_int(value))
    if tag in _STRINGS or tag == IP_ADDRESS:
        if not isinstance(value, bytes | bytearray):
            raise ValueError(f"{_TAG_NAMES[tag]} value must be bytes, not {type(value).__name__}")
        if tag == IP_ADDRESS and len(value) != 4:
            raise ValueError(f"IpAddress value must be 4 octets, not {len(value)}")
        return _tlv(tag, bytes(value))
    if tag == OBJECT_IDENTIFIER:
        if not isinstance(value, tuple):
            raise ValueError(f"OID value must be a tuple of ints, not {type(value).__name__}")
        return _tlv(tag, encode_oid(value))
    raise ValueError(f"cannot encode VarBind value tag 0x{tag:02x}")


def encode_varbinds(varbinds: Sequence[VarBind | tuple[Oid, int, Any]]) -> bytes:
    """Encode a VarBindList TLV; request varbinds use tag NULL and value None."""
    parts = [_tlv(_SEQUENCE, _tlv(OBJECT_IDENTIFIER, encode_oid(o)) + _encode_value(t, v)) for o, t, v in varbinds]
    return _tlv(_SEQUENCE, b"".join(parts))


def encode_pdu(
    tag: int,
    request_id: int,
    error_status: int,
    error_index: int,
    varbinds: Sequence[VarBind | tuple[Oid, int, Any]],
) -> bytes:
    """Encode a standard PDU (for GETBULK pass non-repeaters and max-repetitions as the error fields)."""
    if tag not in _STANDARD_PDUS:
        raise ValueError(f"cannot encode PDU tag 0x{tag:02x}")
    return _tlv(
        tag,
        _int_tlv(request_id) + _int_tlv(error_status) + _int_tlv(error_index) + encode_varbinds(varbinds),
    )


def request_varbinds(oids: Sequence[Oid]) -> list[VarBind]:
    """The (oid, NULL, None) varbinds of a GET/GETNEXT/GETBULK request."""
    return [VarBind(tuple(o), NULL, None) for o in oids]


def encode_message(version: int, community: bytes, pdu: bytes) -> bytes:
    """Wrap an encoded PDU in a v1 (0) or v2c (1) message."""
    if version not in (V1, V2C):
        raise ValueError(f"community messages are version 0 or 1, not {version}")
    return _tlv(_SEQUENCE, _int_tlv(version) + _tlv(OCTET_STRING, community) + pdu)


# ---------------------------------------------------------------------------------------------
# USM (RFC 3414, RFC 7860, RFC 3826 and draft-blumenthal-aes-usm-04)
# ---------------------------------------------------------------------------------------------


class AuthProtocol(NamedTuple):
    """An HMAC authentication protocol: hash name for hashlib and the truncated MAC length."""

    name: str
    hash_name: str
    mac_length: int


class PrivProtocol(NamedTuple):
    """A privacy protocol. ``extension`` is how AES-192/256 keys are stretched from short hashes."""

    name: str
    cipher: str  # "des" or "aes"
    key_size: int
    extension: str  # "none", "blumenthal" (Net-SNMP AES-192/256) or "reeder" (Cisco "AES-256C")


AUTH_PROTOCOLS: dict[str, AuthProtocol] = {
    p.name: p
    for p in (
        AuthProtocol("MD5", "md5", 12),
        AuthProtocol("SHA", "sha1", 12),
        AuthProtocol("SHA224", "sha224", 16),
        AuthProtocol("SHA256", "sha256", 24),
        AuthProtocol("SHA384", "sha384", 32),
        AuthProtocol("SHA512", "sha512", 48),
    )
}
PRIV_PROTOCOLS: dict[str, PrivProtocol] = {
    p.name: p
    for p in (
        PrivProtocol("DES", "des", 16, "none"),
        PrivProtocol("AES", "aes", 16, "none"),
        # Net-SNMP's AES-192/AES-256 and pysnmp's USM_PRIV_CFB*_AES_BLUMENTHAL.
        PrivProtocol("AES192", "aes", 24, "blumenthal"),
        PrivProtocol("AES256", "aes", 32, "blumenthal"),
        # Cisco-style; pysnmp's default USM_PRIV_CFB192_AES / USM_PRIV_CFB256_AES.
        PrivProtocol("AES192C", "aes", 24, "reeder"),
        PrivProtocol("AES256C", "aes", 32, "reeder"),
    )
}
_AUTH_ALIASES = {"SHA1": "SHA", "SHA-1": "SHA", "HMACMD5": "MD5", "HMACSHA": "SHA"}
_PRIV_ALIASES = {"AES128": "AES", "DES-CBC": "DES", "CBC-DES": "DES", "DESCBC": "DES"}


def auth_protocol(name: str) -> AuthProtocol:
    """Look up an auth protocol by name: MD5, SHA, SHA224, SHA256, SHA384, SHA512 (dashes ignored)."""
    key = name.upper()
    key = _AUTH_ALIASES.get(key, key.replace("-", "").replace("_", ""))
    key = _AUTH_ALIASES.get(key, key)
    if key not in AUTH_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 auth protocol {name!r}; expected one of {', '.join(AUTH_PROTOCOLS)}")
    return AUTH_PROTOCOLS[key]


def priv_protocol(name: str) -> PrivProtocol:
    """Look up a privacy protocol by name: DES, AES, AES192, AES256, AES192C, AES256C (dashes ignored)."""
    key = name.upper()
    key = _PRIV_ALIASES.get(key, key.replace("-", "").replace("_", ""))
    key = _PRIV_ALIASES.get(key, key)
    if key not in PRIV_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 privacy protocol {name!r}; expected one of {', '.join(PRIV_PROTOCOLS)}")
    return PRIV_PROTOCOLS[key]


@lru_cache(maxsize=256)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2 password-to-key: hash the password repeated to 1 MiB (cached; it costs ~ms)."""
    if not password:
        raise ValueError("an SNMPv3 passphrase must not be empty")
    reps = 1048576 // len(password) + 1
    return hashlib.new(hash_name, (password * reps)[:1048576]).digest()


def localize_key(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2 key localisation: H(Ku || engineID || Ku)."""
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def localize_priv_key(ku: bytes, engine_id: bytes, hash_name: str, priv: PrivProtocol) -> bytes:
    """Localise a privacy key and stretch it to the cipher's key size when the hash is too short."""
    kul = localize_key(ku, engine_id, hash_name)
    if priv.extension == "blumenthal":
        while len(kul) < priv.key_size:  # draft-blumenthal-aes-usm-04 3.1.2.1: Kul || H(Kul)
            kul += hashlib.new(hash_name, kul).digest()
    elif priv.extension == "reeder":
        while len(kul) < priv.key_size:  # draft-reeder-snmpv3-usm-3desede 2.1: Kul as a new passphrase
            kul += localize_key(password_to_key(kul, hash_name), engine_id, hash_name)
    return kul[: priv.key_size]


@dataclass(frozen=True)
class UsmUser:
    """An SNMPv3 user with passphrases; protocol names as accepted by auth_protocol/priv_protocol."""

    name: str
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None

    def __post_init__(self) -> None:
        if bool(self.auth_protocol) != bool(self.auth_key):
            raise ValueError(f"v3 user {self.name!r}: give both auth_protocol and auth_key, or neither")
        if bool(self.priv_protocol) != bool(self.priv_key):
            raise ValueError(f"v3 user {self.name!r}: give both priv_protocol and priv_key, or neither")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError(f"v3 user {self.name!r}: privacy needs authentication too")
        if self.auth_protocol:
            auth_protocol(self.auth_protocol)
        if self.priv_protocol:
            priv_protocol(self.priv_protocol)

    @property
    def flags(self) -> int:
        """The msgFlags security bits for this user (authNoPriv, authPriv or neither)."""
        return (FLAG_AUTH if self.auth_protocol else 0) | (FLAG_PRIV if self.priv_protocol else 0)

    def localize(self, engine_id: bytes) -> UsmKeys:
        """Derive the keys localised to an authoritative engine."""
        auth = auth_protocol(self.auth_protocol) if self.auth_protocol else None
        priv = priv_protocol(self.priv_protocol) if self.priv_protocol else None
        auth_key = priv_key = b""
        if auth is not None and self.auth_key:
            auth_key = localize_key(password_to_key(self.auth_key.encode(), auth.hash_name), engine_id, auth.hash_name)
        if auth is not None and priv is not None and self.priv_key:
            ku = password_to_key(self.priv_key.encode(), auth.hash_name)
            priv_key = localize_priv_key(ku, engine_id, auth.hash_name, priv)
        return UsmKeys(self.name.encode(), engine_id, auth, auth_key, priv, priv_key)


@dataclass
class UsmKeys:
    """A user's keys localised to one engine, with a pre-keyed HMAC so each message only copies it."""

    user_name: bytes
    engine_id: bytes
    auth: AuthProtocol | None
    auth_key: bytes
    priv: PrivProtocol | None
    priv_key: bytes
    _hmac: Any = field(init=False, repr=False, default=None)
    _cipher: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.auth is not None:
            self._hmac = hmac.new(self.auth_key, digestmod=self.auth.hash_name)
        if self.priv is not None:  # the key schedule is per key, not per message
            key = self.priv_key
            self._cipher = TripleDES(key[:8] * 3) if self.priv.cipher == "des" else algorithms.AES(key)

    @property
    def flags(self) -> int:
        """The msgFlags security bits these keys support."""
        return (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)

    def mac(self, message: bytes) -> bytes:
        """The truncated HMAC of a whole message whose auth parameters are zeroed."""
        assert self.auth is not None
        h = self._hmac.copy()
        h.update(message)
        return h.digest()[: self.auth.mac_length]

    def encrypt(self, plaintext: bytes, boots: int, time: int, salt: int) -> tuple[bytes, bytes]:
        """Encrypt a scoped PDU; return (ciphertext, msgPrivacyParameters)."""
        priv = self.priv
        assert priv is not None
        key = self.priv_key
        if priv.cipher == "des":  # RFC 3414 8.1.1.1
            priv_params = (boots & 0xFFFFFFFF).to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")
            iv = bytes(a ^ b for a, b in zip(priv_params, key[8:16], strict=True))
            pad = -len(plaintext) % 8
            enc = Cipher(self._cipher, modes.CBC(iv)).encryptor()
            return enc.update(plaintext + b"\0" * pad) + enc.finalize(), priv_params
        priv_params = (salt & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")  # RFC 3826 3.1.2.1
        iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + priv_params
        enc = Cipher(self._cipher, CFB(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize(), priv_params

    def decrypt(self, ciphertext: bytes, boots: int, time: int, priv_params: bytes) -> bytes:
        """Decrypt an encryptedPDU (raises ValueError on a wrong-sized salt or ciphertext)."""
        priv = self.priv
        assert priv is not None
        if len(priv_params) != 8:
            raise ValueError(f"msgPrivacyParameters has {len(priv_params)} octets, expected 8")
        key = self.priv_key
        if priv.cipher == "des":
            if len(ciphertext) % 8:
                raise ValueError(f"DES ciphertext of {len(ciphertext)} octets is not a multiple of 8")
            iv = bytes(a ^ b for a, b in zip(priv_params, key[8:16], strict=True))
            dec = Cipher(self._cipher, modes.CBC(iv)).decryptor()
        else:
            iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + priv_params
            dec = Cipher(self._cipher, CFB(iv)).decryptor()
        return dec.update(ciphertext) + dec.finalize()


def new_salt() -> int:
    """A random 64-bit starting point for the per-session salt counter (RFC 3826 3.1.2.1)."""
    return int.from_bytes(os.urandom(8), "big")


def encode_v3_message(
    *,
    msg_id: int,
    max_size: int,
    flags: int,
    engine_id: bytes,
    engine_boots: int,
    engine_time: int,
    user_name: bytes,
    context_engine_id: bytes,
    context_name: bytes,
    pdu: bytes,
    keys: UsmKeys | None = None,
    salt: int = 0,
) -> bytes:
    """Encode an SNMPv3/USM message, encrypting and authenticating as ``flags`` ask.

    ``flags`` may include FLAG_REPORTABLE; FLAG_AUTH and FLAG_PRIV need ``keys`` supporting them.
    ``salt`` feeds the privacy IV and must differ between messages (use a counter).
    """
    sec = flags & (FLAG_AUTH | FLAG_PRIV)
    if sec == FLAG_PRIV:
        raise ValueError("msgFlags: privacy without authentication is not allowed")
    if sec and (keys is None or sec & ~keys.flags):
        raise ValueError("msgFlags ask for security the given keys do not support")
    scoped = _tlv(_SEQUENCE, _tlv(OCTET_STRING, context_engine_id) + _tlv(OCTET_STRING, context_name) + pdu)
    priv_params = b""
    if flags & FLAG_PRIV:
        assert keys is not None
        ciphertext, priv_params = keys.encrypt(scoped, engine_boots, engine_time, salt)
        msg_data = _tlv(OCTET_STRING, ciphertext)
    else:
        msg_data = scoped
    mac_len = keys.auth.mac_length if (flags & FLAG_AUTH and keys and keys.auth) else 0
    header = _tlv(_SEQUENCE, _int_tlv(msg_id) + _int_tlv(max_size) + _tlv(OCTET_STRING, bytes((flags,))) + _int_tlv(3))
    usm_head = (
        _tlv(OCTET_STRING, engine_id)
        + _int_tlv(engine_boots)
        + _int_tlv(engine_time)
        + _tlv(OCTET_STRING, user_name)
        + bytes((OCTET_STRING,))
        + _enc_len(mac_len)
    )
    usm_tail = _tlv(OCTET_STRING, priv_params)
    usm = _tlv(_SEQUENCE, usm_head + b"\0" * mac_len + usm_tail)
    sec_params = _tlv(OCTET_STRING, usm)
    body = _int_tlv(3) + header + sec_params + msg_data
    message = _tlv(_SEQUENCE, body)
    if not mac_len:
        return message
    assert keys is not None
    # The placeholder sits just before the privacy parameters TLV inside the security parameters.
    at = len(message) - len(msg_data) - len(usm_tail) - mac_len
    return message[:at] + keys.mac(message) + message[at + mac_len :]


def decode_v3_message(data: bytes, keys: UsmKeys | None) -> V3Message:
    """Decode an SNMPv3/USM message, verifying its digest and decrypting it with ``keys``.

    Unauthenticated messages (e.g. Reports) decode without keys. Authenticated ones must match
    ``keys`` (user name, engine and digest) or UsmError is raised.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    s, e = _header(data, 0, size, _SEQUENCE, "message SEQUENCE")
    if e != size:
        raise CodecError(e, f"{size - e} trailing octets after the message")
    version, p = _int(data, s, e, "msgVersion")
    if version != V3:
        raise CodecError(s, f"expected msgVersion 3, found {version}")
    hs, he = _header(data, p, e, _SEQUENCE, "msgGlobalData")
    msg_id, q = _int(data, hs, he, "msgID")
    try:
        max_size, q = _int(data, q, he, "msgMaxSize")
        flag_octets, q = _octets(data, q, he, "msgFlags")
        if len(flag_octets) != 1:
            raise CodecError(q, f"msgFlags has {len(flag_octets)} octets, expected 1")
        flags = flag_octets[0]
        model, q = _int(data, q, he, "msgSecurityModel")
        if model != USM_SECURITY_MODEL:
            raise CodecError(q, f"msgSecurityModel {model} is not USM (3)")
        if q != he:
            raise CodecError(q, "unexpected octets after msgSecurityModel")
        if flags & (FLAG_AUTH | FLAG_PRIV) == FLAG_PRIV:
            raise CodecError(hs, "msgFlags: privacy without authentication")
        ss, se = _header(data, he, e, OCTET_STRING, "msgSecurityParameters")
        us, ue = _header(data, ss, se, _SEQUENCE, "UsmSecurityParameters")
        if ue != se:
            raise CodecError(ue, "unexpected octets after UsmSecurityParameters")
        engine_id, q = _octets(data, us, ue, "msgAuthoritativeEngineID")
        boots, q = _int(data, q, ue, "msgAuthoritativeEngineBoots")
        etime, q = _int(data, q, ue, "msgAuthoritativeEngineTime")
        user, q = _octets(data, q, ue, "msgUserName")
        auth_at, auth_end = _header(data, q, ue, OCTET_STRING, "msgAuthenticationParameters")
        priv_params, q = _octets(data, auth_end, ue, "msgPrivacyParameters")
        if q != ue:
            raise CodecError(q, "unexpected octets after msgPrivacyParameters")
        if not 0 <= boots < 2**31 or not 0 <= etime < 2**31:
            raise CodecError(us, "engine boots/time out of range 0..2147483647")
        if flags & FLAG_AUTH:
            if keys is None or keys.auth is None:
                raise UsmError(auth_at, "authenticated message but no auth key is configured")
            if user != keys.user_name:
                raise UsmError(auth_at, f"message is for user {user!r}, not {keys.user_name!r}")
            if engine_id != keys.engine_id:
                raise UsmError(us, "message comes from a different authoritative engine")
            mac = data[auth_at:auth_end]
            if len(mac) != keys.auth.mac_length:
                raise UsmError(auth_at, f"auth parameters have {len(mac)} octets, expected {keys.auth.mac_length}")
            zeroed = data[:auth_at] + b"\0" * len(mac) + data[auth_end:]
            if not hmac.compare_digest(keys.mac(zeroed), mac):
                raise UsmError(auth_at, "wrong digest: the message failed HMAC authentication")
        if flags & FLAG_PRIV:
            assert keys is not None
            if keys.priv is None:
                raise UsmError(se, "encrypted message but no privacy key is configured")
            cs, ce = _header(data, se, e, OCTET_STRING, "encryptedPDU")
            if ce != e:
                raise CodecError(ce, "unexpected octets after encryptedPDU")
            try:
                plain = keys.decrypt(data[cs:ce], boots, etime, priv_params)
            except ValueError as err:
                raise UsmError(cs, f"cannot decrypt: {err}") from None
            try:
                scoped = _decode_scoped_pdu(plain, 0, len(plain), msg_id, allow_padding=True)
            except CodecError as err:
                raise UsmError(se, f"decrypted data is not a ScopedPDU (wrong privacy key?): {err}") from None
        else:
            scoped = _decode_scoped_pdu(data, se, e, msg_id, allow_padding=False)
    except CodecError as err:
        if err.request_id is None or isinstance(err, UsmError):
            err.request_id = msg_id
        raise
    ctx_engine, ctx_name, pdu = scoped
    return V3Message(msg_id, max_size, flags, engine_id, boots, etime, user, ctx_engine, ctx_name, pdu)


def _decode_scoped_pdu(
    data: bytes, pos: int, end: int, msg_id: int, *, allow_padding: bool
) -> tuple[bytes, bytes, Pdu]:
    s, e = _header(data, pos, end, _SEQUENCE, "ScopedPDU")
    if e != end and not allow_padding:  # DES pads the plaintext to 8 octets
        raise CodecError(e, f"{end - e} unexpected octets after the ScopedPDU")
    ctx_engine, p = _octets(data, s, e, "contextEngineID")
    ctx_name, p = _octets(data, p, e, "contextName")
    pdu, p = _decode_pdu(data, p, e, msg_id)
    if p != e:
        raise CodecError(p, f"{e - p} unexpected octets after the PDU", msg_id)
    return ctx_engine, ctx_name, pdu


def describe_tag(tag: int) -> str:
    """A short name for a VarBind value tag, for messages."""
    return _TAG_NAMES.get(tag, f"tag 0x{tag:02x}")
