"""Prometheus rules and scrape config pass promtool; the Grafana dashboard is valid and names real metrics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.catalog import CATALOG, PREFIX

from .opsutil import require_binary

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "configs" / "prometheus" / "rackpulse.rules.yml"
PROM_CONFIG = REPO / "configs" / "prometheus" / "prometheus.yml"
RULE_TESTS = Path(__file__).parent / "prometheus" / "rackpulse.rules.test.yml"
DASHBOARD = REPO / "configs" / "grafana" / "rackpulse.json"

# Agent-level metrics (agent/daemon.py), next to the device catalog.
AGENT_METRICS = {
    "agent_build_info", "mqtt_connected", "mqtt_published_messages_total", "mqtt_spooled_messages",
    "mqtt_spool_bytes", "mqtt_dropped_messages_total", "scheduler_lag_seconds",
}
KNOWN = {PREFIX + n for n in CATALOG} | {PREFIX + n for n in AGENT_METRICS}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"\brackpulse_[a-z0-9_]+")


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def _unknown_metrics(text: str) -> set[str]:
    out = set()
    for name in METRIC_RE.findall(text):
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in KNOWN:
                base = name.removesuffix(suffix)
        if base not in KNOWN:
            out.add(name)
    return out


def test_promtool_check_rules() -> None:
    proc = _promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_check_config() -> None:
    proc = _promtool("check", "config", str(PROM_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rackpulse.rules.yml" in proc.stdout  # the rule file is found and checked too


def test_promtool_rule_unit_tests() -> None:
    proc = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_unit_tests_cover_every_alert() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        a["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for a in t.get("alert_rule_test", [])
        if a.get("exp_alerts")
    }
    assert alerts - tested == set(), "alerts without a firing test case"


def test_rules_name_only_real_metrics() -> None:
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert _unknown_metrics("\n".join(exprs)) == set()


# ------------------------------------------------------------------------- Grafana


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def _targets(dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_has_a_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", p["title"]
    for name in ("site", "rack", "device"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_dashboard_covers_the_brief(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(e for _, e in _targets(dashboard))
    for needle in (
        "rackpulse_inlet_power_watts", "rackpulse_outlet_power_watts", "rate(rackpulse_port_receive_bytes_total",
        "rackpulse_device_up", "rackpulse_device_poll_duration_seconds", "rackpulse_mqtt_spooled_messages",
        "rackpulse_mqtt_spool_bytes",
    ):
        assert needle in exprs, needle


def test_dashboard_names_only_real_metrics(dashboard: dict[str, Any]) -> None:
    assert _unknown_metrics(json.dumps(dashboard)) == set()


def test_dashboard_layout(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_queries_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses every panel query, with Grafana's variables filled in as Grafana would."""
    subst = {"$__rate_interval": "1m", "$__interval": "1m", "$site": ".*", "$rack": ".*", "$device": ".*"}
    rules = []
    for i, (title, expr) in enumerate(_targets(dashboard)):
        for k, v in subst.items():
            expr = expr.replace(k, v)
        assert "$" not in expr, f"{title}: unknown variable in {expr}"
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), \w+\)", v["query"]["query"])
            assert inner, v["query"]
            rules.append({"record": f"dashboard:var_{v['name']}", "expr": inner.group(1).replace("$site", ".*")
                          .replace("$rack", ".*")})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = _promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
