"""The SNMP device config: versions, credentials from files/env, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import PollSettings
from drivers.profiles import validation_problems
from drivers.snmp import make_target
from drivers.snmp.config import SnmpDeviceConfig

BASE = {"name": "sw-1", "driver": "snmp", "host": "10.0.0.2", "profile": "if-mib"}


def problems(entry: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as e:
        SnmpDeviceConfig.model_validate(entry)
    return validation_problems(e.value, "devices[0]")


@pytest.mark.parametrize(("given", "want"), [(2, "2c"), ("2c", "2c"), ("v2c", "2c"), (1, "1"), ("1", "1")])
def test_version_spellings(given: Any, want: str) -> None:
    assert SnmpDeviceConfig.model_validate({**BASE, "version": given}).version == want


def test_defaults() -> None:
    c = SnmpDeviceConfig.model_validate(BASE)
    assert (c.port, c.version, c.max_repetitions, c.community()) == (161, "2c", 25, "public")


def test_bad_version_names_the_field() -> None:
    [p] = problems({**BASE, "version": "2d"})
    assert p.startswith("devices[0].version:") and "1, 2c or 3" in p


def test_bad_auth_protocol_names_the_field() -> None:
    out = problems({**BASE, "version": 3, "v3": {"user": "u", "auth_protocol": "SHA999", "auth_key_env": "K"}})
    assert any(p.startswith("devices[0].v3.auth_protocol:") for p in out), out


def test_unknown_key_is_an_error() -> None:
    assert problems({**BASE, "comunity_file": "/x"}) == ["devices[0].comunity_file: unknown key"]


def test_inline_community_is_not_accepted() -> None:
    # Secrets come from *_file or *_env keys only, never inline in the config.
    assert problems({**BASE, "community": "s3cret"}) == ["devices[0].community: unknown key"]


def test_version_3_needs_v3_block_and_v3_needs_version_3() -> None:
    assert "needs a v3: block" in problems({**BASE, "version": 3})[0]
    assert "needs version: 3" in problems({**BASE, "v3": {"user": "u"}})[0]


def test_v3_protocol_and_key_go_together() -> None:
    out = problems({**BASE, "version": 3, "v3": {"user": "u", "auth_protocol": "SHA"}})
    assert "auth_protocol and auth_key_file/auth_key_env go together" in out[0]
    out = problems({**BASE, "version": 3, "v3": {"user": "u", "priv_protocol": "AES", "priv_key_env": "P"}})
    assert "needs authentication" in out[0]


def test_security_level_is_derived() -> None:
    def level(v3: dict[str, Any]) -> str:
        c = SnmpDeviceConfig.model_validate({**BASE, "version": "3", "v3": {"user": "u", **v3}})
        assert c.v3 is not None
        return c.v3.security_level

    assert level({}) == "noAuthNoPriv"
    assert level({"auth_protocol": "sha256", "auth_key_env": "A"}) == "authNoPriv"
    assert level({"auth_protocol": "SHA", "auth_key_env": "A", "priv_protocol": "aes", "priv_key_env": "P"}) \
        == "authPriv"


def test_secrets_are_read_from_files_and_env_and_never_shown(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "auth").write_text("auth-key-XYZ\n")
    monkeypatch.setenv("PRIVKEY", "priv-key-XYZ")
    c = SnmpDeviceConfig.model_validate({**BASE, "version": 3, "v3": {
        "user": "monitor", "auth_protocol": "SHA256", "auth_key_file": str(tmp_path / "auth"),
        "priv_protocol": "AES", "priv_key_env": "PRIVKEY", "context_name": "vrf1"}})
    t = make_target(c, PollSettings(interval=10, timeout=2, retries=0))
    assert (t.auth_key, t.priv_key, t.user, t.context_name) == ("auth-key-XYZ", "priv-key-XYZ", "monitor", "vrf1")
    assert "XYZ" not in repr(t) and "XYZ" not in repr(c)
    (tmp_path / "community").write_text("c0mmunity\n")
    c2 = SnmpDeviceConfig.model_validate({**BASE, "community_file": str(tmp_path / "community")})
    assert make_target(c2, PollSettings(10, 2, 0)).community == "c0mmunity"
    assert "c0mmunity" not in repr(make_target(c2, PollSettings(10, 2, 0)))


def test_unreadable_secret_names_the_file_not_the_secret(tmp_path: Path) -> None:
    c = SnmpDeviceConfig.model_validate({**BASE, "community_file": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match=r"cannot read community from .*missing"):
        c.community()
    c3 = SnmpDeviceConfig.model_validate({**BASE, "version": 3, "v3": {
        "user": "u", "auth_protocol": "SHA", "auth_key_env": "RACKPULSE_TEST_UNSET_VAR"}})
    with pytest.raises(ValueError, match="RACKPULSE_TEST_UNSET_VAR is not set"):
        make_target(c3, PollSettings(10, 2, 0))


def test_short_v3_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("short\n")
    c = SnmpDeviceConfig.model_validate({**BASE, "version": 3, "v3": {
        "user": "u", "auth_protocol": "SHA", "auth_key_file": str(tmp_path / "k")}})
    with pytest.raises(ValueError, match="shorter than the 8 characters"):
        make_target(c, PollSettings(10, 2, 0))


def test_inline_oids_are_checked_against_the_catalog() -> None:
    entry = {k: v for k, v in BASE.items() if k != "profile"}
    ok = SnmpDeviceConfig.model_validate({**entry, "oids": [
        {"oid": "1.3.6.1.4.1.9.1.0", "metric": "sensor_temperature_celsius", "scale": 0.1,
         "labels": {"sensor": "inlet"}}]})
    assert ok.oids and ok.oids[0].oid == (1, 3, 6, 1, 4, 1, 9, 1, 0)
    out = problems({**entry, "oids": [{"oid": "1.3.6.1.4.1.9.1.0", "metric": "temprature"}]})
    assert "oids[0]: metric 'temprature' is not in the catalog" in out[0]
    out = problems({**entry, "oids": [{"oid": "1.3.6.1.4.1.9.1.0", "metric": "fan_speed_rpm",
                                       "labels": {"port": "x"}}]})
    assert "carries no label 'port'" in out[0]
    assert "name a profile" in problems(entry)[0]
