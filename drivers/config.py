"""Config building blocks shared by every driver: durations, sizes, secrets and the device base model.

Each driver subclasses :class:`DeviceConfigBase` with its own fields; ``agent/config.py`` composes
those models into the whole config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DUR_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB|k|K|M|G)?\s*$")
_SIZE_UNITS = {
    None: 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "k": 1000, "K": 1024, "M": 1024**2,
    "G": 1024**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
}


def parse_duration(v: Any) -> float:
    """Parse ``500ms``, ``10s``, ``2m``, ``1h`` or a bare number of seconds into seconds."""
    if isinstance(v, bool):
        raise ValueError("expected a duration like '10s'")
    if isinstance(v, int | float):
        return float(v)
    m = _DURATION.match(str(v))
    if not m:
        raise ValueError(f"{v!r} is not a duration; write it like 500ms, 10s, 2m or 1h")
    return float(m.group(1)) * _DUR_UNITS[m.group(2)]


def parse_size(v: Any) -> int:
    """Parse ``64MiB``, ``10MB`` or a bare number of bytes."""
    if isinstance(v, bool):
        raise ValueError("expected a size like '64MiB'")
    if isinstance(v, int):
        return v
    m = _SIZE.match(str(v))
    if not m:
        raise ValueError(f"{v!r} is not a size; write it like 64MiB, 500KB or 1048576")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


def read_secret(file: str | None, env: str | None, what: str) -> str | None:
    """Return a secret from ``file`` (first line, stripped) or the environment variable ``env``.

    Raises ValueError naming the file or variable (never the secret) when it cannot be read.
    """
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ValueError(f"cannot read {what} from {file}: {e.strerror}") from None
    if env:
        val = os.environ.get(env)
        if val is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return val
    return None


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors and instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfigBase(StrictModel):
    """Fields every device has, whatever its driver."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=64)]
    driver: str
    profile: str | None = None
    profiles: list[str] | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_profile_form(self) -> DeviceConfigBase:
        if self.profile and self.profiles:
            raise ValueError("give either 'profile' or 'profiles', not both")
        for k in self.labels:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", k) or k in {"site", "rack", "device"}:
                raise ValueError(f"labels: {k!r} is not a valid extra label name")
        return self

    def profile_names(self) -> list[str]:
        """The profiles this device names, in order (empty when it gives an inline map)."""
        if self.profiles:
            return list(self.profiles)
        return [self.profile] if self.profile else []
