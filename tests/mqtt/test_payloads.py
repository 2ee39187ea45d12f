"""Payload encoders against the pydantic models that define docs/mqtt-schema.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.payloads import (
    MetaPayload,
    StatusPayload,
    TelemetryPayload,
    encode_meta,
    encode_status,
    encode_telemetry,
    export_schema,
    iso_ts,
    schema_text,
)
from drivers.catalog import Kind
from drivers.model import DeviceInfo, Reading, make_labels

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "mqtt-schema.json"


def test_shipped_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "docs/mqtt-schema.json is stale: run python -m agent.payloads docs/mqtt-schema.json"
    )
    schema = export_schema()
    assert set(schema["x-topics"]) == {"telemetry", "status", "meta"}
    tele = schema["$defs"]["TelemetryPayload"]
    assert tele["properties"]["schema"]["const"] == "rackpulse.telemetry/1"
    assert set(tele["required"]) == {"schema", "agent", "site", "rack", "device", "seq", "ts", "poll_seconds",
                                     "readings"}


def test_iso_ts_is_utc_milliseconds_with_z() -> None:
    assert iso_ts(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ts(1796015754.1234) == "2026-11-30T05:15:54.123Z"
    assert iso_ts(1796015754.9996) == "2026-11-30T05:15:55.000Z"  # rounds up across the second


def test_telemetry_matches_the_product_example() -> None:
    readings = [
        Reading("pdu-a", "inlet_power_watts", make_labels({"inlet": "1"}), 1220.0, Kind.GAUGE, 0),
        Reading("pdu-a", "inlet_power_watts", make_labels({"inlet": "2"}), math.nan, Kind.GAUGE, 0),
    ]
    raw = encode_telemetry(agent="rc-r42", site="dc1", rack="r42", device="pdu-a", seq=1234,
                           ts=1796014800.123, poll_seconds=0.042, readings=readings)
    assert json.loads(raw) == {
        "schema": "rackpulse.telemetry/1", "agent": "rc-r42", "site": "dc1", "rack": "r42", "device": "pdu-a",
        "seq": 1234, "ts": "2026-11-30T05:00:00.123Z", "poll_seconds": 0.042,
        "readings": [{"metric": "inlet_power_watts", "labels": {"inlet": "1"}, "value": 1220.0}],
    }
    TelemetryPayload.model_validate_json(raw)


def test_status_and_meta_validate() -> None:
    up = StatusPayload.model_validate_json(encode_status(True, 1796014800.0, "stale error"))
    assert (up.state, up.error, up.since) == ("up", None, "2026-11-30T05:00:00.000Z")
    down = StatusPayload.model_validate_json(encode_status(False, 1796014800.0, "refused"))
    assert (down.state, down.error) == ("down", "refused")
    meta = MetaPayload.model_validate_json(
        encode_meta(DeviceInfo(vendor="Raritan", model="PX3"), {"row": "3"}, driver="modbus", profile="px")
    )
    assert (meta.vendor, meta.model, meta.driver, meta.profile, meta.labels) == (
        "Raritan", "PX3", "modbus", "px", {"row": "3"},
    )


def test_models_reject_bad_payloads() -> None:
    good = {"schema": "rackpulse.telemetry/1", "agent": "a", "site": "s", "rack": "r", "device": "d", "seq": 1,
            "ts": "2026-11-30T05:00:00.123Z", "poll_seconds": 0.1, "readings": []}
    TelemetryPayload.model_validate(good)
    for bad in ({"seq": 0}, {"ts": "2026-11-30 05:00:00"}, {"schema": "other/2"}, {"extra": 1}):
        with pytest.raises(ValidationError):
            TelemetryPayload.model_validate({**good, **bad})
