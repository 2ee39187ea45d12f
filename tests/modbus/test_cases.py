"""Device-knowledge cases as data: each folder under tests/cases/modbus/ holds

- ``device.yaml``: one ``devices:`` entry (a profile name or an inline register map; host and port
  are filled in here),
- ``registers.json``: the raw registers the device answers, by function and start address
  (``unit_id``, then ``coil``/``discrete`` bit lists and ``holding``/``input`` register lists, as
  ints or "0x..." strings),
- ``expected.json``: the readings the driver must produce (``readings``), series it must drop
  (``absent``), the request count and identity (``info``).

Adding a case means adding a folder; this one test serves the registers from a pymodbus
``SimDevice`` over loopback TCP and polls them with the real driver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.base import PollSettings
from drivers.modbus import PLUGIN
from drivers.modbus.config import ModbusDeviceConfig
from drivers.model import make_labels
from drivers.profiles import ProfileLibrary

CASES = Path(__file__).resolve().parent.parent / "cases" / "modbus"
FUNCTIONS = ("coil", "discrete", "holding", "input")  # SimDevice's 4-tuple order


def case_names() -> list[str]:
    names = sorted(p.name for p in CASES.iterdir() if (p / "expected.json").is_file())
    assert names, f"no cases under {CASES}"
    return names


def _word(v: int | str) -> int:
    n = int(v, 0) if isinstance(v, str) else int(v)
    assert 0 <= n <= 0xFFFF, f"register value {v!r} is not 16-bit"
    return n


def sim_device(dump: dict[str, Any]) -> SimDevice:
    """A SimDevice answering exactly the dumped registers (anything else is exception 2)."""
    blocks: list[list[SimData]] = []
    for fn in FUNCTIONS:
        entries = dump.get(fn, {})
        block = []
        for addr, values in entries.items():
            if fn in ("coil", "discrete"):
                block.append(SimData(address=int(addr, 0), values=[bool(b) for b in values], datatype=DataType.BITS))
            else:
                block.append(SimData(address=int(addr, 0), values=[_word(v) for v in values],
                                     datatype=DataType.REGISTERS))
        if not block:  # every block must exist; one undefined register answers exception 2
            block = ([SimData(address=65520, count=16, values=False, datatype=DataType.BITS)]
                     if fn in ("coil", "discrete") else [SimData(address=65535, datatype=DataType.INVALID)])
        blocks.append(block)
    return SimDevice(id=int(dump.get("unit_id", 1)), simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))


@pytest.mark.parametrize("case", case_names())
async def test_case(case: str) -> None:
    folder = CASES / case
    entry = yaml.safe_load((folder / "device.yaml").read_text(encoding="utf-8"))
    dump = json.loads((folder / "registers.json").read_text(encoding="utf-8"))
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))

    server = ModbusTcpServer(sim_device(dump), address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        cfg = ModbusDeviceConfig.model_validate({**entry, "host": "127.0.0.1", "port": port})
        # a case folder may carry its own profile YAML next to device.yaml
        driver = PLUGIN.create(cfg, ProfileLibrary([folder]), PollSettings(interval=10, timeout=2, retries=0))
        try:
            result = await driver.poll()
        finally:
            await driver.close()
    finally:
        await server.shutdown()

    got = {(r.metric, r.labels): r for r in result.readings}
    want = {(w["metric"], make_labels(w.get("labels", {}))): w for w in expected["readings"]}
    assert sorted(got) == sorted(want), f"{case}: readings differ"
    for key, w in want.items():
        r = got[key]
        assert r.value == pytest.approx(w["value"], rel=1e-9, abs=1e-12), f"{case}: {key}"
        if "kind" in w:
            assert r.kind.value == w["kind"], f"{case}: {key} kind"
        assert r.device == entry["name"]
    for a in expected.get("absent", []):
        assert (a["metric"], make_labels(a.get("labels", {}))) not in got, f"{case}: {a} should be dropped"
    if "requests" in expected:
        assert result.requests == expected["requests"], f"{case}: request count"
    for k, v in expected.get("info", {}).items():
        assert getattr(result.info, k) == v, f"{case}: info.{k}"
