"""Config model for SNMP devices: address, SNMP version, credentials and optional inline OIDs.

Secrets (community, v3 keys) come from ``*_file`` keys or environment variables, never inline; they
are read only when the driver is built and are never part of a repr, log line or error message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from drivers.config import DeviceConfigBase, StrictModel, parse_duration, read_secret
from drivers.snmp.profile import ScalarSpec, scalar_problems

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256", "AES192C", "AES256C")


def _version(v: Any) -> str:
    """Accept 1, 2, 3, "1", "2c", "v2c", "3" and normalise to "1" | "2c" | "3"."""
    if isinstance(v, bool):
        raise ValueError("expected an SNMP version: 1, 2c or 3")
    s = str(v).strip().lower().removeprefix("v")
    if s in ("2", "2c"):
        return "2c"
    if s in ("1", "3"):
        return s
    raise ValueError(f"{v!r} is not an SNMP version; use 1, 2c or 3")


def _upper(v: Any) -> Any:
    return v.upper().replace("-", "") if isinstance(v, str) else v


SnmpVersion = Annotated[Literal["1", "2c", "3"], BeforeValidator(_version)]
AuthProtocol = Annotated[Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"], BeforeValidator(_upper)]
PrivProtocol = Annotated[Literal["DES", "AES", "AES192", "AES256", "AES192C", "AES256C"], BeforeValidator(_upper)]


class SnmpV3Config(StrictModel):
    """The ``v3:`` block: USM user, protocols, and where the keys are read from."""

    user: str = Field(min_length=1, max_length=32)
    auth_protocol: AuthProtocol | None = None
    auth_key_file: str | None = None
    auth_key_env: str | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key_file: str | None = None
    priv_key_env: str | None = None
    context_name: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> SnmpV3Config:
        has_auth_key = bool(self.auth_key_file or self.auth_key_env)
        has_priv_key = bool(self.priv_key_file or self.priv_key_env)
        if self.auth_key_file and self.auth_key_env:
            raise ValueError("give either auth_key_file or auth_key_env, not both")
        if self.priv_key_file and self.priv_key_env:
            raise ValueError("give either priv_key_file or priv_key_env, not both")
        if has_auth_key != (self.auth_protocol is not None):
            raise ValueError("auth_protocol and auth_key_file/auth_key_env go together")
        if has_priv_key != (self.priv_protocol is not None):
            raise ValueError("priv_protocol and priv_key_file/priv_key_env go together")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol) too")
        return self

    @property
    def security_level(self) -> str:
        """noAuthNoPriv, authNoPriv or authPriv, derived from which protocols are set."""
        if self.priv_protocol:
            return "authPriv"
        if self.auth_protocol:
            return "authNoPriv"
        return "noAuthNoPriv"

    def auth_key(self) -> str | None:
        """The authentication passphrase; ValueError names the file or variable, never the key."""
        return _key(read_secret(self.auth_key_file, self.auth_key_env, "v3 auth key"), "v3 auth key")

    def priv_key(self) -> str | None:
        """The privacy passphrase; ValueError names the file or variable, never the key."""
        return _key(read_secret(self.priv_key_file, self.priv_key_env, "v3 priv key"), "v3 priv key")


def _key(value: str | None, what: str) -> str | None:
    # RFC 3414 passphrases shorter than 8 characters are rejected by agents and by pysnmp.
    if value is not None and len(value) < 8:
        raise ValueError(f"{what} is shorter than the 8 characters SNMPv3 requires")
    return value


class SnmpDeviceConfig(DeviceConfigBase):
    """An SNMP device: a switch or PDU polled with GET and GETBULK walks."""

    driver: Literal["snmp"]
    host: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    version: SnmpVersion = "2c"
    community_file: str | None = None
    community_env: str | None = None
    v3: SnmpV3Config | None = None
    max_repetitions: int = Field(default=25, ge=1, le=200)
    # "fast": our own BER/USM codec (drivers/snmp/fastcodec.py), ~25x less CPU than pysnmp;
    # "pysnmp": the reference engine, for agents the fast path trips over.
    engine: Literal["fast", "pysnmp"] = "fast"
    # Label, scale and type columns are re-read this often (0 = every poll), after a restart, and
    # whenever a row lacks them.
    meta_refresh: Annotated[float, BeforeValidator(parse_duration), Field(ge=0)] = 300.0
    oids: list[ScalarSpec] | None = None  # inline scalars instead of (or besides) profiles

    @model_validator(mode="after")
    def _check(self) -> SnmpDeviceConfig:
        if self.community_file and self.community_env:
            raise ValueError("give either community_file or community_env, not both")
        if self.version == "3":
            if self.v3 is None:
                raise ValueError("version 3 needs a v3: block (user, protocols, key files)")
            if self.community_file or self.community_env:
                raise ValueError("community_file/community_env are for versions 1 and 2c, not 3")
        elif self.v3 is not None:
            raise ValueError(f"a v3: block needs version: 3 (this device has version {self.version})")
        if not self.profile_names() and not self.oids:
            raise ValueError("name a profile ('profile' or 'profiles') or give inline 'oids'")
        problems = [p for i, s in enumerate(self.oids or []) for p in scalar_problems(f"oids[{i}]", s)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def community(self) -> str:
        """The v1/v2c community from community_file/community_env, else the default 'public'."""
        return read_secret(self.community_file, self.community_env, "community") or "public"
