"""The pre-rendered exposition parses in both formats, passes promtool and drops stale series."""

from __future__ import annotations

import shutil
import subprocess
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from agent.exposition import PromStore
from agent.results import DeviceState, PollOutcome
from drivers.catalog import Kind
from drivers.errors import DeviceError
from drivers.model import DeviceInfo, PollResult, Reading, make_labels


def _outcome(name: str, up: bool = True) -> PollOutcome:
    st = DeviceState(name=name, driver="modbus", profile="raritan-px-modbus", up=up, polls=1,
                     last_success=time.time() if up else 0.0, labels={"row": "3"},
                     info=DeviceInfo(vendor="Raritan", model='PX4 "x"', serial="S1"))
    if not up:
        st.errors = {DeviceError("timeout", "t").reason: 2}
        return PollOutcome(st, None, time.time(), True)
    rs = [
        Reading(name, "inlet_power_watts", make_labels({"inlet": "1", "phase": ""}), 1220.5, Kind.GAUGE, 0),
        Reading(name, "outlet_energy_joules_total", make_labels({"outlet": "1", "outlet_name": 'we"ird\\n'}),
                3.6e6, Kind.COUNTER, 0),
        Reading(name, "sensor_temperature_celsius", make_labels({"sensor": "t1"}), float("nan"), Kind.GAUGE, 0),
    ]
    return PollOutcome(st, PollResult(rs, st.info, 3), time.time(), True)


def test_text_and_openmetrics_parse() -> None:
    store = PromStore("dc1", "r42")
    store.on_poll(_outcome("pdu-a"))
    store.on_poll(_outcome("pdu-b"))
    text = store.render(False).decode()
    fams = {f.name: f for f in text_parse(text)}
    power = fams["rackpulse_inlet_power_watts"]
    assert {s.labels["device"] for s in power.samples} == {"pdu-a", "pdu-b"}
    assert power.samples[0].labels["site"] == "dc1" and power.samples[0].labels["row"] == "3"
    energy = fams["rackpulse_outlet_energy_joules"]
    assert energy.type == "counter" and energy.samples[0].labels["outlet_name"] == 'we"ird\\n'
    om = store.render(True).decode()
    assert om.endswith("# EOF\n")
    ofams = {f.name: f for f in om_parse(om)}
    assert ofams["rackpulse_device"].type == "info"
    assert ofams["rackpulse_device"].samples[0].labels["model"] == 'PX4 "x"'
    assert ofams["rackpulse_outlet_energy_joules"].samples[0].value == 3.6e6


def test_promtool_accepts_output() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    store = PromStore("dc1", "r42")
    for i in range(5):
        store.on_poll(_outcome(f"pdu-{i}"))
    out = subprocess.run([promtool, "check", "metrics"], input=store.render(False), capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()


def test_down_device_keeps_only_device_series() -> None:
    store = PromStore("dc1", "r42")
    store.on_poll(_outcome("pdu-a"))
    store.on_poll(_outcome("pdu-a", up=False))
    text = store.render(False).decode()
    assert "rackpulse_inlet_power_watts" not in text
    assert 'rackpulse_device_up{site="dc1",rack="r42",device="pdu-a",row="3"} 0.0' in text
    errors = 'rackpulse_device_poll_errors_total{site="dc1",rack="r42",device="pdu-a",row="3",reason="timeout"}'
    assert errors + " 2.0" in text
    store.on_remove("pdu-a")
    assert "pdu-a" not in store.render(False).decode()
