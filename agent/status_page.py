"""The status page (``/``) and its JSON twin (``/api/devices``): is my rack healthy, at a glance.

Pure rendering, no I/O: the daemon builds a :class:`StatusSnapshot` and these functions turn it
into a self-refreshing HTML page (no front-end framework, no external assets) or a JSON document.
Everything that came from a device or the config is HTML-escaped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from agent.results import DeviceState

SCHEMA = "rackpulse.devices/1"
REFRESH_SECONDS = 5

# Sort order in the table: problems first.
_STATE_ORDER = {"down": 0, "pending": 1, "up": 2}


@dataclass(slots=True)
class StatusSnapshot:
    """Everything the status page shows, captured at one instant.

    ``key_readings`` holds ``rack_power_watts`` (float or None) and ``hottest_sensor``
    (``{"device", "sensor", "celsius"}`` or None); ``mqtt`` is the MQTT publisher's stats
    (``mqtt_connected``, ``mqtt_spooled_messages``, ...) or None when MQTT is not configured;
    ``scheduler`` holds free-form scheduler health numbers (``lag_p99_seconds``, ...).
    """

    site: str
    rack: str
    agent: str
    version: str
    devices: Sequence[DeviceState]
    mqtt: Mapping[str, Any] | None = None
    key_readings: Mapping[str, Any] = field(default_factory=dict)
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    now: float = field(default_factory=time.time)


def device_state(d: DeviceState) -> str:
    """``up``, ``down``, or ``pending`` (not polled yet)."""
    if d.up:
        return "up"
    return "down" if d.polls or d.last_poll else "pending"


def _counts(devices: Sequence[DeviceState]) -> dict[str, int]:
    c = {"up": 0, "down": 0, "pending": 0}
    for d in devices:
        c[device_state(d)] += 1
    return c


def _iso(t: float) -> str | None:
    if not t:
        return None
    ms = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def _age(now: float, t: float) -> float | None:
    return None if not t else round(max(0.0, now - t), 3)


# ------------------------------------------------------------------------------------ JSON


def _device_json(d: DeviceState, now: float) -> dict[str, Any]:
    return {
        "name": d.name,
        "driver": d.driver,
        "profile": d.profile,
        "state": device_state(d),
        "up": d.up,
        "since": _iso(d.since),
        "since_seconds": _age(now, d.since),
        "last_poll": _iso(d.last_poll),
        "last_poll_age_seconds": _age(now, d.last_poll),
        "last_success": _iso(d.last_success),
        "last_success_age_seconds": _age(now, d.last_success),
        "duration_seconds": round(d.duration, 6),
        "reading_count": d.reading_count,
        "polls": d.polls,
        "errors": dict(sorted(d.errors.items())),
        "last_error": d.last_error,
        "last_reason": d.last_reason,
        "info": {
            "vendor": d.info.vendor,
            "model": d.info.model,
            "serial": d.info.serial,
            "firmware": d.info.firmware,
            "profile": d.info.profile,
            "driver": d.info.driver,
        },
        "labels": dict(sorted(d.labels.items())),
    }


def _sorted(devices: Sequence[DeviceState]) -> list[DeviceState]:
    return sorted(devices, key=lambda d: (_STATE_ORDER[device_state(d)], d.name))


def render_json(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The ``/api/devices`` document: the summary plus the same per-device data as the page."""
    s = snapshot
    counts = _counts(s.devices)
    return {
        "schema": SCHEMA,
        "site": s.site,
        "rack": s.rack,
        "agent": s.agent,
        "version": s.version,
        "generated": _iso(s.now),
        "summary": {
            "devices": len(s.devices),
            **counts,
            "healthy": counts["down"] == 0 and counts["pending"] == 0,
            "rack_power_watts": s.key_readings.get("rack_power_watts"),
            "hottest_sensor": s.key_readings.get("hottest_sensor"),
        },
        "mqtt": dict(s.mqtt) if s.mqtt is not None else None,
        "scheduler": dict(s.scheduler),
        "devices": [_device_json(d, s.now) for d in _sorted(s.devices)],
    }


# ------------------------------------------------------------------------------------ HTML


def human_age(seconds: float | None) -> str:
    """``never``, ``3 s ago``, ``4 min ago``, ``2 h ago``, ``3 d ago``."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def human_span(seconds: float | None) -> str:
    """A length of time without 'ago': ``12 s``, ``5 min``, ``3 h``."""
    return human_age(seconds).removesuffix(" ago") if seconds is not None else "-"


def human_duration(seconds: float) -> str:
    """Poll duration: ``42 ms`` or ``1.25 s``."""
    if seconds <= 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def human_power(watts: float | None) -> str:
    """``820 W`` or ``4.21 kW``; an en dash when unknown."""
    if watts is None:
        return "\u2013"
    if abs(watts) >= 1000:
        return f"{watts / 1000:.2f} kW"
    return f"{watts:.0f} W"


def human_bytes(n: float) -> str:
    """``512 B``, ``3.4 KiB``, ``12.0 MiB``."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


_CSS = """
:root { --ok:#1a7f37; --bad:#cf222e; --wait:#9a6700; --fg:#1f2328; --muted:#59636e; --line:#d1d9e0;
        --bg:#ffffff; --panel:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 14px 24px; border-bottom: 1px solid var(--line); display: flex; gap: 16px;
         align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .where { color: var(--muted); }
.banner { margin: 16px 24px; padding: 16px 20px; border-radius: 8px; color: #fff;
          display: flex; gap: 12px 32px; flex-wrap: wrap; align-items: center; }
.banner.ok { background: var(--ok); } .banner.bad { background: var(--bad); }
.banner.wait { background: var(--wait); }
.banner .verdict { font-size: 22px; font-weight: 600; }
.banner .kv { display: flex; flex-direction: column; }
.banner .k { font-size: 12px; opacity: .85; text-transform: uppercase; letter-spacing: .04em; }
.banner .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: 0 24px 16px; width: calc(100% - 48px); }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; font-size: 12px; color: var(--muted);
     text-transform: uppercase; letter-spacing: .04em; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name, td.drv { font-weight: 600; white-space: nowrap; }
td.drv { font-weight: normal; }
td .sub { color: var(--muted); font-size: 12px; }
td.err { color: var(--bad); font-family: ui-monospace, monospace; font-size: 12px; word-break: break-word; }
.pill { display: inline-block; min-width: 64px; text-align: center; padding: 2px 8px; border-radius: 10px;
        font-weight: 600; font-size: 12px; color: #fff; }
.pill.up { background: var(--ok); } .pill.down { background: var(--bad); }
.pill.pending { background: var(--wait); }
footer { margin: 0 24px 24px; color: var(--muted); font-size: 12px; }
footer a { color: inherit; }
.empty { margin: 0 24px; color: var(--muted); }
"""


def _kv(key: str, value: str, title: str = "") -> str:
    t = f' title="{escape(title)}"' if title else ""
    return f'<div class="kv"{t}><span class="k">{escape(key)}</span><span class="v">{escape(value)}</span></div>'


def _mqtt_text(mqtt: Mapping[str, Any] | None) -> str:
    if mqtt is None:
        return "not configured"
    text = "connected" if mqtt.get("mqtt_connected") else "disconnected"
    spooled = int(mqtt.get("mqtt_spooled_messages") or 0)
    if spooled:
        text += f", {spooled} spooled ({human_bytes(float(mqtt.get('mqtt_spool_bytes') or 0))})"
    return text


def _hottest_text(hot: Mapping[str, Any] | None) -> tuple[str, str]:
    if not hot:
        return "\u2013", ""
    return f"{float(hot['celsius']):.1f} \u00b0C", f"{hot.get('device', '?')} / {hot.get('sensor', '?')}"


def _row(d: DeviceState, now: float) -> str:
    state = device_state(d)
    since = _age(now, d.since)
    state_title = f"{state} for {human_span(since)}" if since is not None else state
    errors = sum(d.errors.values())
    err = d.last_error if not d.up and d.last_error else ""
    if err and d.last_reason:
        err = f"[{d.last_reason}] {err}"
    info = " ".join(x for x in (d.info.vendor, d.info.model) if x)
    poll_title = _iso(d.last_poll) or "never polled"
    return (
        "<tr>"
        f'<td class="name">{escape(d.name)}'
        + (f'<div class="sub">{escape(info)}</div>' if info else "")
        + "</td>"
        f'<td class="drv">{escape(d.driver)}<div class="sub">{escape(d.profile)}</div></td>'
        f'<td><span class="pill {state}" title="{escape(state_title)}">{state}</span>'
        f'<div class="sub">{escape(human_span(since)) if since is not None else ""}</div></td>'
        f'<td class="num" title="{escape(poll_title)}">{escape(human_age(_age(now, d.last_poll)))}</td>'
        f'<td class="num">{escape(human_duration(d.duration))}</td>'
        f'<td class="num">{d.reading_count}</td>'
        f'<td class="num">{errors} / {d.polls}</td>'
        f'<td class="err">{escape(err)}</td>'
        "</tr>"
    )


def render_html(snapshot: StatusSnapshot) -> str:
    """The status page: a verdict banner (up/down, rack power, hottest sensor, MQTT) and a device table."""
    s = snapshot
    c = _counts(s.devices)
    if c["down"]:
        tone, verdict = "bad", f"{c['down']} of {len(s.devices)} down"
    elif c["pending"]:
        tone, verdict = "wait", f"{c['pending']} waiting for first poll"
    elif s.devices:
        tone, verdict = "ok", "All devices up"
    else:
        tone, verdict = "wait", "No devices configured"
    hot_value, hot_where = _hottest_text(s.key_readings.get("hottest_sensor"))
    mark = {"bad": "\u2716", "ok": "\u2714"}.get(tone, "\u2026")
    title = f"{mark} {s.site}/{s.rack}"
    banner = (
        f'<section class="banner {tone}" id="summary">'
        f'<div class="verdict">{escape(verdict)}</div>'
        + _kv("Up / down", f"{c['up']} / {c['down']}" + (f" (+{c['pending']} pending)" if c["pending"] else ""))
        + _kv("Rack power", human_power(s.key_readings.get("rack_power_watts")))
        + _kv("Hottest sensor", hot_value + (f" \u00b7 {hot_where}" if hot_where else ""))
        + _kv("MQTT", _mqtt_text(s.mqtt))
        + "</section>"
    )
    rows = "".join(_row(d, s.now) for d in _sorted(s.devices))
    table = (
        '<table id="devices"><thead><tr><th>Device</th><th>Driver / profile</th><th>State</th>'
        "<th>Last poll</th><th>Duration</th><th>Readings</th><th>Errors / polls</th><th>Last error</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if s.devices
        else '<p class="empty">No devices in the config.</p>'
    )
    lag = s.scheduler.get("lag_p99_seconds")
    lag_text = f" \u00b7 scheduler lag p99 {human_duration(float(lag))}" if lag else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} \u2014 rackpulse</title><style>{_CSS}</style></head><body>"
        f'<header><h1>rackpulse</h1><span class="where">site <b>{escape(s.site)}</b> \u00b7 rack '
        f"<b>{escape(s.rack)}</b> \u00b7 agent {escape(s.agent)}</span></header>"
        f"{banner}{table}"
        f'<footer>rackpulse {escape(s.version)} \u00b7 generated {escape(_iso(s.now) or "")}'
        f"{escape(lag_text)} \u00b7 refreshes every {REFRESH_SECONDS} s \u00b7 "
        '<a href="/metrics">/metrics</a> \u00b7 <a href="/api/devices">/api/devices</a> \u00b7 '
        '<a href="/readyz">/readyz</a></footer>'
        "</body></html>\n"
    )
