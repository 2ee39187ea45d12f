"""Exception hierarchy for the driver layer.

A device's failure carries a short machine-readable ``reason`` used as a metric label, and a
human message that names what went wrong and where.
"""

from __future__ import annotations


class RackpulseError(Exception):
    """Base of every error rackpulse raises on purpose."""


class ConfigError(RackpulseError):
    """A configuration problem; ``problems`` holds one 'path: message' line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ProfileError(RackpulseError):
    """A device profile is malformed or names something unknown."""


class DeviceError(RackpulseError):
    """A poll failed. ``reason`` is one of REASONS and becomes the ``reason`` metric label."""

    REASONS = frozenset(
        {
            "timeout",
            "connection",
            "exception",
            "protocol",
            "auth",
            "no_such_object",
            "decode",
            "internal",
        }
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown DeviceError reason {reason!r}")
        super().__init__(message)
        self.reason = reason
