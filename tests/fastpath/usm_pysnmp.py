"""pysnmp's own USM building blocks, wrapped so tests can cross-check the fast codec's v3 path.

Everything cryptographic here is pysnmp's code (localkey, auth and priv services); only the
message assembly is spelled out with pysnmp's pyasn1 message specs.
"""

from __future__ import annotations

from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU as PyScopedPDU
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod import rfc3414  # noqa: F401 - must load before eso (pysnmp import cycle)
from pysnmp.proto.secmod.eso.priv import aes192, aes256
from pysnmp.proto.secmod.rfc3414 import localkey
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

AUTH_SERVICES: dict[str, Any] = {
    "MD5": hmacmd5.HmacMd5(),
    "SHA": hmacsha.HmacSha(),
    "SHA224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
    "SHA256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "SHA384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
    "SHA512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID),
}
AUTH_OIDS: dict[str, tuple[int, ...]] = {
    "MD5": hmacmd5.HmacMd5.SERVICE_ID,
    "SHA": hmacsha.HmacSha.SERVICE_ID,
    "SHA224": hmacsha2.HmacSha2.SHA224_SERVICE_ID,
    "SHA256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
    "SHA384": hmacsha2.HmacSha2.SAH384_SERVICE_ID,
    "SHA512": hmacsha2.HmacSha2.SHA512_SERVICE_ID,
}
PRIV_SERVICES: dict[str, Any] = {
    "DES": des.Des(),
    "AES": aes.Aes(),
    "AES192": aes192.AesBlumenthal192(),
    "AES256": aes256.AesBlumenthal256(),
    "AES192C": aes192.Aes192(),
    "AES256C": aes256.Aes256(),
}


def auth_key(auth: str, password: str, engine_id: bytes) -> bytes:
    svc = AUTH_SERVICES[auth]
    return bytes(svc.localize_key(svc.hash_passphrase(password), univ.OctetString(engine_id)))


def priv_key(auth: str, priv: str, password: str, engine_id: bytes) -> bytes:
    svc = PRIV_SERVICES[priv]
    ku = svc.hash_passphrase(AUTH_OIDS[auth], password)
    return bytes(svc.localize_key(AUTH_OIDS[auth], ku, univ.OctetString(engine_id)))


def password_to_key(password: bytes, hash_func: Any, engine_id: bytes) -> bytes:
    return bytes(localkey.password_to_key(password, univ.OctetString(engine_id), hash_func))


def encrypt(priv: str, key: bytes, boots: int, time: int, plaintext: bytes) -> tuple[bytes, bytes]:
    ct, salt = PRIV_SERVICES[priv].encrypt_data(univ.OctetString(key), (boots, time, None), plaintext)
    return bytes(ct), bytes(salt)


def decrypt(priv: str, key: bytes, boots: int, time: int, salt: bytes, ciphertext: bytes) -> bytes:
    return bytes(
        PRIV_SERVICES[priv].decrypt_data(
            univ.OctetString(key), (boots, time, univ.OctetString(salt)), univ.OctetString(ciphertext)
        )
    )


def build_message(
    *,
    auth: str | None,
    priv: str | None,
    auth_key: bytes,
    priv_key: bytes,
    msg_id: int,
    flags: int,
    engine_id: bytes,
    boots: int,
    time: int,
    user: bytes,
    context_engine_id: bytes,
    context_name: bytes,
    pdu: Any,
) -> bytes:
    """An SNMPv3 message assembled with pyasn1 and secured with pysnmp's auth/priv services."""
    scoped = PyScopedPDU()
    scoped["contextEngineId"] = context_engine_id
    scoped["contextName"] = context_name
    scoped.setComponentByPosition(2)
    scoped.getComponentByPosition(2).setComponentByType(pdu.tagSet, pdu, verifyConstraints=False)
    scoped_bytes = encoder.encode(scoped)
    salt = b""
    if priv:
        ciphertext, salt = encrypt(priv, priv_key, boots, time, scoped_bytes)
    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = engine_id
    usm["msgAuthoritativeEngineBoots"] = boots
    usm["msgAuthoritativeEngineTime"] = time
    usm["msgUserName"] = user
    usm["msgAuthenticationParameters"] = b"\0" * (AUTH_SERVICES[auth].digest_length if auth else 0)
    usm["msgPrivacyParameters"] = salt
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    hdr = msg["msgGlobalData"]
    hdr["msgID"] = msg_id
    hdr["msgMaxSize"] = 65507
    hdr["msgFlags"] = bytes([flags])
    hdr["msgSecurityModel"] = 3
    msg["msgSecurityParameters"] = encoder.encode(usm)
    if priv:
        msg["msgData"]["encryptedPDU"] = ciphertext
    else:
        msg["msgData"]["plaintext"] = scoped
    whole = encoder.encode(msg)
    if auth:
        whole = bytes(AUTH_SERVICES[auth].authenticate_outgoing_message(univ.OctetString(auth_key), whole))
    return whole


def open_message(data: bytes, auth: str | None, priv: str | None, auth_key: bytes, priv_key: bytes) -> dict[str, Any]:
    """Verify and decrypt a message with pysnmp's services; return its parts (pyasn1 objects)."""
    msg, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    usm, rest = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert rest == b""
    if auth:
        AUTH_SERVICES[auth].authenticate_incoming_message(
            univ.OctetString(auth_key), usm["msgAuthenticationParameters"], data
        )
    boots, time = int(usm["msgAuthoritativeEngineBoots"]), int(usm["msgAuthoritativeEngineTime"])
    if priv:
        plain = decrypt(
            priv, priv_key, boots, time, bytes(usm["msgPrivacyParameters"]), bytes(msg["msgData"]["encryptedPDU"])
        )
        scoped, _ = decoder.decode(plain, asn1Spec=PyScopedPDU())
    else:
        scoped = msg["msgData"]["plaintext"]
    return {"msg": msg, "usm": usm, "scoped": scoped, "pdu": scoped["data"].getComponent()}
