"""Counter continuity: unwrap fixed-width device counters and tell wraps from resets.

A 32-bit octet counter wraps every 34 s at 1 Gb/s; Prometheus would read each wrap as a reset and
undercount. We keep a per-series offset so exported counters stay monotonic across wraps, and
treat a device restart (uptime going backwards) as a genuine reset.
"""

from __future__ import annotations

from collections.abc import Hashable


class CounterUnwrapper:
    """Turns raw modular counters into monotonic ones, per series key."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[Hashable, tuple[int, int]] = {}  # key -> (last raw, accumulated offset)

    def reset(self) -> None:
        """Forget every series: the device restarted, so counters legitimately start over."""
        self._state.clear()

    def update(self, key: Hashable, raw: int, bits: int) -> int:
        """Return the unwrapped value for ``raw``, a counter ``bits`` wide.

        A decrease is read as one wrap when ``bits`` is 32 (the only width that wraps in practice);
        64-bit counters that go backwards are a reset, so the series restarts from the raw value.
        """
        prev = self._state.get(key)
        if prev is None:
            self._state[key] = (raw, 0)
            return raw
        last, offset = prev
        if raw < last:
            if bits <= 32:
                offset += 1 << bits
            else:
                offset = 0
        self._state[key] = (raw, offset)
        return raw + offset


def uptime_went_backwards(prev: float | None, now: float) -> bool:
    """True when a device's uptime decreased between polls, i.e. it rebooted."""
    return prev is not None and now < prev
