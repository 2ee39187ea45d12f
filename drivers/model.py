"""The normalized reading model shared by every driver and publisher."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.catalog import Kind

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Reading:
    """One normalized value: a catalog metric, its labels (sorted pairs), value in SI units, kind, time."""

    device: str
    metric: str
    labels: Labels
    value: float
    kind: Kind
    timestamp: float


@dataclass(slots=True)
class DeviceInfo:
    """Identity a driver learns about its device; published as device_info and the MQTT meta topic."""

    vendor: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""
    profile: str = ""
    driver: str = ""


@dataclass(slots=True)
class PollResult:
    """What one successful poll returns: readings, identity and wire statistics."""

    readings: list[Reading]
    info: DeviceInfo = field(default_factory=DeviceInfo)
    requests: int = 0


def make_labels(d: dict[str, str]) -> Labels:
    """Canonical label tuple: sorted by name so equal label sets compare and hash equal."""
    return tuple(sorted(d.items()))
