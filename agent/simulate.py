"""``rackpulse simulate``: serve a simulated rack on 127.0.0.1 and emit a config that polls it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drivers.simfaults import Fault, faults_for, parse_faults

SNMP_PDU_KINDS = ("apc-rpdu2", "raritan-pdu2")


@dataclass
class SimulatedRack:
    """Running simulators plus the device entries of a config that polls them."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list)
    secrets_dir: Path | None = None

    async def stop(self) -> None:
        for h in reversed(self.handles):
            with contextlib.suppress(Exception):
                await h.stop()


async def start_rack(
    pdus: int,
    switches: int,
    snmp_pdus: int = 0,
    ports: int = 48,
    outlets: int = 24,
    faults: list[Fault] | None = None,
    port_base: int = 15020,
    secrets_dir: Path | None = None,
) -> SimulatedRack:
    """Start ``pdus`` Modbus PDUs, ``switches`` switches and ``snmp_pdus`` SNMP PDUs on loopback.

    Modbus PDUs listen on ``port_base``, ``port_base+1``, ...; the SNMP agent on ``port_base+100``.
    A ``port_base`` of 0 picks free ports.
    """
    from drivers.modbus.simulator import ModbusPduSimulator

    faults = faults or []
    rack = SimulatedRack()
    for i in range(1, pdus + 1):
        name = f"pdu-{i}"
        port = port_base + i - 1 if port_base else 0
        sim = ModbusPduSimulator(name, port=port, outlets=outlets, faults=faults_for(faults, name))
        port = await sim.start()
        rack.handles.append(sim)
        rack.devices.append({"name": name, "driver": "modbus", "profile": "raritan-px-modbus",
                             "host": "127.0.0.1", "port": port, "unit_id": 1, "max_repeat": outlets})
    if switches or snmp_pdus:
        from drivers.snmp.simulator import SnmpSimulator

        secrets = secrets_dir or Path(tempfile.mkdtemp(prefix="rackpulse-sim-"))
        secrets.mkdir(parents=True, exist_ok=True)
        rack.secrets_dir = secrets
        snmp = SnmpSimulator(port=port_base + 100 if port_base else 0, faults=faults)
        names: list[tuple[str, list[str]]] = []
        for i in range(1, switches + 1):
            snmp.add_switch(f"sw-{i}", ports=ports)
            names.append((f"sw-{i}", ["if-mib", "entity-sensor"]))
        for i in range(1, snmp_pdus + 1):
            kind = SNMP_PDU_KINDS[(i - 1) % len(SNMP_PDU_KINDS)]
            snmp.add_pdu(f"spdu-{i}", kind=kind, outlets=outlets)
            names.append((f"spdu-{i}", [kind]))
        port = await snmp.start()
        rack.handles.append(snmp)
        for name, profiles in names:
            cfile = secrets / f"{name}.community"
            cfile.write_text(snmp.community_for(name) + "\n", encoding="utf-8")
            os.chmod(cfile, 0o600)
            dev: dict[str, Any] = {"name": name, "driver": "snmp", "host": "127.0.0.1", "port": port,
                                   "version": "2c", "community_file": str(cfile)}
            if len(profiles) == 1:
                dev["profile"] = profiles[0]
            else:
                dev["profiles"] = profiles
            rack.devices.append(dev)
    return rack


def rack_config(rack: SimulatedRack, state_dir: str, listen: str = "127.0.0.1:9847",
                mqtt_url: str | None = None, interval: str = "10s") -> dict[str, Any]:
    """A whole rackpulse config for a simulated rack."""
    cfg: dict[str, Any] = {
        "site": "sim",
        "rack": "r1",
        "agent": {"name": "sim-agent", "interval": interval, "timeout": "2s", "state_dir": state_dir},
        "prometheus": {"listen": listen},
        "devices": rack.devices,
    }
    if mqtt_url:
        cfg["mqtt"] = {"url": mqtt_url, "topic_prefix": "rackpulse", "qos": 1}
    return cfg


async def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_simulate(args: argparse.Namespace) -> int:
    """Entry point of ``rackpulse simulate``."""
    try:
        faults = parse_faults(args.faults)
    except ValueError as e:
        print(f"--faults: {e}")
        return 2
    out = Path(args.config_out) if args.config_out else None
    rack = await start_rack(args.pdus, args.switches, args.snmp_pdus, args.ports, args.outlets, faults,
                            args.port_base, secrets_dir=out.parent / "secrets" if out else None)
    try:
        text = yaml.safe_dump(rack_config(rack, state_dir=tempfile.gettempdir() + "/rackpulse-sim-state"),
                              sort_keys=False)
        if out:
            out.write_text(text, encoding="utf-8")
        print("# rackpulse simulate: devices are serving on 127.0.0.1; Ctrl-C stops them.")
        print(text, flush=True)
        await wait_for_signal()
    finally:
        await rack.stop()
    return 0
