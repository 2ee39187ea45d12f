"""MQTT payloads: the pydantic models that define them, the fast encoders the publisher uses, and
the JSON Schema shipped as ``docs/mqtt-schema.json``.

The publisher encodes with plain ``json.dumps`` on dicts (cheap at 100 messages/s); the models are
the contract, and the tests check that every encoded payload validates against them. Regenerate the
schema file with ``python -m agent.payloads docs/mqtt-schema.json``.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.model import DeviceInfo, Reading

TELEMETRY_SCHEMA = "rackpulse.telemetry/1"
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
_SEPARATORS = (",", ":")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadingPayload(_Payload):
    """One normalized reading inside a telemetry message."""

    metric: str = Field(description="Canonical metric name (the Prometheus name without 'rackpulse_').")
    labels: dict[str, str] = Field(description="Labels beyond site/rack/device, e.g. {'outlet': '3'}.")
    value: float = Field(description="Value in SI base units; never NaN or infinite.")


class TelemetryPayload(_Payload):
    """``{prefix}/{site}/{rack}/{device}/telemetry``: one message per successful poll."""

    schema_: Literal["rackpulse.telemetry/1"] = Field(alias="schema")
    agent: str
    site: str
    rack: str
    device: str
    seq: int = Field(ge=1, description="Per-device sequence number; strictly increasing across restarts.")
    ts: str = Field(pattern=_TS_PATTERN, description="Poll start time, UTC, ISO 8601 with milliseconds.")
    poll_seconds: float = Field(ge=0, description="How long the poll took.")
    readings: list[ReadingPayload]


class StatusPayload(_Payload):
    """``{prefix}/{site}/{rack}/{device}/status`` (retained): is the device answering."""

    state: Literal["up", "down"]
    since: str = Field(pattern=_TS_PATTERN, description="When the device entered this state.")
    error: str | None = Field(description="The last poll error while down; null while up.")


class MetaPayload(_Payload):
    """``{prefix}/{site}/{rack}/{device}/meta`` (retained): what the device is."""

    vendor: str
    model: str
    serial: str
    firmware: str
    profile: str
    driver: str
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels from the config.")


def iso_ts(t: float) -> str:
    """Unix seconds as ``2026-11-30T05:00:00.123Z`` (UTC, milliseconds)."""
    ms = round(t * 1000)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def encode_telemetry(
    *,
    agent: str,
    site: str,
    rack: str,
    device: str,
    seq: int,
    ts: float,
    poll_seconds: float,
    readings: list[Reading],
) -> bytes:
    """The telemetry JSON; readings whose value is not finite are left out (JSON has no NaN)."""
    body = {
        "schema": TELEMETRY_SCHEMA,
        "agent": agent,
        "site": site,
        "rack": rack,
        "device": device,
        "seq": seq,
        "ts": iso_ts(ts),
        "poll_seconds": round(max(poll_seconds, 0.0), 6),
        "readings": [
            {"metric": r.metric, "labels": dict(r.labels), "value": float(r.value)}
            for r in readings
            if math.isfinite(r.value)
        ],
    }
    return json.dumps(body, separators=_SEPARATORS).encode()


def encode_status(up: bool, since: float, error: str | None) -> bytes:
    """The retained status JSON."""
    body = {"state": "up" if up else "down", "since": iso_ts(since), "error": None if up else error}
    return json.dumps(body, separators=_SEPARATORS).encode()


def encode_meta(info: DeviceInfo, labels: dict[str, str], driver: str = "", profile: str = "") -> bytes:
    """The retained meta JSON; ``driver``/``profile`` fill in what the device info leaves empty."""
    body = {
        "vendor": info.vendor,
        "model": info.model,
        "serial": info.serial,
        "firmware": info.firmware,
        "profile": info.profile or profile,
        "driver": info.driver or driver,
        "labels": dict(sorted(labels.items())),
    }
    return json.dumps(body, separators=_SEPARATORS).encode()


def export_schema() -> dict[str, Any]:
    """One JSON Schema document describing every rackpulse MQTT payload, keyed by topic kind."""
    defs: dict[str, Any] = {}
    refs: dict[str, str] = {}
    for key, model in (("telemetry", TelemetryPayload), ("status", StatusPayload), ("meta", MetaPayload)):
        schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
        refs[key] = f"#/$defs/{model.__name__}"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rackpulse.invalid/schemas/mqtt.json",
        "title": "rackpulse MQTT payloads",
        "description": (
            "Payloads on {prefix}/{site}/{rack}/{device}/telemetry, .../status and .../meta. "
            "The agent status topic {prefix}/{site}/{rack}/_agent/{agent}/status carries the plain "
            "strings 'online' or 'offline'. An empty retained payload on status/meta means the "
            "device left the config."
        ),
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "x-topics": refs,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """The schema as the exact text stored in docs/mqtt-schema.json."""
    return json.dumps(export_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the given path, or print it."""
    args = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if args:
        with open(args[0], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
