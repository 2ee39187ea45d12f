"""The SNMP wire interface: GET and GETBULK walks returning plain (oid, tag, value) varbinds.

Drivers and profiles only see this small interface, so the transport behind it can be pysnmp
(the reference engine) or the fast codec, without either leaking into profile logic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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


class SnmpSession(ABC):
    """One device's SNMP session. Errors are raised as drivers.errors.DeviceError with a reason."""

    @abstractmethod
    async def get(self, oids: Sequence[Oid]) -> list[VarBind]:
        """GET the given OIDs in one request (split if needed); one VarBind per OID, in order."""

    @abstractmethod
    async def walk(self, bases: Sequence[Oid], max_repetitions: int) -> dict[Oid, list[VarBind]]:
        """GETBULK-walk several subtrees side by side; every varbind returned lies under its base."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets."""
