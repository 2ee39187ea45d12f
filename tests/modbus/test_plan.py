"""Request coalescing: exact request counts for known maps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers.modbus import load_profile
from drivers.modbus.plan import plan_reads
from drivers.profiles import ProfileLibrary


@dataclass(frozen=True)
class Item:
    function: str
    address: int
    width: int


def plan(items: list[tuple[str, int, int]], **kw: int) -> list[str]:
    return [r.describe() for r in plan_reads([Item(*i) for i in items], **kw)]


def test_contiguous_fields_become_one_read() -> None:
    assert plan([("holding", 0, 2), ("holding", 2, 2), ("holding", 4, 2)]) == ["holding 0+6"]


def test_gap_within_max_gap_is_read_through() -> None:
    items = [("holding", 0, 2), ("holding", 10, 2)]  # gap of 8
    assert plan(items, max_gap=8) == ["holding 0+12"]
    assert plan(items, max_gap=7) == ["holding 0+2", "holding 10+2"]
    assert plan(items, max_gap=0) == ["holding 0+2", "holding 10+2"]


def test_request_never_exceeds_max_registers() -> None:
    items = [("input", a, 2) for a in range(0, 300, 2)]  # 300 contiguous registers
    reads = plan_reads([Item(*i) for i in items])
    assert [r.count for r in reads] == [124, 124, 52]  # float pairs never split across requests
    assert all(r.count <= 125 for r in reads)
    assert [r.count for r in plan_reads([Item(*i) for i in items], max_registers=100)] == [100, 100, 100]


def test_functions_are_planned_separately_in_code_order() -> None:
    items = [("input", 0, 2), ("holding", 0, 2), ("coil", 0, 1), ("discrete", 5, 1), ("holding", 2, 2)]
    assert plan(items) == ["coil 0+1", "discrete 5+1", "holding 0+4", "input 0+2"]


def test_bits_merge_up_to_2000() -> None:
    items = [("coil", a, 1) for a in range(0, 2500)]
    assert plan(items) == ["coil 0+2000", "coil 2000+500"]
    # the bit gap is 16 bits per register of max_gap
    assert plan([("coil", 0, 1), ("coil", 129, 1)], max_gap=8) == ["coil 0+130"]
    assert plan([("coil", 0, 1), ("coil", 130, 1)], max_gap=8) == ["coil 0+1", "coil 130+1"]


def test_overlapping_and_unsorted_fields() -> None:
    items = [("holding", 10, 4), ("holding", 0, 2), ("holding", 12, 2), ("holding", 1, 1)]
    assert plan(items) == ["holding 0+14"]


def test_oversized_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="exceed one request"):
        plan([("holding", 0, 126)])


@pytest.mark.parametrize(
    ("profile", "max_gap", "expected"),
    [
        # coil 0+48, inlet block, one read per outlet block (blocks are 256 apart)
        ("raritan-px-modbus", 8, 1 + 1 + 48),
        ("raritan-px-modbus", 0, 1 + 3 + 48 * 3),
        ("eastron-sdm630", 8, 2),
        ("eastron-sdm630", 2, 4),
    ],
)
def test_profile_request_counts(profile: str, max_gap: int, expected: int) -> None:
    p = load_profile(ProfileLibrary(), profile)
    assert len(plan_reads(p.fields, max_gap=max_gap)) == expected


def test_raritan_reads_in_detail() -> None:
    p = load_profile(ProfileLibrary(), "raritan-px-modbus")
    reads = [r.describe() for r in plan_reads(p.fields)]
    assert reads[:4] == ["coil 0+48", "holding 12296+28", "holding 32778+18", "holding 33034+18"]
    assert reads[-1] == f"holding {32778 + 47 * 256}+18"
    eastron = load_profile(ProfileLibrary(), "eastron-sdm630")
    assert [r.describe() for r in plan_reads(eastron.fields)] == ["input 0+18", "input 52+22"]
