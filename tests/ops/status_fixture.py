"""A status snapshot of a small, partly broken rack, shared by the rendering and browser tests."""

from __future__ import annotations

from agent.results import DeviceState
from agent.status_page import StatusSnapshot
from drivers.model import DeviceInfo

NOW = 1_795_000_000.0  # fixed, so ages render the same every run


def snapshot() -> StatusSnapshot:
    """pdu-a up, pdu-b down with a hostile error string, tor-1 up, tor-2 not polled yet."""
    devices = [
        DeviceState(
            name="pdu-a", driver="modbus", profile="raritan-px-modbus", up=True, since=NOW - 7200,
            last_poll=NOW - 3.4, last_success=NOW - 3.4, duration=0.042, reading_count=58, polls=720,
            errors={"timeout": 2},
            info=DeviceInfo(vendor="Raritan", model="PX3-5493U-K2", serial="QJE1234", firmware="4.2.10",
                            profile="raritan-px-modbus", driver="modbus"),
        ),
        DeviceState(
            name="pdu-b", driver="snmp", profile="apc-rpdu2", up=False, since=NOW - 95,
            last_poll=NOW - 1.0, last_success=NOW - 96, duration=3.002, reading_count=0, polls=700,
            errors={"timeout": 9, "auth": 1}, last_reason="timeout",
            last_error="no SNMP answer from 10.1.42.12:161 in 3s <script>alert('x')</script> & retries=1",
            info=DeviceInfo(vendor="APC", model="AP8853", profile="apc-rpdu2", driver="snmp"),
        ),
        DeviceState(
            name="tor-1", driver="snmp", profile="if-mib+entity-sensor", up=True, since=NOW - 86400 * 3,
            last_poll=NOW - 12.0, last_success=NOW - 12.0, duration=0.31, reading_count=612, polls=240,
            info=DeviceInfo(vendor="Arista", model="DCS-7050SX3-48YC8"),
            labels={"row": "3"},
        ),
        DeviceState(name="tor-2", driver="snmp", profile="if-mib", up=False),
    ]
    return StatusSnapshot(
        site="dc1", rack="r42", agent="rc-r42", version="0.1.0", devices=devices,
        mqtt={"mqtt_connected": False, "mqtt_published_messages_total": 10234, "mqtt_spooled_messages": 37,
              "mqtt_spool_bytes": 52_480, "mqtt_dropped_messages_total": {}},
        key_readings={"rack_power_watts": 4213.6,
                      "hottest_sensor": {"device": "pdu-a", "sensor": "inlet-rear", "celsius": 31.5}},
        scheduler={"lag_p50_seconds": 0.0008, "lag_p99_seconds": 0.0042, "missed_deadlines": 0},
        now=NOW,
    )
