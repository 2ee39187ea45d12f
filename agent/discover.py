"""``rackpulse discover HOST``: identify a device and suggest a profile.

SNMP: read sysObjectID and sysDescr and match profiles' ``match:`` prefixes. Modbus: poll the
host once with every Modbus profile and suggest those that answer with a plausible mains voltage.
"""

from __future__ import annotations

import argparse
import asyncio

from drivers.base import PollSettings
from drivers.errors import DeviceError, ProfileError
from drivers.profiles import ProfileLibrary
from drivers.registry import plugins

PLAUSIBLE_VOLTS = (80.0, 300.0)


async def discover_modbus(host: str, port: int, unit_id: int) -> list[tuple[str, int, str]]:
    """(profile, readings, note) for every Modbus profile that reads back sensibly."""
    plugin = plugins()["modbus"]
    lib = ProfileLibrary()
    out: list[tuple[str, int, str]] = []
    for name, doc in lib.names().items():
        if doc.driver != "modbus":
            continue
        try:
            cfg = plugin.config_model.model_validate(
                {"name": "probe", "driver": "modbus", "profile": name, "host": host, "port": port, "unit_id": unit_id,
                 "max_repeat": 1})  # probe one outlet block: units differ in outlet count
            drv = plugin.create(cfg, lib, PollSettings(interval=10, timeout=2, retries=0))
        except (ProfileError, ValueError):
            continue
        try:
            async with asyncio.timeout(3):
                res = await drv.poll()
        except (DeviceError, TimeoutError) as e:
            out.append((name, 0, f"no: {e}"))
            continue
        finally:
            await drv.close()
        volts = [r.value for r in res.readings if r.metric == "inlet_voltage_volts"]
        ok = any(PLAUSIBLE_VOLTS[0] <= v <= PLAUSIBLE_VOLTS[1] for v in volts)
        out.append((name, len(res.readings), "yes" if ok else "answers, but no plausible inlet voltage"))
    return out


async def run_discover(args: argparse.Namespace) -> int:
    """Entry point of ``rackpulse discover``."""
    if args.modbus:
        rows = await discover_modbus(args.host, args.port or 502, args.unit_id)
        best = [r for r in rows if r[2] == "yes"]
        for name, n, note in rows:
            print(f"{name:<24} readings={n:<4} {note}")
        if best:
            print(f"suggested profile: {max(best, key=lambda r: r[1])[0]}")
            return 0
        print("no Modbus profile fits this device")
        return 1
    from drivers.snmp.discover import discover_snmp

    try:
        found = await discover_snmp(args.host, args.port or 161, args.snmp_community)
    except DeviceError as e:
        print(f"{args.host}: {e.reason}: {e}")
        return 1
    print(f"sysObjectID: {found.sys_object_id}")
    print(f"sysDescr:    {found.sys_descr}")
    if found.profiles:
        print(f"suggested profiles: {', '.join(found.profiles)}")
        return 0
    print("no profile matches this sysObjectID; if-mib and entity-sensor work on most switches")
    return 1
