"""Register codec: raw Modbus payloads to values and back, for every type and word/byte order.

The hot path is :class:`RegisterDecoder`: built once per planned request, it compiles one
``struct.Struct`` that unpacks every plainly laid out field of the request in a single C call
(pad bytes skip the gaps). Only fields in non-default word/byte order, overlapping fields and
bools take a per-field path. No pymodbus conversion helpers run while polling.

Orders: ``word_order: big`` means the most significant 16-bit word comes first on the wire
(Modicon "high word first"); ``byte_order: big`` is the Modbus norm of high byte first inside each
register. ``little`` reverses the words, respectively the two bytes of each word.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from drivers.modbus.profile import TYPE_WIDTH, FieldDef
from drivers.model import Reading

STRUCT_CODE: dict[str, str] = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
    "float32": "f", "float64": "d", "bool": "H",
}
FLOAT_TYPES = frozenset({"float32", "float64"})
INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(1 << 15), (1 << 15) - 1), "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1), "uint64": (0, (1 << 64) - 1),
    "bool": (0, 1),
}


def byte_permutation(width: int, word_order: str, byte_order: str) -> tuple[int, ...] | None:
    """Index map so that ``natural[k] == wire[perm[k]]`` (natural = big-endian value bytes).

    Returns None when the wire layout already is the natural one.
    """
    perm = []
    for k in range(width * 2):
        word, half = divmod(k, 2)
        wire_word = word if word_order == "big" or width == 1 else width - 1 - word
        wire_half = half if byte_order == "big" else 1 - half
        perm.append(wire_word * 2 + wire_half)
    t = tuple(perm)
    return None if t == tuple(range(width * 2)) else t


def _is_natural(f: FieldDef) -> bool:
    return byte_permutation(f.width, f.word_order, f.byte_order) is None and f.type != "bool"


class _Slow:
    """A field decoded on its own: reordered bytes, bools, or overlapping another field."""

    __slots__ = ("is_bool", "meta", "nbytes", "offset", "perm", "struct")

    def __init__(
        self, typ: str, width: int, word_order: str, byte_order: str, offset: int, meta: tuple[Any, ...]
    ) -> None:
        self.offset = offset
        self.nbytes = width * 2
        self.perm = byte_permutation(width, word_order, byte_order)
        self.struct = struct.Struct(">" + STRUCT_CODE[typ])
        self.is_bool = typ == "bool"
        self.meta = meta

    def raw(self, payload: bytes) -> float | int:
        if self.perm is None:
            v = self.struct.unpack_from(payload, self.offset)[0]
        else:
            chunk = payload[self.offset : self.offset + self.nbytes]
            v = self.struct.unpack(bytes([chunk[i] for i in self.perm]))[0]
        return (1 if v else 0) if self.is_bool else v


def _meta(f: FieldDef) -> tuple[Any, ...]:
    # (metric, labels, kind, scale, offset, sentinels, check_finite): what a value needs to become a Reading
    return (f.metric, f.labels, f.kind, f.scale, f.offset, f.sentinels, f.type in FLOAT_TYPES)


class RegisterDecoder:
    """Decodes the payload of one holding/input register read into readings.

    ``start`` is the request's first wire address and ``count`` its register count; every field
    must lie inside that range.
    """

    __slots__ = ("count", "fast", "fields", "slow", "start", "struct")

    def __init__(self, start: int, count: int, fields: Sequence[FieldDef]) -> None:
        self.start = start
        self.count = count
        self.fields = tuple(sorted(fields, key=lambda f: f.address))
        fmt = [">"]
        pos = 0
        fast: list[tuple[Any, ...]] = []
        slow: list[_Slow] = []
        for f in self.fields:
            off = (f.address - start) * 2
            if off < 0 or off + f.width * 2 > count * 2:
                raise ValueError(f"{f.origin}: address {f.address} lies outside the read {start}+{count}")
            if _is_natural(f) and off >= pos:
                if off > pos:
                    fmt.append(f"{off - pos}x")
                fmt.append(STRUCT_CODE[f.type])
                pos = off + f.width * 2
                fast.append(_meta(f))
            else:
                slow.append(_Slow(f.type, f.width, f.word_order, f.byte_order, off, _meta(f)))
        self.struct = struct.Struct("".join(fmt))
        self.fast = tuple(fast)
        self.slow = tuple(slow)

    def decode(self, payload: bytes, device: str, ts: float, out: list[Reading]) -> int:
        """Append a Reading per field whose value is not a sentinel/NaN; return how many were dropped."""
        dropped = 0
        isfinite = math.isfinite
        for (metric, labels, kind, scale, offset, sentinels, check), raw in zip(
            self.fast, self.struct.unpack_from(payload), strict=True
        ):
            if (sentinels and raw in sentinels) or (check and not isfinite(raw)):
                dropped += 1
                continue
            out.append(Reading(device, metric, labels, raw * scale + offset, kind, ts))
        for s in self.slow:
            raw = s.raw(payload)
            metric, labels, kind, scale, offset, sentinels, check = s.meta
            if (sentinels and raw in sentinels) or (check and not isfinite(raw)):
                dropped += 1
                continue
            out.append(Reading(device, metric, labels, raw * scale + offset, kind, ts))
        return dropped


class BitDecoder:
    """Decodes the bits of one coil/discrete-input read into readings (1.0 / 0.0, then scale/offset)."""

    __slots__ = ("count", "items", "start")

    def __init__(self, start: int, count: int, fields: Sequence[FieldDef]) -> None:
        self.start = start
        self.count = count
        items = []
        for f in sorted(fields, key=lambda f: f.address):
            if not start <= f.address < start + count:
                raise ValueError(f"{f.origin}: bit {f.address} lies outside the read {start}+{count}")
            items.append((f.address - start, _meta(f)))
        self.items = tuple(items)

    def decode(self, bits: Sequence[bool], device: str, ts: float, out: list[Reading]) -> int:
        """Append a Reading per field; returns the number dropped as sentinels."""
        dropped = 0
        for pos, (metric, labels, kind, scale, offset, sentinels, _check) in self.items:
            raw = 1 if bits[pos] else 0
            if sentinels and raw in sentinels:
                dropped += 1
                continue
            out.append(Reading(device, metric, labels, raw * scale + offset, kind, ts))
        return dropped

    def decode_packed(self, packed: bytes, device: str, ts: float, out: list[Reading]) -> int:
        """As :meth:`decode`, from the answer's bytes as sent (8 bits a byte, lowest bit first)."""
        dropped = 0
        for pos, (metric, labels, kind, scale, offset, sentinels, _check) in self.items:
            raw = packed[pos >> 3] >> (pos & 7) & 1
            if sentinels and raw in sentinels:
                dropped += 1
                continue
            out.append(Reading(device, metric, labels, raw * scale + offset, kind, ts))
        return dropped


def registers_to_bytes(registers: Sequence[int]) -> bytes:
    """Wire payload for a list of 16-bit registers (each big-endian, as Modbus sends them)."""
    return struct.pack(f">{len(registers)}H", *registers)


def decode_number(typ: str, registers: Sequence[int], word_order: str = "big", byte_order: str = "big") -> float | int:
    """The raw value of a numeric type from its registers (wire order); not for the hot path."""
    width = TYPE_WIDTH[typ]
    return _Slow(typ, width, word_order, byte_order, 0, ()).raw(registers_to_bytes(registers[:width]))


def decode_raw(f: FieldDef, registers: Sequence[int]) -> float | int:
    """The raw (unscaled) value of one field from its own registers; a test and tooling helper."""
    return decode_number(f.type, registers, f.word_order, f.byte_order)


def decode_value(f: FieldDef, registers: Sequence[int]) -> float | None:
    """The scaled value of one field from its own registers, or None if it is a sentinel/NaN."""
    out: list[Reading] = []
    RegisterDecoder(f.address, f.width, [f]).decode(registers_to_bytes(registers[: f.width]), "", 0.0, out)
    return out[0].value if out else None


def encode_raw(f: FieldDef, raw: float | int) -> list[int]:
    """Registers (wire order) carrying ``raw`` for field ``f``; the inverse of :func:`decode_raw`."""
    code = STRUCT_CODE[f.type]
    if f.type in FLOAT_TYPES:
        natural = struct.pack(">" + code, float(raw))
    else:
        lo, hi = INT_RANGE[f.type]
        natural = struct.pack(">" + code, max(lo, min(hi, round(raw))))
    perm = byte_permutation(f.width, f.word_order, f.byte_order)
    wire = bytearray(len(natural))
    if perm is None:
        wire[:] = natural
    else:
        for k, i in enumerate(perm):
            wire[i] = natural[k]
    return list(struct.unpack(f">{f.width}H", bytes(wire)))


def encode_value(f: FieldDef, value: float) -> list[int]:
    """Registers carrying the SI ``value`` for field ``f`` (undoing scale and offset)."""
    return encode_raw(f, (value - f.offset) / f.scale)


def decode_string(registers: Sequence[int], byte_order: str = "big") -> str:
    """Text from registers (two ASCII/UTF-8 bytes each), trailing NULs and spaces removed."""
    data = registers_to_bytes(registers)
    if byte_order == "little":
        data = bytes(data[i ^ 1] for i in range(len(data)))
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def encode_string(text: str, width: int, byte_order: str = "big") -> list[int]:
    """Registers carrying ``text``, NUL padded to ``width`` registers (truncated if longer)."""
    data = text.encode("utf-8")[: width * 2].ljust(width * 2, b"\0")
    if byte_order == "little":
        data = bytes(data[i ^ 1] for i in range(len(data)))
    return list(struct.unpack(f">{width}H", data))
