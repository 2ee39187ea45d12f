"""configs/rackpulse.example.yaml is a valid config: as shipped, with its RTU block uncommented,
and end to end through ``rackpulse check-config`` with its secret files in place."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from agent.config import parse_config
from drivers.profiles import ProfileLibrary

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "rackpulse.example.yaml"
SECRETS = {"mqtt.pass": "s3cret-mqtt", "pdu.community": "pdu-community", "tor.auth": "authpass123",
           "tor.priv": "privpass123", "ca.pem": ""}


def _uncomment_rtu(text: str) -> str:
    out = []
    inside = False
    for line in text.splitlines():
        if line.startswith("  # - name: meter-1"):
            inside = True
        if inside and line.startswith("  # "):
            line = "  " + line[4:]
        out.append(line)
    return "\n".join(out) + "\n"


def test_example_parses() -> None:
    cfg = parse_config(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert (cfg.site, cfg.rack, cfg.top.agent.name) == ("dc1", "r42", "rc-r42")
    assert [(d.name, d.driver, d.profile_names()) for d in cfg.devices] == [
        ("pdu-a", "modbus", ["raritan-px-modbus"]),
        ("pdu-b", "snmp", ["apc-rpdu2"]),
        ("tor-1", "snmp", ["if-mib", "entity-sensor"]),
    ]
    assert cfg.top.mqtt is not None and cfg.top.mqtt.spool.max_bytes == 64 * 1024 * 1024
    assert cfg.settings_for(cfg.devices[2]).interval == 30.0


def test_commented_rtu_device_is_valid_too() -> None:
    text = _uncomment_rtu(EXAMPLE.read_text(encoding="utf-8"))
    cfg = parse_config(text, "example+rtu")
    meter = cfg.devices[-1]
    assert meter.name == "meter-1" and getattr(meter, "serial_port", None) == "/dev/ttyUSB0"


def test_example_names_built_in_profiles() -> None:
    text = _uncomment_rtu(EXAMPLE.read_text(encoding="utf-8"))
    wanted: set[str] = set()
    for d in yaml.safe_load(text)["devices"]:
        wanted.update(d.get("profiles") or [d["profile"]])
    assert wanted - set(ProfileLibrary().names()) == set()


def test_check_config_end_to_end(tmp_path: Path) -> None:
    for name, value in SECRETS.items():
        (tmp_path / name).write_text(value + "\n")
    (tmp_path / "profiles").mkdir()
    text = EXAMPLE.read_text(encoding="utf-8").replace("/etc/rackpulse/", f"{tmp_path}/")
    text = re.sub(r"state_dir: \S+", f"state_dir: {tmp_path / 'state'}", text)
    cfg_path = tmp_path / "rackpulse.yaml"
    cfg_path.write_text(text)
    rackpulse = Path(sys.prefix) / "bin" / "rackpulse"
    proc = subprocess.run([str(rackpulse), "check-config", "-c", str(cfg_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for secret in SECRETS.values():
        if secret:
            assert secret not in proc.stdout + proc.stderr
