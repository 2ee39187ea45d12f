"""The SNMP wire interface: GET and GETBULK walks returning plain (oid, tag, value) varbinds.

Drivers and profiles only see this small interface, so the transport behind it can be pysnmp
(the reference engine) or the fast codec, without either leaking into profile logic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

Oid = tuple[int, ...]

# BER/SNMP application tags used in VarBind.tag.
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

EXCEPTIONS = frozenset({NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})


class VarBind(NamedTuple):
    """One variable binding; ``value`` is int, bytes, an Oid tuple, or None for NULL/exceptions."""

    oid: Oid
    tag: int
    value: int | bytes | Oid | None


def parse_oid(text: str) -> Oid:
    """'1.3.6.1.2.1.1.3.0' or '.1.3.6...' -> (1, 3, 6, 1, 2, 1, 1, 3, 0)."""
    try:
        return tuple(int(p) for p in text.strip().lstrip(".").split("."))
    except ValueError:
        raise ValueError(f"{text!r} is not a numeric OID") from None


def format_oid(oid: Oid) -> str:
    """(1, 3, 6) -> '1.3.6'."""
    return ".".join(map(str, oid))


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """Everything a session needs to reach one device; secrets are kept out of repr()."""

    device: str  # the configured device name, used in error messages
    host: str
    port: int = 161
    version: str = "2c"  # "1" | "2c" | "3"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: str | None = None  # MD5 | SHA | SHA224 | SHA256 | SHA384 | SHA512
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: str | None = None  # DES | AES | AES192 | AES256
    priv_key: str | None = field(default=None, repr=False)
    context_name: str = ""
    timeout: float = 1.0  # seconds per request attempt
    retries: int = 1  # resends after a request attempt times out


class SnmpSession(ABC):
    """One device's SNMP session. Errors are raised as drivers.errors.DeviceError with a reason.

    Implementations add 1 to ``requests`` for every request PDU they send (GET or GETBULK), so the
    driver can report requests per poll.
    """

    requests: int = 0

    @abstractmethod
    async def get(self, oids: Sequence[Oid]) -> list[VarBind]:
        """GET the given OIDs in one request (split if needed); one VarBind per OID, in order."""

    @abstractmethod
    async def walk(self, bases: Sequence[Oid], max_repetitions: int) -> dict[Oid, list[VarBind]]:
        """GETBULK-walk several subtrees side by side; every varbind returned lies under its base."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets."""


SessionFactory = Callable[[SnmpTarget], SnmpSession]
"""Builds a session for one device; the driver never knows which engine is behind it."""
