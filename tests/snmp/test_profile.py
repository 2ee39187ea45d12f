"""SNMP profiles: every built-in loads, and a bad profile is a ProfileError that says where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ProfileError
from drivers.profiles import ProfileLibrary
from drivers.snmp import load_profile
from drivers.snmp.discover import snmp_profiles

BUILTIN = ["if-mib", "entity-sensor", "apc-rpdu2", "raritan-pdu2", "sentry4", "eaton-epdu"]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_profiles_load_and_name_their_source(name: str) -> None:
    p = load_profile(ProfileLibrary(), name)
    assert p.name == name
    assert p.source and all(s.mib for s in p.source)
    assert p.tables or p.scalars


def test_snmp_profiles_lists_the_builtins() -> None:
    assert set(BUILTIN) <= {p.name for p in snmp_profiles(ProfileLibrary())}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "custom") -> ProfileLibrary:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return ProfileLibrary([tmp_path])


def table(**column: Any) -> dict[str, Any]:
    return {"driver": "snmp", "name": "custom", "source": {"mib": "TEST-MIB"},
            "tables": [{"name": "t", "index": ["i"], "labels": {"port": "{i}"},
                        "columns": [{"oid": "1.3.6.1.2.1.2.2.1.8", **column}]}]}


def load_error(tmp_path: Path, doc: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as e:
        load_profile(write(tmp_path, doc), "custom")
    return str(e.value)


def test_unknown_metric_is_a_profile_error(tmp_path: Path) -> None:
    msg = load_error(tmp_path, table(metric="port_upp"))
    assert "custom" in msg and "tables[0] (t).columns[0]: metric 'port_upp' is not in the catalog" in msg


def test_bad_oid_names_the_field(tmp_path: Path) -> None:
    doc = table(metric="port_up")
    doc["tables"][0]["columns"][0]["oid"] = "1.3.six"
    msg = load_error(tmp_path, doc)
    assert "tables[0].columns[0].oid" in msg and "not a numeric OID" in msg


def test_label_the_metrics_do_not_carry(tmp_path: Path) -> None:
    doc = table(metric="port_up")
    doc["tables"][0]["labels"]["outlet"] = "{i}"
    assert "none of this table's metrics carries label 'outlet'" in load_error(tmp_path, doc)


def test_template_fields_are_checked(tmp_path: Path) -> None:
    doc = table(metric="port_up")
    doc["tables"][0]["labels"]["port"] = "{ifIndex}"
    assert "template field {ifIndex} is not one of" in load_error(tmp_path, doc)


def test_transform_only_for_dbm(tmp_path: Path) -> None:
    assert "only fits *_dbm metrics" in load_error(tmp_path, table(metric="port_up", transform="mw_to_dbm"))


def test_metric_or_type_filter(tmp_path: Path) -> None:
    assert "exactly one of 'metric' or 'type_filter'" in load_error(tmp_path, table())


def test_type_filter_match_must_name_a_label(tmp_path: Path) -> None:
    doc = table(type_filter={"column": "1.3.6.1.2.1.99.1.1.1.1", "cases": [
        {"value": 8, "match": {"label": "nope"}, "metric": "sensor_temperature_celsius"}]})
    assert "match names unknown label 'nope'" in load_error(tmp_path, doc)


def test_unknown_key_in_profile(tmp_path: Path) -> None:
    assert "unknown key" in load_error(tmp_path, table(metric="port_up", scal=2))


def test_name_must_match_file(tmp_path: Path) -> None:
    doc = table(metric="port_up")
    doc["name"] = "other"
    assert "the name must match the file name" in load_error(tmp_path, doc)


def test_profile_for_another_driver(tmp_path: Path) -> None:
    lib = write(tmp_path, {"driver": "modbus", "name": "custom"})
    with pytest.raises(ProfileError, match="is for driver 'modbus', not 'snmp'"):
        load_profile(lib, "custom")
