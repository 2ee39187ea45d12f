"""rackpulse against a real Net-SNMP snmpd, cross-checked with the Net-SNMP command-line tools."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from drivers.base import PollSettings
from drivers.errors import DeviceError
from drivers.model import PollResult
from drivers.profiles import ProfileLibrary
from drivers.snmp import PLUGIN
from drivers.snmp.config import SnmpDeviceConfig
from drivers.snmp.driver import SnmpDriver
from drivers.snmp.simulator import parse_walk
from tests.snmp.conftest import SNMPD_AUTH, SNMPD_PRIV, SNMPD_USER, Snmpd

IFX = "1.3.6.1.2.1.31.1.1.1"
IF = "1.3.6.1.2.1.2.2.1"


def column(agent: Snmpd, base: str) -> dict[str, Any]:
    """ifIndex -> value of one column, read with snmpbulkwalk."""
    walked = parse_walk(agent.tool("snmpbulkwalk", base), "snmpbulkwalk")
    n = len(base.split("."))
    return {".".join(map(str, oid[n:])): v for oid, (_, v) in walked.items()}


def driver(agent: Snmpd, tmp_path: Path, name: str, version: str = "2c", auth_key: str = SNMPD_AUTH,
           user: str = SNMPD_USER, timeout: float = 2.0) -> SnmpDriver:
    entry: dict[str, Any] = {"name": name, "driver": "snmp", "host": "127.0.0.1", "port": agent.port,
                             "profile": "if-mib", "version": version}
    if version == "3":
        (tmp_path / f"{name}.auth").write_text(auth_key + "\n")
        (tmp_path / f"{name}.priv").write_text(SNMPD_PRIV + "\n")
        entry["v3"] = {"user": user, "auth_protocol": "SHA", "auth_key_file": str(tmp_path / f"{name}.auth"),
                       "priv_protocol": "AES", "priv_key_file": str(tmp_path / f"{name}.priv")}
    cfg = SnmpDeviceConfig.model_validate(entry)
    drv = PLUGIN.create(cfg, ProfileLibrary(), PollSettings(interval=10, timeout=timeout, retries=0))
    assert isinstance(drv, SnmpDriver)
    return drv


def readings(res: PollResult, metric: str) -> dict[str, tuple[str, float]]:
    """if_index -> (port label, value)."""
    out = {}
    for r in res.readings:
        if r.metric == metric:
            lbl = dict(r.labels)
            out[lbl["if_index"]] = (lbl["port"], r.value)
    return out


async def test_if_mib_matches_snmpget(snmpd: Snmpd, tmp_path: Path) -> None:
    names = column(snmpd, f"{IFX}.1")
    oper = column(snmpd, f"{IF}.8")
    high = column(snmpd, f"{IFX}.15")
    before = column(snmpd, f"{IFX}.6")
    for version in ("2c", "3"):
        drv = driver(snmpd, tmp_path, f"host-v{version}", version=version)
        try:
            res = await drv.poll()
        finally:
            await drv.close()
        after = column(snmpd, f"{IFX}.6")
        rx = readings(res, "port_receive_bytes_total")
        assert set(rx) == set(names) and names, (rx, names)
        for idx, (port, value) in rx.items():
            assert port == names[idx].decode()
            # The counter moves (our own SNMP traffic crosses lo): it must lie between the tool's reads.
            assert before[idx] <= value <= after[idx], (idx, before[idx], value, after[idx])
        for idx, (port, up) in readings(res, "port_up").items():
            assert up == (1.0 if oper[idx] == 1 else 0.0) and port == names[idx].decode()
        for idx, (_, speed) in readings(res, "port_speed_bytes").items():
            assert speed == high[idx] * 125_000
        before = after
    assert drv.sys_descr == "rackpulse test snmpd"
    assert res.info.model == "rackpulse test snmpd" and res.info.profile == "if-mib"  # sysDescr: no model OID
    assert drv.sys_object_id == (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)


async def test_wrong_v3_key_is_an_auth_error_and_spares_the_good_device(snmpd: Snmpd, tmp_path: Path) -> None:
    good = driver(snmpd, tmp_path, "tor-good", version="3")
    bad = driver(snmpd, tmp_path, "tor-bad", version="3", auth_key="not-the-key-999")
    try:
        for _ in range(2):  # both orders, and concurrently: the keys must never leak into each other
            res = await asyncio.gather(bad.poll(), good.poll(), return_exceptions=True)
            err, ok = res
            assert isinstance(ok, PollResult) and ok.readings
            assert isinstance(err, DeviceError), err
            assert err.reason == "auth"
            msg = str(err)
            assert "tor-bad" in msg and f"127.0.0.1:{snmpd.port}" in msg and repr(SNMPD_USER) in msg
            assert "authentication failed" in msg
            assert "not-the-key-999" not in msg and SNMPD_AUTH not in msg and SNMPD_PRIV not in msg
            assert (await good.poll()).readings
    finally:
        await good.close()
        await bad.close()


async def test_unknown_v3_user(snmpd: Snmpd, tmp_path: Path) -> None:
    drv = driver(snmpd, tmp_path, "tor-x", version="3", user="nobody")
    try:
        await drv.poll()
        raise AssertionError("expected an auth error")
    except DeviceError as e:
        assert e.reason == "auth" and "does not know SNMPv3 user 'nobody'" in str(e)
    finally:
        await drv.close()


async def test_wrong_community_times_out_with_a_hint(snmpd: Snmpd, tmp_path: Path) -> None:
    (tmp_path / "c").write_text("wrong-community\n")
    cfg = SnmpDeviceConfig.model_validate({"name": "sw-c", "driver": "snmp", "host": "127.0.0.1",
                                           "port": snmpd.port, "profile": "if-mib",
                                           "community_file": str(tmp_path / "c")})
    drv = PLUGIN.create(cfg, ProfileLibrary(), PollSettings(interval=10, timeout=0.6, retries=0))
    try:
        await drv.poll()
        raise AssertionError("expected a timeout")
    except DeviceError as e:
        assert e.reason == "timeout" and "wrong community" in str(e) and "wrong-community" not in str(e)
    finally:
        await drv.close()


async def test_snmpv1_walks_with_getnext(snmpd: Snmpd, tmp_path: Path) -> None:
    drv = driver(snmpd, tmp_path, "host-v1", version="1")
    try:
        res = await drv.poll()
    finally:
        await drv.close()
    # v1 has no Counter64: the driver falls back to ifInOctets for every interface.
    names = column(snmpd, f"{IFX}.1")
    assert {p for p, _ in readings(res, "port_receive_bytes_total").values()} == {n.decode() for n in names.values()}
