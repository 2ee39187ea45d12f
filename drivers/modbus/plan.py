"""Request planning: coalesce register fields into the fewest Modbus read requests.

Fields are grouped per function code and sorted by address; a greedy sweep extends the current
request while the next field starts at most ``max_gap`` registers after the current end and the
request stays within ``max_registers`` (125 registers for FC03/FC04, 2000 bits for FC01/FC02).
For intervals in sorted order this greedy choice is optimal: no plan under the same two limits
needs fewer requests. Reading through a gap costs two bytes per register on the wire, far less
than the round trip of another request; but some devices reject reads that touch undefined
registers, which is why the gap is bounded and configurable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MAX_REGISTERS = 125  # FC03/FC04 limit from the Modbus spec
MAX_BITS = 2000  # FC01/FC02 limit
BIT_FUNCTIONS = frozenset({"coil", "discrete"})
FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class Span(Protocol):
    """Anything with a function, a 0-based address and a width (registers, or 1 bit)."""

    @property
    def function(self) -> str: ...

    @property
    def address(self) -> int: ...

    @property
    def width(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """One request: ``count`` registers (or bits) from ``address`` with the given function."""

    function: str
    address: int
    count: int
    items: tuple[Span, ...]

    @property
    def function_code(self) -> int:
        """The Modbus function code of this read (1-4)."""
        return FUNCTION_CODES[self.function]

    def describe(self) -> str:
        """Short form for error messages, e.g. ``holding 32768+100``."""
        return f"{self.function} {self.address}+{self.count}"


def plan_reads(
    items: Iterable[Span], *, max_registers: int = MAX_REGISTERS, max_gap: int = 8, max_bits: int = MAX_BITS
) -> list[PlannedRead]:
    """Return the requests covering every item, in function-code then address order.

    ``max_gap`` is in registers; for coils and discrete inputs it is scaled by 16 (one register's
    worth of bits). Raises ValueError if a single item is wider than one request allows.
    """
    if not 1 <= max_registers <= MAX_REGISTERS:
        raise ValueError(f"max_registers must be 1..{MAX_REGISTERS}, not {max_registers}")
    if max_gap < 0:
        raise ValueError("max_gap must not be negative")
    by_fn: dict[str, list[Span]] = {}
    for it in items:
        by_fn.setdefault(it.function, []).append(it)
    out: list[PlannedRead] = []
    for fn in sorted(by_fn, key=lambda f: FUNCTION_CODES[f]):
        bits = fn in BIT_FUNCTIONS
        limit = max_bits if bits else max_registers
        gap = max_gap * 16 if bits else max_gap
        group = sorted(by_fn[fn], key=lambda s: (s.address, s.width))
        start = end = -1
        members: list[Span] = []
        for it in group:
            if it.width > limit:
                raise ValueError(f"{fn} {it.address}: {it.width} registers exceed one request ({limit})")
            it_end = it.address + it.width
            if members and it.address - end <= gap and max(end, it_end) - start <= limit:
                end = max(end, it_end)
                members.append(it)
                continue
            if members:
                out.append(PlannedRead(fn, start, end - start, tuple(members)))
            start, end, members = it.address, it_end, [it]
        if members:
            out.append(PlannedRead(fn, start, end - start, tuple(members)))
    return out
