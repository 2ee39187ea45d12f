"""What the scheduler hands to publishers after each poll; publishers never call drivers.

Listeners must be cheap and non-blocking: they run on the event loop right after a poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from drivers.model import DeviceInfo, PollResult


@dataclass(slots=True)
class DeviceState:
    """The latest known state of one device, as the status page and MQTT status topic see it."""

    name: str
    driver: str
    profile: str
    up: bool = False
    since: float = 0.0                # unix time of the last up/down transition
    last_poll: float = 0.0            # unix time the last poll finished
    last_success: float = 0.0
    duration: float = 0.0             # seconds the last poll took
    last_error: str | None = None
    last_reason: str | None = None
    reading_count: int = 0
    polls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    info: DeviceInfo = field(default_factory=DeviceInfo)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PollOutcome:
    """One finished poll: the device's state after it, and the result if it succeeded."""

    state: DeviceState
    result: PollResult | None
    started: float      # unix time the poll started
    changed: bool       # the up/down state changed with this poll


class ResultListener(Protocol):
    """Anything that consumes poll outcomes (Prometheus store, MQTT publisher, status board)."""

    def on_poll(self, outcome: PollOutcome) -> None:
        """Called on the event loop after every poll; must not block."""

    def on_remove(self, device: str) -> None:
        """The device left the config (reload); drop its series and state."""
