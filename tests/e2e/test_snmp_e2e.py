"""End to end over SNMP: the real daemon polls Net-SNMP's snmpd (if-mib) and a simulated APC PDU
(apc-rpdu2); /metrics must agree with what Net-SNMP's own tools read from the same agents."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from drivers.snmp.simulator import SnmpSimulator
from tests.helpers import RackpulseProcess, require_binary, sample_value
from tests.snmp.conftest import Snmpd

APC = "1.3.6.1.4.1.318.1.1.26"


def snmpget(port: int, community: str, oid: str) -> int:
    out = subprocess.run([require_binary("snmpget"), "-v2c", "-c", community, "-On", "-Oqv", "-t", "2",
                          f"127.0.0.1:{port}", oid], capture_output=True, text=True, timeout=20, check=True,
                         env={**os.environ, "MIBS": ""})
    return int(out.stdout.strip().split()[0])


async def test_run_agrees_with_net_snmp_tools(tmp_path: Path, snmpd: Snmpd) -> None:
    sim = SnmpSimulator(clock=lambda: 1_796_000_000.0)  # a frozen clock: values hold still
    sim.add_pdu("apc", kind="apc-rpdu2", outlets=8)
    port = await sim.start()
    cfile = tmp_path / "apc.community"
    cfile.write_text(sim.community_for("apc"))
    tfile = tmp_path / "tor.community"
    tfile.write_text("public")
    cfg: dict[str, Any] = {"site": "dc1", "rack": "r42", "agent": {"interval": "1s"}, "devices": [
        {"name": "tor", "driver": "snmp", "profile": "if-mib", "host": "127.0.0.1", "port": snmpd.port,
         "version": "2c", "community_file": str(tfile)},
        {"name": "apc", "driver": "snmp", "profile": "apc-rpdu2", "host": "127.0.0.1", "port": port,
         "version": "2c", "community_file": str(cfile)},
    ]}
    rp = RackpulseProcess(tmp_path, cfg)
    try:
        rp.start()
        await asyncio.to_thread(rp.wait_http, "/readyz", 200, 20)
        comm = sim.community_for("apc")
        before = await asyncio.to_thread(snmpget, snmpd.port, "public", "1.3.6.1.2.1.31.1.1.1.6.1")
        text = await asyncio.to_thread(rp.metrics)
        after = await asyncio.to_thread(snmpget, snmpd.port, "public", "1.3.6.1.2.1.31.1.1.1.6.1")

        # if-mib on snmpd: lo is ifIndex 1
        assert sample_value(text, "rackpulse_port_up", device="tor", port="lo", if_index="1") == 1.0
        high_speed = await asyncio.to_thread(snmpget, snmpd.port, "public", "1.3.6.1.2.1.31.1.1.1.15.1")
        assert sample_value(text, "rackpulse_port_speed_bytes", device="tor", port="lo") == high_speed * 1e6 / 8
        rx = sample_value(text, "rackpulse_port_receive_bytes_total", device="tor", port="lo")
        assert rx is not None and before - 1e7 <= rx <= after  # the counter moves between reads

        # apc-rpdu2 on the simulator: raw value x the MIB's unit, read independently with snmpget
        volts = await asyncio.to_thread(snmpget, port, comm, f"{APC}.6.3.1.6.1")
        assert sample_value(text, "rackpulse_inlet_voltage_volts", device="apc", phase="1") == float(volts)
        amps = await asyncio.to_thread(snmpget, port, comm, f"{APC}.9.4.3.1.6.3")
        assert sample_value(text, "rackpulse_outlet_current_amperes", device="apc", outlet="3") == amps / 10
        kwh10 = await asyncio.to_thread(snmpget, port, comm, f"{APC}.9.4.3.1.11.3")
        assert sample_value(text, "rackpulse_outlet_energy_joules_total", device="apc", outlet="3") == kwh10 * 3.6e5
        kw100 = await asyncio.to_thread(snmpget, port, comm, f"{APC}.4.3.1.5.1")
        assert sample_value(text, "rackpulse_inlet_power_watts", device="apc") == kw100 * 10.0
        assert not sim.sets, "the agent must never SET"
    finally:
        assert rp.stop() == 0, rp.log()
        await sim.stop()
