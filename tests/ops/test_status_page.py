"""Rendering of the status page and /api/devices from a fixed snapshot."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from agent.results import DeviceState
from agent.status_page import (
    SCHEMA,
    StatusSnapshot,
    device_state,
    human_age,
    human_duration,
    human_power,
    render_html,
    render_json,
)

from .status_fixture import NOW, snapshot


class _Table(HTMLParser):
    """Collects text of each <td> per <tr> in the devices table, and every <script> tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.scripts = 0
        self.meta: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag == "meta":
            self.meta.append(dict(attrs))
        if tag == "tbody":
            self._in_body = True
        if self._in_body and tag == "tr":
            self.rows.append([])
        if self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data + " ")


def _parse(html: str) -> _Table:
    p = _Table()
    p.feed(html)
    p.close()
    return p


def test_banner_answers_is_my_rack_healthy() -> None:
    html = render_html(snapshot())
    assert 'class="banner bad"' in html
    assert "1 of 4 down" in html
    assert "2 / 1 (+1 pending)" in html
    assert "4.21 kW" in html
    assert "31.5 \u00b0C \u00b7 pdu-a / inlet-rear" in html
    assert "disconnected, 37 spooled (51.2 KiB)" in html


def test_self_refreshing_without_script() -> None:
    p = _parse(render_html(snapshot()))
    assert {"http-equiv": "refresh", "content": "5"} in p.meta
    assert p.scripts == 0


def test_table_rows_problems_first() -> None:
    rows = _parse(render_html(snapshot())).rows
    assert [r[0].split()[0] for r in rows] == ["pdu-b", "tor-2", "pdu-a", "tor-1"]
    pdu_b, tor_2, pdu_a, tor_1 = rows
    assert pdu_a == [
        "pdu-a Raritan PX3-5493U-K2", "modbus raritan-px-modbus", "up 2 h", "3 s ago", "42 ms", "58", "2 / 720", "",
    ]
    assert pdu_b[2:7] == ["down 1 min", "1 s ago", "3.00 s", "0", "10 / 700"]
    assert pdu_b[7].startswith("[timeout] no SNMP answer from 10.1.42.12:161 in 3s <script>")
    assert tor_2[2:7] == ["pending", "never", "-", "0", "0 / 0"]
    assert tor_1[3] == "12 s ago"


def test_everything_is_escaped() -> None:
    snap = snapshot()
    snap.site = "<b>dc1</b>"
    snap.devices[0].profile = '"><img src=x onerror=alert(1)>'
    html = render_html(snap)
    assert "<script>" not in html and "<img" not in html and "<b>dc1" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; retries=1" in html
    assert _parse(html).scripts == 0


def test_healthy_and_empty_racks() -> None:
    snap = snapshot()
    snap.devices = [d for d in snap.devices if d.up]
    assert 'class="banner ok"' in render_html(snap) and "All devices up" in render_html(snap)
    snap.devices = []
    snap.mqtt = None
    snap.key_readings = {}
    html = render_html(snap)
    assert "No devices configured" in html and "not configured" in html and "\u2013" in html


def test_json_has_the_same_data() -> None:
    doc = render_json(snapshot())
    json.dumps(doc)  # serializable as is
    assert doc["schema"] == SCHEMA
    assert (doc["site"], doc["rack"], doc["agent"], doc["version"]) == ("dc1", "r42", "rc-r42", "0.1.0")
    assert doc["summary"] == {
        "devices": 4, "up": 2, "down": 1, "pending": 1, "healthy": False, "rack_power_watts": 4213.6,
        "hottest_sensor": {"device": "pdu-a", "sensor": "inlet-rear", "celsius": 31.5},
    }
    assert doc["mqtt"]["mqtt_spooled_messages"] == 37
    by_name = {d["name"]: d for d in doc["devices"]}
    assert [d["name"] for d in doc["devices"]] == ["pdu-b", "tor-2", "pdu-a", "tor-1"]
    b = by_name["pdu-b"]
    assert b["state"] == "down" and b["up"] is False
    assert b["last_poll_age_seconds"] == 1.0 and b["since_seconds"] == 95.0
    assert b["duration_seconds"] == 3.002 and b["reading_count"] == 0
    assert b["errors"] == {"auth": 1, "timeout": 9} and b["last_reason"] == "timeout"
    assert b["last_error"].startswith("no SNMP answer")
    assert by_name["tor-2"]["state"] == "pending" and by_name["tor-2"]["last_poll"] is None
    assert by_name["tor-1"]["labels"] == {"row": "3"}
    assert by_name["pdu-a"]["info"]["model"] == "PX3-5493U-K2"
    assert by_name["pdu-a"]["last_poll"] == "2026-11-18T11:06:36.600Z"


def test_state_and_formatting_helpers() -> None:
    assert device_state(DeviceState("x", "snmp", "p")) == "pending"
    assert device_state(DeviceState("x", "snmp", "p", polls=1)) == "down"
    assert device_state(DeviceState("x", "snmp", "p", up=True, polls=1)) == "up"
    assert [human_age(s) for s in (None, 0.4, 59.9, 60, 3599, 3600, 86400 * 2)] == [
        "never", "0 s ago", "59 s ago", "1 min ago", "59 min ago", "1 h ago", "2 d ago"
    ]
    assert [human_duration(s) for s in (0, 0.0042, 0.5, 1.234)] == ["-", "4 ms", "500 ms", "1.23 s"]
    assert [human_power(w) for w in (None, 0, 820.4, 999.6, 1000, 12345)] == [
        "\u2013", "0 W", "820 W", "1000 W", "1.00 kW", "12.35 kW"
    ]


def test_snapshot_defaults() -> None:
    snap = StatusSnapshot(site="s", rack="r", agent="a", version="v", devices=[])
    assert snap.mqtt is None and snap.key_readings == {} and snap.now > NOW - 10**9
