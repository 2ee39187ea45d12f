"""The register codec against independent encoders: pymodbus's converter and hand-built struct bytes."""

from __future__ import annotations

import math
import struct
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from drivers.catalog import Kind
from drivers.modbus.codec import (
    RegisterDecoder,
    decode_raw,
    decode_string,
    decode_value,
    encode_raw,
    encode_string,
    registers_to_bytes,
)
from drivers.modbus.profile import TYPE_WIDTH, FieldDef
from drivers.model import Reading

DT = ModbusClientMixin.DATATYPE
PM_TYPES = {
    "int16": DT.INT16, "uint16": DT.UINT16, "int32": DT.INT32, "uint32": DT.UINT32,
    "int64": DT.INT64, "uint64": DT.UINT64, "float32": DT.FLOAT32, "float64": DT.FLOAT64,
}
SAMPLES: dict[str, list[float | int]] = {
    "int16": [0, 1, -1, 12345, -32768, 32767],
    "uint16": [0, 1, 0xFFFF, 0x8000, 4242],
    "int32": [0, -1, 2**31 - 1, -(2**31), 123456789, -987654],
    "uint32": [0, 1, 2**32 - 1, 0x12345678, 3_000_000_000],
    "int64": [0, -1, 2**63 - 1, -(2**63), 0x0102030405060708],
    "uint64": [0, 2**64 - 1, 0x0102030405060708, 10**15],
    "float32": [0.0, 230.5, -1.25, 1e-3, 3.0e38],
    "float64": [0.0, 230.123456789, -1e300, 5e-324],
}


def field(typ: str, word_order: str = "big", byte_order: str = "big", scale: float = 1.0, offset: float = 0.0,
          sentinels: frozenset[float | int] = frozenset(), address: int = 0) -> FieldDef:
    return FieldDef("holding", address, TYPE_WIDTH[typ], typ, word_order, byte_order, scale, offset,
                    "inlet_power_watts", Kind.GAUGE, (("inlet", "1"),), sentinels, "test")


def wire_regs(typ: str, value: float | int, word_order: str, byte_order: str) -> list[int]:
    """Hand-built wire registers: struct big-endian bytes, then words reversed / bytes swapped."""
    code = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
            "float32": "f", "float64": "d"}[typ]
    raw = struct.pack(">" + code, value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


@pytest.mark.parametrize("typ", list(PM_TYPES))
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_decode_matches_pymodbus_converter(typ: str, word_order: Literal["big", "little"]) -> None:
    for value in SAMPLES[typ]:
        regs = ModbusClientMixin.convert_to_registers(value, PM_TYPES[typ], word_order=word_order)
        got = decode_raw(field(typ, word_order), regs)
        expect = ModbusClientMixin.convert_from_registers(regs, PM_TYPES[typ], word_order=word_order)
        if typ.startswith("float"):
            assert got == pytest.approx(value, rel=1e-6)
        else:
            assert got == value
        assert got == expect


@pytest.mark.parametrize("typ", list(PM_TYPES))
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_decode_and_encode_match_hand_built_bytes(typ: str, word_order: str, byte_order: str) -> None:
    f = field(typ, word_order, byte_order)
    for value in SAMPLES[typ]:
        regs = wire_regs(typ, value, word_order, byte_order)
        got = decode_raw(f, regs)
        if typ == "float32":
            assert got == struct.unpack(">f", struct.pack(">f", value))[0]
        else:
            assert got == value
        assert encode_raw(f, value) == regs


def test_float32_big_endian_known_words() -> None:
    # 230.5 V as IEEE float32 is 0x43668000: high word 0x4366 first (Xerus/SDM630 layout).
    assert wire_regs("float32", 230.5, "big", "big") == [0x4366, 0x8000]
    assert decode_raw(field("float32"), [0x4366, 0x8000]) == 230.5
    assert decode_raw(field("float32", "little"), [0x8000, 0x4366]) == 230.5


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from(["big", "little"]))
def test_int32_roundtrip_any_value(v: int, wo: Literal["big", "little"]) -> None:
    regs = ModbusClientMixin.convert_to_registers(v, DT.INT32, word_order=wo)
    assert decode_raw(field("int32", wo), regs) == v


@given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
def test_float32_roundtrip_any_value(v: float, wo: Literal["big", "little"]) -> None:
    regs = ModbusClientMixin.convert_to_registers(v, DT.FLOAT32, word_order=wo)
    assert decode_raw(field("float32", wo), regs) == v


def test_scale_offset_and_sentinels() -> None:
    f = field("int16", scale=0.1, offset=-40.0, sentinels=frozenset({-32768}))
    assert decode_value(f, [250]) == pytest.approx(-15.0)
    assert decode_value(f, [0x8000]) is None  # -32768 is the "no probe" sentinel
    u = field("uint16", sentinels=frozenset({0xFFFF}))
    assert decode_value(u, [0xFFFF]) is None
    assert decode_value(u, [0xFFFE]) == 0xFFFE


@pytest.mark.parametrize("typ", ["float32", "float64"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_dropped(typ: str, bad: float) -> None:
    f = field(typ)
    assert decode_value(f, wire_regs(typ, bad, "big", "big")) is None


def test_block_decoder_mixes_fast_and_slow_fields() -> None:
    # A request 100+16 with plain fields, a little-endian one, a bool, an overlap and a gap.
    fields = [
        field("float32", address=100),
        field("uint32", "little", address=102),
        field("int16", address=104),
        field("bool", address=105),
        field("uint16", address=105),  # same register as the bool: decoded separately
        field("float64", address=110),
        field("uint64", address=112),  # overlaps float64's last 2 registers
    ]
    regs = [0] * 16
    regs[0:2] = wire_regs("float32", 1.5, "big", "big")
    regs[2:4] = wire_regs("uint32", 70000, "little", "big")
    regs[4] = 0xFFFE  # int16 -2
    regs[5] = 7
    regs[10:14] = wire_regs("float64", 2.25, "big", "big")
    dec = RegisterDecoder(100, 16, fields)
    out: list[Reading] = []
    assert dec.decode(registers_to_bytes(regs), "d", 1.0, out) == 0
    assert [r.value for r in out][:4] == [1.5, -2.0, 7.0, 2.25]  # struct-fast fields, address order
    slow = sorted(r.value for r in out[4:])
    expected_u64 = int.from_bytes(registers_to_bytes(regs[12:16]), "big")
    assert slow == sorted([70000.0, 1.0, float(expected_u64)])


def test_block_decoder_rejects_field_outside_request() -> None:
    with pytest.raises(ValueError, match="outside the read"):
        RegisterDecoder(100, 2, [field("float32", address=101)])


def test_strings() -> None:
    regs = encode_string("PX4-5493", 8)
    assert len(regs) == 8 and regs[0] == (ord("P") << 8) | ord("X")
    assert decode_string(regs) == "PX4-5493"
    assert decode_string(encode_string("AB", 2, "little"), "little") == "AB"
    assert decode_string([0x4142, 0x2020]) == "AB"  # trailing spaces stripped
