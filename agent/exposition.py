"""Prometheus exposition built for scale: each device's series are rendered once per poll.

prometheus-client's collector path rebuilds every sample object on each scrape (about 2 s for
50k series). Here a poll renders its device's lines into per-family text fragments, stored by
swapping one dict entry; a scrape only joins fragments family by family. Scrapes run in the HTTP
thread and never touch the event loop. Agent-level metrics (MQTT, scheduler lag, process) still
come from a prometheus-client registry, appended after the device families.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from agent.results import DeviceState, PollOutcome
from drivers.catalog import CATALOG, PREFIX, Kind, MetricDef
from drivers.model import Labels

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def escape(v: str) -> str:
    """Escape a label value for the text and OpenMetrics formats."""
    if "\\" in v or '"' in v or "\n" in v:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return v


def fmt_value(v: float) -> str:
    """Sample value as both formats accept it."""
    if math.isfinite(v):
        return repr(float(v))
    if math.isnan(v):
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


def _headers(d: MetricDef) -> tuple[str, str]:
    """(text-format header, OpenMetrics header) for one family."""
    full = PREFIX + d.name
    if d.kind is Kind.COUNTER:
        base = full.removesuffix("_total")
        return (
            f"# HELP {full} {d.help}\n# TYPE {full} counter\n",
            f"# HELP {base} {d.help}\n# TYPE {base} counter\n",
        )
    if d.name == "device_info":
        base = full.removesuffix("_info")
        return (f"# HELP {full} {d.help}\n# TYPE {full} gauge\n", f"# HELP {base} {d.help}\n# TYPE {base} info\n")
    return (f"# HELP {full} {d.help}\n# TYPE {full} gauge\n",) * 2


_ORDER = list(CATALOG)
_HEADERS = {name: _headers(d) for name, d in CATALOG.items()}
_SAMPLE_NAME = {name: PREFIX + name for name in CATALOG}


# Label sets repeat across devices (outlet 1..48 on every PDU of a profile), so their rendered
# form is cached once for the whole process rather than per device; bounded against label churn.
_SUFFIX_CACHE: dict[Labels, str] = {}
_SUFFIX_CACHE_MAX = 500_000


def label_suffix(labels: Labels) -> str:
    """',k="v",...' for a reading's own labels (cached)."""
    s = _SUFFIX_CACHE.get(labels)
    if s is None:
        s = "".join(f',{k}="{escape(v)}"' for k, v in labels)
        if len(_SUFFIX_CACHE) >= _SUFFIX_CACHE_MAX:
            _SUFFIX_CACHE.clear()
        _SUFFIX_CACHE[labels] = s
    return s


class DeviceBlock:
    """One device's rendered series, per family; ``base`` holds its site/rack/device labels."""

    __slots__ = ("base", "families")

    def __init__(self, base: str) -> None:
        self.base = base            # 'site="dc1",rack="r42",device="pdu-a"' plus extra labels
        self.families: dict[str, str] = {}

    def prefix(self, metric: str, labels: Labels) -> str:
        return f"{_SAMPLE_NAME[metric]}{{{self.base}{label_suffix(labels)}}} "


class PromStore:
    """A ResultListener holding pre-rendered per-device blocks; ``render`` is safe from any thread."""

    def __init__(self, site: str, rack: str, registry: CollectorRegistry | None = None) -> None:
        self.site = site
        self.rack = rack
        self.registry = registry
        self._blocks: dict[str, DeviceBlock] = {}

    def _block(self, st: DeviceState) -> DeviceBlock:
        blk = self._blocks.get(st.name)
        if blk is None:
            labels = {"site": self.site, "rack": self.rack, "device": st.name, **st.labels}
            blk = DeviceBlock(",".join(f'{k}="{escape(v)}"' for k, v in labels.items()))
        return blk

    def on_poll(self, outcome: PollOutcome) -> None:
        st = outcome.state
        blk = self._block(st)
        parts: dict[str, list[str]] = {}
        if outcome.result is not None:
            for r in outcome.result.readings:
                lines = parts.get(r.metric)
                if lines is None:
                    lines = parts[r.metric] = []
                lines.append(blk.prefix(r.metric, r.labels) + fmt_value(r.value))
            requests = fmt_value(outcome.result.requests)
            parts["device_poll_requests"] = [blk.prefix("device_poll_requests", ()) + requests]
        self._device_series(blk, st, parts)
        blk.families = {m: "\n".join(lines) + "\n" for m, lines in parts.items()}
        self._blocks[st.name] = blk  # one atomic swap; the scrape thread sees old or new

    def _device_series(self, blk: DeviceBlock, st: DeviceState, parts: dict[str, list[str]]) -> None:
        p = blk.prefix
        parts["device_up"] = [p("device_up", ()) + ("1.0" if st.up else "0.0")]
        parts["device_poll_duration_seconds"] = [p("device_poll_duration_seconds", ()) + fmt_value(st.duration)]
        if st.last_success:
            parts["device_last_success_timestamp_seconds"] = [
                p("device_last_success_timestamp_seconds", ()) + fmt_value(st.last_success)
            ]
        parts["device_poll_errors_total"] = [
            p("device_poll_errors_total", (("reason", reason),)) + fmt_value(n)
            for reason, n in sorted(st.errors.items())
        ] or [p("device_poll_errors_total", (("reason", "none"),)) + "0.0"]
        i = st.info
        info = (
            ("firmware", i.firmware), ("model", i.model), ("profile", i.profile or st.profile),
            ("serial", i.serial), ("vendor", i.vendor),
        )
        parts["device_info"] = [p("device_info", info) + "1.0"]

    def on_remove(self, device: str) -> None:
        self._blocks.pop(device, None)

    def series_count(self) -> int:
        """Number of device series currently exposed (for tests and the status page)."""
        return sum(f.count("\n") for b in list(self._blocks.values()) for f in b.families.values())

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole exposition in the text format or OpenMetrics."""
        blocks = list(self._blocks.values())
        out: list[str] = []
        hi = 1 if openmetrics else 0
        for name in _ORDER:
            frags = [f for b in blocks if (f := b.families.get(name)) is not None]
            if frags:
                out.append(_HEADERS[name][hi])
                out.extend(frags)
        body = "".join(out).encode()
        if self.registry is not None:
            if openmetrics:
                tail = om_latest(self.registry)
                body += tail
            else:
                body += text_latest(self.registry)
        elif openmetrics:
            body += b"# EOF\n"
        return body


def negotiate(accept: str | None) -> tuple[bool, str]:
    """(use OpenMetrics, content type) from an Accept header."""
    if accept and "application/openmetrics-text" in accept:
        return True, OM_TYPE
    return False, TEXT_TYPE


Renderer = Callable[[bool], bytes]
