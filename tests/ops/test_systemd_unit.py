"""The shipped unit file: systemd-analyze verify accepts it and rates its hardening "OK" or better."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .opsutil import require_binary

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "rackpulse.service"
INSTALLED_BIN = "/opt/rackpulse/bin/rackpulse"
# systemd's own scale (src/analyze/analyze-security.c): exposure below 5.0 is "OK" or better.
GOOD_RATINGS = {"OK", "SAFE", "PERFECT"}


def _directives(text: str) -> dict[str, list[str]]:
    """Service-section directives (key -> every value, in order), with line continuations joined."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}{key.strip()}", []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def verifiable_unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit with ExecStart pointing at this venv's rackpulse, since /opt/rackpulse may not exist here."""
    venv_bin = Path(sys.prefix) / "bin" / "rackpulse"
    assert venv_bin.exists(), f"{venv_bin} missing: pip install -e . first"
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_BIN in text
    out = tmp_path_factory.mktemp("unit") / "rackpulse.service"
    out.write_text(text.replace(INSTALLED_BIN, str(venv_bin)), encoding="utf-8")
    return out


def test_systemd_analyze_verify_is_clean(verifiable_unit: Path) -> None:
    tool = require_binary("systemd-analyze")
    proc = subprocess.run([tool, "verify", str(verifiable_unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # verify only warns (exit 0) about unknown keys or bad values, so any output is a failure.
    assert proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr + proc.stdout


def test_verify_catches_a_typo(verifiable_unit: Path, tmp_path: Path) -> None:
    # Guard against the check above passing vacuously.
    bad = tmp_path / "rackpulse.service"
    bad.write_text(verifiable_unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    proc = subprocess.run(
        [require_binary("systemd-analyze"), "verify", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert "Unknown key" in proc.stderr and "NoNewPrivilege" in proc.stderr


def test_security_rating_is_ok_or_better() -> None:
    tool = require_binary("systemd-analyze")
    proc = subprocess.run(
        [tool, "security", "--offline=true", "--threshold=49", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    m = re.search(r"Overall exposure level for rackpulse\.service: (\d+\.\d) (\w+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr
    exposure, rating = float(m.group(1)), m.group(2)
    assert rating in GOOD_RATINGS and exposure <= 4.9, f"{exposure} {rating}"
    assert proc.returncode == 0, f"--threshold=49 failed: {exposure} {rating}"
    assert exposure <= 2.0, f"hardening regressed: exposure {exposure} (was 1.5)"


def test_contract_directives() -> None:
    d = _directives(UNIT.read_text(encoding="utf-8"))
    one = {k: v[-1] for k, v in d.items()}
    s = "[Service]"
    assert one[f"{s}Type"] == "notify"
    assert one[f"{s}NotifyAccess"] == "main"
    assert one[f"{s}WatchdogSec"] == "30"
    assert one[f"{s}ExecStart"] == f"{INSTALLED_BIN} run -c /etc/rackpulse/rackpulse.yaml"
    assert one[f"{s}ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one[f"{s}Restart"] == "on-failure"
    assert one[f"{s}TimeoutStopSec"] == "15"
    assert one[f"{s}User"] == one[f"{s}Group"] == "rackpulse"
    assert f"{s}DynamicUser" not in one
    assert one[f"{s}StateDirectory"] == one[f"{s}ConfigurationDirectory"] == "rackpulse"
    assert one[f"{s}SupplementaryGroups"] == "dialout"
    assert one[f"{s}DevicePolicy"] == "closed"
    assert {"char-ttyS rw", "char-ttyUSB rw"} <= set(d[f"{s}DeviceAllow"])
    assert one[f"{s}CapabilityBoundingSet"] == ""
    assert one[f"{s}ProtectSystem"] == "strict"
    assert one[f"{s}UMask"] == "0027"
    assert set(one[f"{s}RestrictAddressFamilies"].split()) <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "LockPersonality", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
                "ProtectHostname", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID"):
        assert one.get(f"{s}{key}") == "yes", key
    assert "@system-service" in d[f"{s}SystemCallFilter"]
    assert one["[Install]WantedBy"] == "multi-user.target"
