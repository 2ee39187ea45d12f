"""The simulated agent itself: writes are recorded and refused, Net-SNMP tools can read it, walks parse."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    set_cmd,
)
from pysnmp.proto import rfc1902

from drivers.errors import DeviceError
from drivers.simfaults import parse_faults
from drivers.snmp import wire
from drivers.snmp.discover import discover_snmp
from drivers.snmp.simulator import SnmpSimulator, load_walk, parse_walk
from tests.snmp.conftest import V3, FakeClock, MakeDriver, require_binary


async def test_set_is_recorded_and_refused(sim: SnmpSimulator) -> None:
    sim.add_pdu("pdu-a", "apc-rpdu2", outlets=4)
    eng = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", sim.port), timeout=1, retries=0)
        err, status, _, _ = await set_cmd(
            eng, CommunityData(sim.community_for("pdu-a"), mpModel=1), target, ContextData(),
            ObjectType(ObjectIdentity("1.3.6.1.4.1.318.1.1.4.4.2.1.3.1"), rfc1902.Integer32(2)), lookupMib=False)
    finally:
        eng.close_dispatcher()
    assert err is None and int(status) == 17  # notWritable: the simulator never accepts a write
    [rec] = sim.sets
    assert (rec.device, rec.oid, rec.value) == ("pdu-a", "1.3.6.1.4.1.318.1.1.4.4.2.1.3.1", "2")


async def run_tool(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**os.environ, "MIBS": ""})
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_net_snmp_tools_read_the_simulator_v1_v2c_v3(sim: SnmpSimulator) -> None:
    sim.add_switch("sw-1", ports=4)
    sim.add_switch("sw-2", ports=6)
    target = f"127.0.0.1:{sim.port}"
    v2 = parse_walk(await run_tool(require_binary("snmpbulkwalk"), "-v2c", "-c", sim.community_for("sw-2"),
                                   "-On", target, "1.3.6.1.2.1.31.1.1.1.1"))
    assert [v for _, v in v2.values()] == [f"Ethernet{p}".encode() for p in range(1, 7)]
    v1 = parse_walk(await run_tool(require_binary("snmpwalk"), "-v1", "-c", sim.community_for("sw-1"),
                                   "-On", target, "1.3.6.1.2.1.2.2.1.10"))
    assert len(v1) == 4 and {t for t, _ in v1.values()} == {wire.COUNTER32}
    v3 = parse_walk(await run_tool(require_binary("snmpget"), "-v3", "-l", "authPriv", "-u", V3.user,
                                   "-a", V3.auth_protocol, "-A", V3.auth_key, "-x", V3.priv_protocol,
                                   "-X", V3.priv_key, "-n", "sw-1", "-On", target, "1.3.6.1.2.1.2.1.0"))
    assert list(v3.values()) == [(wire.INTEGER, 4)]
    # The plain community reaches the first device added.
    plain = parse_walk(await run_tool(require_binary("snmpget"), "-v2c", "-c", "public", "-On", target,
                                      "1.3.6.1.2.1.1.5.0"))
    assert list(plain.values()) == [(wire.OCTET_STRING, b"sw-1")]


async def test_discover_suggests_profiles(sim: SnmpSimulator) -> None:
    sim.add_switch("sw-1", ports=2)
    sim.add_pdu("pdu-a", "apc-rpdu2", outlets=2)
    sim.add_pdu("pdu-r", "raritan-pdu2", outlets=2)
    sw = await discover_snmp("127.0.0.1", sim.port, sim.community_for("sw-1"))
    assert sw.sys_descr.startswith("rackpulse simulated switch") and set(sw.profiles) == {"if-mib",
                                                                                          "entity-sensor"}
    apc = await discover_snmp("127.0.0.1", sim.port, sim.community_for("pdu-a"))
    assert apc.sys_object_id == "1.3.6.1.4.1.318.1.3.4.6" and apc.profiles[0] == "apc-rpdu2"
    rar = await discover_snmp("127.0.0.1", sim.port, sim.community_for("pdu-r"))
    assert rar.profiles == ["raritan-pdu2"]


def test_walk_parse_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(".1.3.6.1.2.1.1.3.0 = Timeticks: (5) 0:00:00.05\n.1.3.6.1.2.1.1.5.0 = Bogus: x\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: unknown snmpwalk type 'Bogus'"):
        load_walk(p)
    p.write_text("1.3.6.1.2.1.1.3.0|99|5\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: unknown snmprec tag '99'"):
        load_walk(p)
    p.write_text("1.3.6.1.2.1.1.3.0|2|five\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: 'five' is not an integer"):
        load_walk(p)


async def test_fast_v2c_path_answers_like_pysnmp(make_driver: MakeDriver, clock: FakeClock) -> None:
    """SNMPv2c answered on the fast path and by pysnmp's responders give the same readings."""
    results = []
    for fast in (True, False):
        async with SnmpSimulator(clock=clock, v3_user=V3, fast_v2c=fast) as s:
            s.add_switch("sw-1", ports=6)
            s.add_pdu("pdu-r", "raritan-pdu2", outlets=3)
            got = []
            for name, profiles in (("sw-1", ["if-mib", "entity-sensor"]), ("pdu-r", ["raritan-pdu2"])):
                res = await make_driver(s, name, profiles).poll()
                got.append(sorted((r.metric, r.labels, r.value) for r in res.readings))
            results.append(got)
    assert results[0] == results[1] and results[0][0]


async def test_fast_v2c_path_faults_and_sets(make_driver: MakeDriver, clock: FakeClock) -> None:
    async with SnmpSimulator(clock=clock, v3_user=V3, faults=parse_faults("sw-g:garbage")) as s:
        s.add_switch("sw-g", ports=2)
        with pytest.raises(DeviceError) as e:
            await make_driver(s, "sw-g", ["if-mib"], timeout=0.5).poll()
        assert e.value.reason in ("timeout", "decode")
        s.add_switch("sw-ok", ports=2)
        target = f"127.0.0.1:{s.port}"
        proc = await asyncio.create_subprocess_exec(
            require_binary("snmpset"), "-v2c", "-c", s.community_for("sw-ok"), target, "1.3.6.1.2.1.1.5.0", "s",
            "pwned", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "MIBS": ""})
        _, err = await proc.communicate()
        assert proc.returncode != 0 and b"notWritable" in err
        assert [(r.device, r.oid, r.value) for r in s.sets] == [("sw-ok", "1.3.6.1.2.1.1.5.0", "pwned")]
