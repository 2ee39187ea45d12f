"""SNMPv3/USM in the fast codec agrees with pysnmp's USM: keys, digests, ciphers and whole messages."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysnmp.proto.api import v2c

from drivers.snmp import fastcodec as fc
from drivers.snmp.wire import VarBind

from . import usm_pysnmp as ref
from .strategies import V2C_TYPES, plain, varbind_pairs

AUTHS = list(fc.AUTH_PROTOCOLS)
PRIVS = list(fc.PRIV_PROTOCOLS)
PASSWORDS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40)
ENGINE_IDS = st.binary(min_size=5, max_size=32)
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("auth", AUTHS)
def test_password_to_key_matches_pysnmp(auth: str) -> None:
    # RFC 3414 A.3 engine id; pysnmp's implementation is the reference for every hash.
    engine = bytes.fromhex("000000000000000000000002")
    name = fc.auth_protocol(auth).hash_name
    ours = fc.localize_key(fc.password_to_key(b"maplesyrup", name), engine, name)
    assert ours == ref.password_to_key(b"maplesyrup", getattr(hashlib, name), engine)


def test_rfc3414_appendix_a3_vectors() -> None:
    engine = bytes.fromhex("000000000000000000000002")
    md5 = fc.localize_key(fc.password_to_key(b"maplesyrup", "md5"), engine, "md5")
    sha = fc.localize_key(fc.password_to_key(b"maplesyrup", "sha1"), engine, "sha1")
    assert md5.hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert sha.hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@SLOW
@given(st.sampled_from(AUTHS), st.sampled_from(PRIVS), PASSWORDS, PASSWORDS, ENGINE_IDS)
def test_localized_keys_match_pysnmp(auth: str, priv: str, apass: str, ppass: str, engine: bytes) -> None:
    keys = fc.UsmUser("u", auth, apass, priv, ppass).localize(engine)
    assert keys.auth_key == ref.auth_key(auth, apass, engine)
    assert keys.priv_key == ref.priv_key(auth, priv, ppass, engine)


@SLOW
@given(
    st.sampled_from(AUTHS),
    st.sampled_from(PRIVS),
    ENGINE_IDS,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.binary(max_size=600),
    st.integers(0, 2**64 - 1),
)
def test_ciphers_interoperate_with_pysnmp(
    auth: str, priv: str, engine: bytes, boots: int, time: int, plaintext: bytes, salt: int
) -> None:
    keys = fc.UsmUser("u", auth, "authpass123", priv, "privpass123").localize(engine)
    ct, params = keys.encrypt(plaintext, boots, time, salt)
    back = ref.decrypt(priv, keys.priv_key, boots, time, params, ct)
    assert back[: len(plaintext)] == plaintext  # DES pads to 8 octets
    ct2, params2 = ref.encrypt(priv, keys.priv_key, boots, time, plaintext)
    assert keys.decrypt(ct2, boots, time, params2)[: len(plaintext)] == plaintext


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    auth=st.sampled_from([None, *AUTHS]),
    priv=st.sampled_from([None, *PRIVS]),
    engine=ENGINE_IDS,
    boots=st.integers(0, 2**31 - 1),
    time=st.integers(0, 2**31 - 1),
    msg_id=st.integers(0, 2**31 - 1),
    user=st.binary(min_size=1, max_size=32),
    context=st.binary(max_size=16),
    pairs=st.lists(varbind_pairs(V2C_TYPES), max_size=12),
    report=st.booleans(),
)
def test_whole_messages_interoperate_with_pysnmp(
    auth: str | None,
    priv: str | None,
    engine: bytes,
    boots: int,
    time: int,
    msg_id: int,
    user: bytes,
    context: bytes,
    pairs: list[tuple[VarBind, object]],
    report: bool,
) -> None:
    if auth is None:
        priv = None
    flags = (fc.FLAG_AUTH if auth else 0) | (fc.FLAG_PRIV if priv else 0) | fc.FLAG_REPORTABLE
    keys = fc.UsmUser(user.decode("latin-1"), auth, "authpass123" if auth else None, priv,
                      "privpass123" if priv else None).localize(engine)  # fmt: skip
    keys.user_name = user
    varbinds = [vb for vb, _ in pairs]
    tag = fc.REPORT if report else fc.RESPONSE

    # pysnmp builds and secures it; the fast codec verifies, decrypts and decodes it.
    pdu = (v2c.ReportPDU if report else v2c.GetResponsePDU)()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, msg_id)
    v2c.apiPDU.set_varbinds(pdu, [(vb.oid, obj) for vb, obj in pairs])
    theirs = ref.build_message(
        auth=auth, priv=priv, auth_key=keys.auth_key, priv_key=keys.priv_key, msg_id=msg_id, flags=flags,
        engine_id=engine, boots=boots, time=time, user=user, context_engine_id=engine, context_name=context, pdu=pdu,
    )  # fmt: skip
    got = fc.decode_v3_message(theirs, keys if auth else None)
    assert got == fc.V3Message(
        msg_id, 65507, flags, engine, boots, time, user, engine, context, fc.Pdu(tag, msg_id, 0, 0, varbinds)
    )

    # The fast codec builds and secures it; pysnmp verifies, decrypts and decodes it.
    ours = fc.encode_v3_message(
        msg_id=msg_id, max_size=65507, flags=flags, engine_id=engine, engine_boots=boots, engine_time=time,
        user_name=user, context_engine_id=engine, context_name=context,
        pdu=fc.encode_pdu(tag, msg_id, 0, 0, varbinds), keys=keys if auth else None, salt=msg_id * 7919,
    )  # fmt: skip
    parts = ref.open_message(ours, auth, priv, keys.auth_key, keys.priv_key)
    hdr = parts["msg"]["msgGlobalData"]
    assert int(hdr["msgID"]) == msg_id and bytes(hdr["msgFlags"]) == bytes([flags])
    assert bytes(parts["usm"]["msgUserName"]) == user
    assert bytes(parts["usm"]["msgAuthoritativeEngineId"]) == engine
    assert bytes(parts["scoped"]["contextName"]) == context
    assert int(v2c.apiPDU.get_request_id(parts["pdu"])) == msg_id
    assert [VarBind(tuple(o), *plain(v)) for o, v in v2c.apiPDU.get_varbinds(parts["pdu"])] == varbinds
    assert fc.decode_v3_message(ours, keys if auth else None).pdu.varbinds == varbinds


def _secured(auth: str = "SHA", priv: str = "AES") -> tuple[fc.UsmKeys, bytes]:
    keys = fc.UsmUser("admin", auth, "authpass123", priv, "privpass123").localize(b"\x80\x00\x1f\x88\x04engine")
    data = fc.encode_v3_message(
        msg_id=42, max_size=65507, flags=fc.FLAG_AUTH | fc.FLAG_PRIV, engine_id=keys.engine_id, engine_boots=3,
        engine_time=1000, user_name=b"admin", context_engine_id=keys.engine_id, context_name=b"",
        pdu=fc.encode_pdu(fc.RESPONSE, 42, 0, 0, [VarBind((1, 3, 6, 1), 0x41, 5)]), keys=keys, salt=1,
    )  # fmt: skip
    return keys, data


def test_wrong_digest_and_wrong_keys_raise_usm_error() -> None:
    keys, data = _secured()
    assert fc.decode_v3_message(data, keys).pdu.varbinds == [VarBind((1, 3, 6, 1), 0x41, 5)]
    other = fc.UsmUser("admin", "SHA", "otherpass123", "AES", "privpass123").localize(keys.engine_id)
    with pytest.raises(fc.UsmError, match="wrong digest") as e:
        fc.decode_v3_message(data, other)
    assert e.value.request_id == 42
    stranger = fc.UsmUser("bob", "SHA", "authpass123", "AES", "privpass123").localize(keys.engine_id)
    with pytest.raises(fc.UsmError, match="user"):
        fc.decode_v3_message(data, stranger)
    with pytest.raises(fc.UsmError, match="no auth key"):
        fc.decode_v3_message(data, None)
    wrong_priv = fc.UsmUser("admin", "SHA", "authpass123", "AES", "otherpriv123").localize(keys.engine_id)
    with pytest.raises(fc.UsmError, match="wrong privacy key"):
        fc.decode_v3_message(data, wrong_priv)


def test_protocol_names_and_user_validation() -> None:
    assert fc.auth_protocol("sha-256").name == "SHA256"
    assert fc.auth_protocol("SHA1").name == "SHA"
    assert fc.priv_protocol("aes-128").name == "AES"
    assert fc.priv_protocol("AES-256C").extension == "reeder"
    assert fc.priv_protocol("AES256").extension == "blumenthal"
    with pytest.raises(ValueError, match="unknown SNMPv3 auth protocol"):
        fc.auth_protocol("SHA3")
    with pytest.raises(ValueError, match="privacy needs authentication"):
        fc.UsmUser("u", None, None, "AES", "privpass123")
    with pytest.raises(ValueError, match="both auth_protocol and auth_key"):
        fc.UsmUser("u", "SHA", None)
    with pytest.raises(ValueError, match="empty"):
        fc.password_to_key(b"", "sha1")
