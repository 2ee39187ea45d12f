"""Config validation as data: each folder in tests/cases/config holds a config.yaml and either
expected.out (lines `check-config` must print, exit 0) or expected.err (lines of problems, exit 2).
A new case is a new folder; PROFILE_DIR in a config stands for the case's own profiles/ folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = sorted(p for p in (Path(__file__).parent.parent / "cases" / "config").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_config_case(case: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text((case / "config.yaml").read_text().replace("PROFILE_DIR", str(case / "profiles")))
    exe = Path(sys.executable).parent / "rackpulse"
    out = subprocess.run([str(exe), "check-config", "-c", str(cfg)], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "TOR_AUTH": "authkey123", "TOR_PRIV": "privkey123"})
    if (case / "expected.out").exists():
        assert out.returncode == 0, out.stderr
        for line in (case / "expected.out").read_text().splitlines():
            assert line in out.stdout, f"missing {line!r} in:\n{out.stdout}"
    else:
        assert out.returncode == 2, f"expected exit 2, got {out.returncode}:\n{out.stdout}{out.stderr}"
        assert "Traceback" not in out.stderr
        for line in (case / "expected.err").read_text().splitlines():
            assert line in out.stderr, f"missing {line!r} in:\n{out.stderr}"
