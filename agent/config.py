"""The whole rackpulse config: agent-level settings composed with each driver's device model.

Validation collects every problem as one 'path: message' line, e.g.
``devices[2].registers[0].type: Input should be 'int16', ...``, and never opens a socket.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import Field, ValidationError, field_validator

from drivers.base import Driver, PollSettings
from drivers.config import ByteSize, DeviceConfigBase, Duration, StrictModel, read_secret
from drivers.errors import ConfigError, ProfileError
from drivers.profiles import ProfileLibrary, validation_problems
from drivers.registry import plugins

DEFAULT_PATH = "/etc/rackpulse/rackpulse.yaml"
_NAME = r"^[A-Za-z0-9_.-]+$"


class AgentSettings(StrictModel):
    """The ``agent:`` block: identity and default timing."""

    name: str = Field(default_factory=lambda: os.uname().nodename, pattern=_NAME)
    interval: Duration = 10.0
    timeout: Duration = 3.0
    retries: int = Field(default=1, ge=0, le=10)
    max_concurrency: int = Field(default=64, ge=1, le=10000)
    state_dir: str = "/var/lib/rackpulse"
    log_format: str = Field(default="logfmt", pattern="^(logfmt|json)$")
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")


class PrometheusSettings(StrictModel):
    """The ``prometheus:`` block: where /metrics and the status page listen."""

    listen: str = "0.0.0.0:9847"

    @field_validator("listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{v!r} is not host:port")
        return v

    def address(self) -> tuple[str, int]:
        """(host, port) to bind."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SpoolSettings(StrictModel):
    """Bounds of the on-disk store-and-forward spool."""

    max_bytes: ByteSize = 64 * 1024 * 1024
    max_age: Duration = 86400.0
    replay_rate: float = Field(default=200.0, gt=0, description="messages per second on replay")


class MqttSettings(StrictModel):
    """The ``mqtt:`` block."""

    url: str
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None
    topic_prefix: str = Field(default="rackpulse", pattern=r"^[^#+]+$")
    qos: int = Field(default=1, ge=0, le=2)
    keepalive: Duration = 30.0
    max_inflight: int = Field(default=20, ge=1, le=1000)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ValueError(f"{v!r} must look like mqtt://host:1883 or mqtts://host:8883")
        return v

    def password(self) -> str | None:
        """The broker password from ``password_file`` or ``password_env``."""
        return read_secret(self.password_file, self.password_env, "mqtt password")


class TopConfig(StrictModel):
    """The top level, with devices left raw for their drivers to validate."""

    site: str = Field(pattern=_NAME)
    rack: str = Field(pattern=_NAME)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    mqtt: MqttSettings | None = None
    profile_dirs: list[str] = Field(default_factory=list)
    devices: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Config:
    """A fully validated config: top-level settings plus typed devices."""

    top: TopConfig
    devices: tuple[DeviceConfigBase, ...]
    source: str

    @property
    def site(self) -> str:
        return self.top.site

    @property
    def rack(self) -> str:
        return self.top.rack

    def settings_for(self, dev: DeviceConfigBase) -> PollSettings:
        """The device's effective interval, timeout and retries."""
        a = self.top.agent
        return PollSettings(
            interval=dev.interval or a.interval,
            timeout=dev.timeout or a.timeout,
            retries=a.retries if dev.retries is None else dev.retries,
        )

    def library(self) -> ProfileLibrary:
        """A profile library searching the configured profile_dirs, then the built-ins."""
        return ProfileLibrary(self.top.profile_dirs)

    def build_drivers(self, library: ProfileLibrary | None = None) -> dict[str, Driver]:
        """Instantiate a driver per device (no I/O). Raises ConfigError listing profile problems."""
        lib = library or self.library()
        reg = plugins()
        out: dict[str, Driver] = {}
        problems: list[str] = []
        for i, dev in enumerate(self.devices):
            try:
                out[dev.name] = reg[dev.driver].create(dev, lib, self.settings_for(dev))
            except (ProfileError, ValueError) as e:
                problems.append(f"devices[{i}] ({dev.name}): {e}")
        if problems:
            raise ConfigError(problems)
        return out


def _yaml_error(err: yaml.YAMLError, source: str) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = getattr(err, "problem", None) or str(err)
    return f"{where}: YAML syntax error: {problem}"


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text into a Config; raise ConfigError with one line per problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_error(e, source)]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the config must be a YAML mapping"])
    problems: list[str] = []
    raw_devices = raw.get("devices") or []
    top: TopConfig | None = None
    try:
        top = TopConfig.model_validate({**raw, "devices": raw_devices if isinstance(raw_devices, list) else []})
    except ValidationError as e:
        problems.extend(validation_problems(e))
    if not isinstance(raw_devices, list):
        problems.append("devices: must be a list of devices")
        raw_devices = []
    reg = plugins()
    devices: list[DeviceConfigBase] = []
    seen: set[str] = set()
    for i, d in enumerate(raw_devices):
        where = f"devices[{i}]"
        if not isinstance(d, dict):
            problems.append(f"{where}: must be a mapping with name, driver, ...")
            continue
        drv = d.get("driver")
        if drv not in reg:
            problems.append(f"{where}.driver: {drv!r} is not one of {sorted(reg)}")
            continue
        try:
            dev = reg[drv].config_model.model_validate(d)
        except ValidationError as e:
            problems.extend(validation_problems(e, where))
            continue
        if dev.name in seen:
            problems.append(f"{where}.name: duplicate device name {dev.name!r}")
        seen.add(dev.name)
        devices.append(dev)
    if problems or top is None:
        raise ConfigError(problems)
    return Config(top=top, devices=tuple(devices), source=source)


def default_path() -> str:
    """$RACKPULSE_CONFIG, or /etc/rackpulse/rackpulse.yaml."""
    return os.environ.get("RACKPULSE_CONFIG", DEFAULT_PATH)


def load_config(path: str | Path, check_profiles: bool = True) -> Config:
    """Read and validate a config file; with ``check_profiles`` also build every driver."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{p}: cannot read config: {e.strerror}"]) from None
    cfg = parse_config(text, str(p))
    if check_profiles:
        cfg.build_drivers()
    return cfg


def safe_name(s: str) -> str:
    """A string usable as one MQTT topic level or file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)
