"""Profile and device-config validation: expansion, address bases, and errors that name their path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import parse_config
from drivers.base import PollSettings
from drivers.errors import ConfigError, ProfileError
from drivers.modbus import PLUGIN, load_profile
from drivers.modbus.config import ModbusDeviceConfig
from drivers.profiles import ProfileLibrary

SETTINGS = PollSettings(interval=10, timeout=2, retries=0)


def write_profile(tmp: Path, name: str, doc: dict[str, Any]) -> ProfileLibrary:
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return ProfileLibrary([tmp])


def base_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "driver": "modbus", "source": "test sheet", "address_base": 1, "word_order": "big",
        "function": "holding",
        "registers": [
            {"address": 1, "type": "float32", "metric": "inlet_voltage_volts", "labels": {"inlet": "1"}},
            {"address": 101, "type": "uint32", "unit": "Wh", "metric": "outlet_energy_joules_total",
             "labels": {"outlet": "{n}", "outlet_name": "srv-{n:02d}"}, "repeat": {"count": 3, "stride": 10}},
        ],
    }
    doc.update(over)
    return doc


def test_expansion_translates_addresses_and_templates_labels(tmp_path: Path) -> None:
    lib = write_profile(tmp_path, "p", base_doc())
    p = load_profile(lib, "p")
    assert [(f.address, dict(f.labels)) for f in p.fields] == [
        (0, {"inlet": "1"}),
        (100, {"outlet": "1", "outlet_name": "srv-01"}),
        (110, {"outlet": "2", "outlet_name": "srv-02"}),
        (120, {"outlet": "3", "outlet_name": "srv-03"}),
    ]
    assert p.fields[1].scale == 3600.0  # Wh -> J
    assert p.fields[1].kind.value == "counter"
    assert len(load_profile(lib, "p", max_repeat=2).fields) == 3


def test_repeat_start(tmp_path: Path) -> None:
    doc = base_doc()
    doc["registers"][1]["repeat"]["start"] = 0
    p = load_profile(write_profile(tmp_path, "p", doc), "p")
    assert [dict(f.labels)["outlet"] for f in p.fields[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["registers"][0].update(metric="inlet_volts"),
         "registers[0].metric: Value error, unknown metric 'inlet_volts'"),
        (lambda d: d["registers"][0].update(type="flaot32"), "registers[0].type: 'flaot32' is not one of 'int16'"),
        (lambda d: d["registers"][0].update(labels={"port": "1"}),
         "label 'port' is not a label of inlet_voltage_volts"),
        (lambda d: d["registers"][1]["labels"].update(outlet="{m}"), "bad template '{m}'"),
        (lambda d: d.pop("address_base"), "address_base: Field required"),
        (lambda d: d.pop("word_order"), "word_order: Field required"),
        (lambda d: d.pop("source"), "source: Field required"),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d["registers"][0].update(function="coil"), "its type must be 'bool'"),
        (lambda d: d["registers"][0].update(type="string"), "type 'string' cannot map to a metric"),
        (lambda d: d["registers"][0].update(sentinels=["lots"]), "sentinel 'lots' is not a number"),
        (lambda d: d["registers"][0].update(scale=0), "scale must be a finite, non-zero number"),
        (lambda d: d["registers"][0].update(unit="furlongs"), "unknown unit 'furlongs'"),
        (lambda d: (d.pop("function"), d["registers"][1].update(function="input")), "registers[0] give no 'function'"),
    ],
)
def test_profile_errors_name_the_path(tmp_path: Path, mutate: Any, needle: str) -> None:
    doc = base_doc()
    mutate(doc)
    lib = write_profile(tmp_path, "bad", doc)
    with pytest.raises(ProfileError) as ei:
        load_profile(lib, "bad")
    assert needle in str(ei.value)
    assert "bad" in str(ei.value)  # the profile is named


def test_expansion_errors(tmp_path: Path) -> None:
    doc = base_doc()
    doc["registers"][0]["address"] = 0  # below address_base 1
    with pytest.raises(ProfileError, match=r"registers\[0\]: address 0 is below the profile's address_base 1"):
        load_profile(write_profile(tmp_path, "a", doc), "a")
    doc = base_doc()
    doc["registers"][1]["repeat"] = {"count": 3, "stride": 40000}
    with pytest.raises(ProfileError, match=r"registers\[1\] \(n=3\): wire address 80100"):
        load_profile(write_profile(tmp_path, "b", doc), "b")
    doc = base_doc()
    doc["registers"][1]["labels"] = {"outlet": "1"}  # every repeat yields the same series
    with pytest.raises(ProfileError, match="already produced by"):
        load_profile(write_profile(tmp_path, "c", doc), "c")


def test_profile_for_other_driver_is_rejected(tmp_path: Path) -> None:
    lib = write_profile(tmp_path, "snmpish", {"driver": "snmp", "x": 1})
    with pytest.raises(ProfileError, match="is for driver 'snmp', not 'modbus'"):
        load_profile(lib, "snmpish")


def config_text(*devices: dict[str, Any]) -> str:
    return yaml.safe_dump({"site": "dc1", "rack": "r1", "devices": list(devices)})


def test_config_errors_carry_device_and_register_paths() -> None:
    good = {"name": "pdu-a", "driver": "modbus", "profile": "raritan-px-modbus", "host": "10.0.0.1"}
    bad = {"name": "meter", "driver": "modbus", "host": "10.0.0.2",
           "registers": [{"address": 0, "type": "flaot32", "metric": "inlet_power_watts"}]}
    with pytest.raises(ConfigError) as ei:
        parse_config(config_text(good, bad))
    want = "devices[1].registers[0].type: 'flaot32' is not one of 'int16'"
    assert any(p.startswith(want) for p in ei.value.problems), ei.value.problems


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"unit_id": 300}, "devices[0].unit_id: Input should be less than or equal to 247"),
        ({"max_registers": 200}, "devices[0].max_registers: Input should be less than or equal to 125"),
        ({"transport": "rtu"}, "transport 'rtu' needs serial_port"),
        ({"transport": "udp"}, "devices[0].transport: 'udp' is not one of 'tcp', 'rtu-over-tcp' or 'rtu'"),
        ({"parity": "X"}, "devices[0].parity"),
        ({"profile": None}, "give a 'profile' (or 'profiles') or an inline 'registers' list"),
        ({"registers": [{"address": 1, "type": "uint16", "metric": "nope"}]}, "devices[0].registers[0].metric"),
        ({"serial_port": "/dev/ttyUSB0"}, "serial_port is only for transport 'rtu'"),
    ],
)
def test_device_config_errors(entry: dict[str, Any], needle: str) -> None:
    dev = {"name": "pdu-a", "driver": "modbus", "profile": "raritan-px-modbus", "host": "10.0.0.1", **entry}
    with pytest.raises(ConfigError) as ei:
        parse_config(config_text(dev))
    assert any(needle in p for p in ei.value.problems), ei.value.problems


def test_defaults_and_plugin_create_without_io() -> None:
    cfg = ModbusDeviceConfig.model_validate(
        {"name": "pdu-a", "driver": "modbus", "profile": "raritan-px-modbus", "host": "10.0.0.1"}
    )
    assert (cfg.transport, cfg.tcp_port, cfg.unit_id, cfg.max_gap, cfg.max_registers) == ("tcp", 502, 1, 8, 125)
    drv = PLUGIN.create(cfg, ProfileLibrary(), SETTINGS)
    assert len(drv.reads) == 50  # planned at create time, nothing sent
    rtu = ModbusDeviceConfig.model_validate(
        {"name": "m", "driver": "modbus", "profile": "eastron-sdm630", "transport": "rtu",
         "serial_port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "N"}
    )
    assert rtu.where() == "/dev/ttyUSB0 unit 1"


def test_inline_registers_and_profile_merge() -> None:
    cfg = ModbusDeviceConfig.model_validate({
        "name": "m", "driver": "modbus", "host": "h", "profile": "eastron-sdm630", "address_base": 1,
        "registers": [{"address": 1, "function": "input", "type": "float32", "metric": "sensor_temperature_celsius",
                       "labels": {"sensor": "t1"}}],
    })
    drv = PLUGIN.create(cfg, ProfileLibrary(), SETTINGS)
    assert len(drv.fields) == 15
    assert drv.fields[-1].address == 0


def test_duplicate_series_across_profile_and_inline_is_an_error() -> None:
    cfg = ModbusDeviceConfig.model_validate({
        "name": "m", "driver": "modbus", "host": "h", "profile": "eastron-sdm630",
        "registers": [{"address": 200, "function": "input", "type": "float32", "metric": "inlet_frequency_hertz",
                       "labels": {"inlet": "1"}}],
    })
    with pytest.raises(ProfileError, match="already produced by"):
        PLUGIN.create(cfg, ProfileLibrary(), SETTINGS)


def test_unknown_profile_is_a_profile_error() -> None:
    cfg = ModbusDeviceConfig.model_validate({"name": "m", "driver": "modbus", "host": "h", "profile": "nope"})
    with pytest.raises(ProfileError, match="profile 'nope' not found"):
        PLUGIN.create(cfg, ProfileLibrary(), SETTINGS)
