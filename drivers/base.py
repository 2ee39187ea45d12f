"""The driver interface: what the agent's scheduler calls, and what a driver plug-in provides.

A driver's ``poll()`` returns a :class:`PollResult` or raises :class:`DeviceError`. It never
knows about MQTT, Prometheus or the scheduler's timing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

from drivers.config import DeviceConfigBase
from drivers.model import PollResult
from drivers.profiles import ProfileLibrary


@dataclass(frozen=True, slots=True)
class PollSettings:
    """Effective per-device timing, after device overrides are applied to the agent defaults."""

    interval: float
    timeout: float
    retries: int


class Driver(ABC):
    """One polled device. Created without I/O; connects lazily on the first poll."""

    def __init__(self, config: DeviceConfigBase, settings: PollSettings) -> None:
        self.config = config
        self.settings = settings

    @property
    def name(self) -> str:
        """The device's configured name."""
        return self.config.name

    @abstractmethod
    async def poll(self) -> PollResult:
        """Read the device once and return normalized readings, or raise DeviceError."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets; the driver may be polled again afterwards and must reconnect."""


C = TypeVar("C", bound=DeviceConfigBase)


class DriverPlugin(ABC, Generic[C]):
    """What a driver package exports under the ``rackpulse.drivers`` entry-point group."""

    name: str
    config_model: type[C]

    @abstractmethod
    def create(self, config: C, library: ProfileLibrary, settings: PollSettings) -> Driver:
        """Build a driver for one device. Raises ProfileError if its profiles do not fit."""

    async def shutdown(self) -> None:
        """Release process-wide resources (shared engines, sockets) when the agent exits."""
