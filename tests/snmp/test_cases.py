"""Device-knowledge cases as data: each folder under tests/cases/snmp/ holds

- ``device.yaml``: one ``devices:`` entry (profiles or inline ``oids``; host, port and the
  community are filled in here; a case may ship its own profile YAML next to it),
- ``walk.txt``: the device's raw answers, as ``snmpwalk -On`` output or snmprec lines
  (``oid|tag|value``),
- ``expected.json``: every reading the driver must produce (``readings``: metric, labels, value;
  nothing more, nothing less) and identity fields (``info``).

Adding a case means adding a folder; this one test serves the walk from the simulated agent over
loopback UDP and polls it with the real driver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.base import PollSettings
from drivers.profiles import ProfileLibrary
from drivers.snmp import PLUGIN
from drivers.snmp.config import SnmpDeviceConfig
from drivers.snmp.simulator import SnmpSimulator, load_walk

CASES = Path(__file__).resolve().parent.parent / "cases" / "snmp"


def case_names() -> list[str]:
    names = sorted(p.name for p in CASES.iterdir() if (p / "expected.json").is_file())
    assert names, f"no cases under {CASES}"
    return names


def key(metric: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return metric, tuple(sorted(labels.items()))


@pytest.mark.parametrize("case", case_names())
async def test_case(case: str, sim: SnmpSimulator, tmp_path: Path) -> None:
    folder = CASES / case
    entry: dict[str, Any] = yaml.safe_load((folder / "device.yaml").read_text(encoding="utf-8"))
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    sim.add_static(entry["name"], load_walk(folder / "walk.txt"))
    (tmp_path / "community").write_text(sim.community_for(entry["name"]) + "\n")
    cfg = SnmpDeviceConfig.model_validate({**entry, "host": "127.0.0.1", "port": sim.port,
                                           "community_file": str(tmp_path / "community")})
    driver = PLUGIN.create(cfg, ProfileLibrary([folder]), PollSettings(interval=10, timeout=2, retries=0))
    try:
        res = await driver.poll()
    finally:
        await driver.close()

    got = {key(r.metric, dict(r.labels)): r.value for r in res.readings}
    assert len(got) == len(res.readings), "the same series twice in one poll"
    want = {key(w["metric"], w["labels"]): float(w["value"]) for w in expected["readings"]}
    assert sorted(set(got) - set(want)) == [], "readings the case does not expect"
    assert sorted(set(want) - set(got)) == [], "expected readings that are missing"
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    for field, v in expected.get("info", {}).items():
        assert getattr(res.info, field) == v, field
    assert sim.sets == []
