"""The ``rackpulse`` command line: run, check-config, poll, simulate, demo, profiles, discover."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Literal

from agent import __version__
from agent.config import default_path, load_config
from drivers.errors import ConfigError, DeviceError, ProfileError
from drivers.profiles import ProfileLibrary


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import Daemon
    from agent.logs import setup_logging

    fmt: Literal["logfmt", "json"] = "logfmt"
    level = "info"
    try:
        cfg = load_config(args.config, check_profiles=False)
        fmt = "json" if cfg.top.agent.log_format == "json" else "logfmt"
        level = cfg.top.agent.log_level
    except ConfigError:
        pass  # the daemon reports the problems itself, after logging is set up
    setup_logging(fmt, level)
    return asyncio.run(Daemon(args.config).run())


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    print(f"{cfg.source}: OK")
    print(f"  site={cfg.site} rack={cfg.rack} agent={cfg.top.agent.name} listen={cfg.top.prometheus.listen}")
    print(f"  mqtt={'none' if cfg.top.mqtt is None else cfg.top.mqtt.url}")
    print(f"  {len(cfg.devices)} devices:")
    for d in cfg.devices:
        s = cfg.settings_for(d)
        profiles = ",".join(d.profile_names()) or "inline"
        print(f"    {d.name:<16} {d.driver:<7} {profiles:<28} {d.host or '-'} every {s.interval:g}s "
              f"timeout {s.timeout:g}s retries {s.retries}")
    return 0


async def _poll_devices(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    cfg = load_config(args.config)
    drivers = cfg.build_drivers()
    unknown = [n for n in args.device if n not in drivers]
    if unknown:
        raise ConfigError([f"no device named {n!r} in {cfg.source}" for n in unknown])
    out: list[dict[str, Any]] = []
    failed = 0
    for name in args.device or list(drivers):
        drv = drivers[name]
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(drv.settings.timeout):
                res = await drv.poll()
            out.append({
                "device": name, "ok": True, "poll_seconds": round(time.perf_counter() - t0, 4),
                "requests": res.requests,
                "info": {k: getattr(res.info, k) for k in ("vendor", "model", "serial", "firmware", "profile")},
                "readings": [{"metric": r.metric, "labels": dict(r.labels), "value": r.value} for r in res.readings],
            })
        except (DeviceError, TimeoutError) as e:
            failed += 1
            reason = e.reason if isinstance(e, DeviceError) else "timeout"
            out.append({"device": name, "ok": False, "reason": reason, "error": str(e) or "timed out"})
        finally:
            await drv.close()
    return out, failed


def _cmd_poll(args: argparse.Namespace) -> int:
    try:
        out, failed = asyncio.run(_poll_devices(args))
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for dev in out:
            if not dev["ok"]:
                print(f"{dev['device']}: DOWN ({dev['reason']}): {dev['error']}")
                continue
            print(f"{dev['device']}: {len(dev['readings'])} readings in {dev['poll_seconds']}s "
                  f"({dev['requests']} requests)")
            for r in dev["readings"]:
                labels = ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items()))
                print(f"  {r['metric']:<40} {labels:<40} {r['value']:.6g}")
    return 1 if failed else 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    dirs: list[str] = []
    if args.config:
        try:
            dirs = load_config(args.config, check_profiles=False).top.profile_dirs
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
    lib = ProfileLibrary(dirs)
    try:
        if args.action == "show":
            if not args.name:
                print("usage: rackpulse profiles show NAME", file=sys.stderr)
                return 2
            doc = lib.doc(args.name)
            print(f"# {doc.path}")
            print(doc.path.read_text(encoding="utf-8"), end="")
            return 0
        for name, doc in lib.names().items():
            src = doc.data.get("source", "")
            if isinstance(src, list) and src:
                src = src[0].get("mib", src[0]) if isinstance(src[0], dict) else src[0]
            where = "built-in" if doc.path.parent == lib.dirs[-1] else str(doc.path.parent)
            print(f"{name:<22} {doc.driver:<7} {where:<10} {str(src)[:70]}")
    except ProfileError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from agent.simulate import run_simulate

    return asyncio.run(run_simulate(args))


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return asyncio.run(run_demo(args))


def _cmd_discover(args: argparse.Namespace) -> int:
    from agent.discover import run_discover

    return asyncio.run(run_discover(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    p = argparse.ArgumentParser(prog="rackpulse", description="Rack telemetry agent: Modbus and SNMP to "
                                "Prometheus and MQTT.")
    p.add_argument("--version", action="version", version=f"rackpulse {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_config(sp: argparse.ArgumentParser, default: str | None = default_path()) -> None:
        sp.add_argument("-c", "--config", default=default, help=f"config file (default {default_path()})")

    sp = sub.add_parser("run", help="run the daemon")
    with_config(sp)
    sp.set_defaults(fn=_cmd_run)
    sp = sub.add_parser("check-config", help="validate a config and print a summary")
    with_config(sp)
    sp.set_defaults(fn=_cmd_check)
    sp = sub.add_parser("poll", help="poll devices once and print their readings")
    with_config(sp)
    sp.add_argument("device", nargs="*", help="device names (default: all)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(fn=_cmd_poll)
    sp = sub.add_parser("simulate", help="serve simulated devices on 127.0.0.1 and print a config for them")
    sp.add_argument("--pdus", type=int, default=2, help="simulated Modbus PDUs")
    sp.add_argument("--snmp-pdus", type=int, default=1, help="simulated SNMP PDUs (APC and Raritan alternately)")
    sp.add_argument("--switches", type=int, default=1, help="simulated SNMP switches")
    sp.add_argument("--ports", type=int, default=48, help="ports per simulated switch")
    sp.add_argument("--outlets", type=int, default=24, help="outlets per simulated PDU")
    sp.add_argument("--faults", default="", help="e.g. 'pdu-2:delay=5s,sw-1:timeout'")
    sp.add_argument("--port-base", type=int, default=15020, help="first TCP/UDP port to use")
    sp.add_argument("--config-out", help="also write the config to this file")
    sp.set_defaults(fn=_cmd_simulate)
    sp = sub.add_parser("demo", help="a simulated rack, the agent, /metrics, the status page and MQTT")
    sp.add_argument("--listen", default="127.0.0.1:9847", help="HTTP listen address")
    sp.add_argument("--pdus", type=int, default=2)
    sp.add_argument("--switches", type=int, default=1)
    sp.add_argument("--state-dir", help="where to keep the demo's state (default: a temporary directory)")
    sp.set_defaults(fn=_cmd_demo)
    sp = sub.add_parser("profiles", help="list device profiles, or show one")
    sp.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    sp.add_argument("name", nargs="?")
    with_config(sp, default=None)
    sp.set_defaults(fn=_cmd_profiles)
    sp = sub.add_parser("discover", help="identify a device and suggest a profile")
    sp.add_argument("host")
    sp.add_argument("--port", type=int, help="UDP port for SNMP (161) or TCP port for Modbus (502)")
    sp.add_argument("--snmp-community", default="public")
    sp.add_argument("--modbus", action="store_true", help="probe Modbus TCP instead of SNMP")
    sp.add_argument("--unit-id", type=int, default=1)
    sp.set_defaults(fn=_cmd_discover)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rackpulse`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
