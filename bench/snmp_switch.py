"""SNMP switch benchmark: CPU per poll and per 10k varbinds walking ifTable+ifXTable of a 97-port snmpd.

One run compares, against the same Net-SNMP snmpd (a network namespace with 48 veth pairs, so
97 interfaces), v2c and v3 authPriv SHA/AES, max-repetitions 25:

- ``snmpbulkwalk -Cr25`` of both tables (CPU from wait4, process start included);
- Debian's ``prometheus-snmp-exporter`` with a hand-written module walking both tables
  (CPU of the exporter process from /proc, per ``/snmp?target=...`` scrape);
- plain pysnmp 7 ``bulk_walk_cmd`` of both tables;
- rackpulse: ``SnmpDriver`` with the ``if-mib`` profile (a whole normalized poll), and the
  ``FastSession`` walk of the columns that profile needs.

The Python rows run as subprocesses that report getrusage deltas around the measured polls, so
interpreter start-up and imports are excluded. Usage (root; creates and removes ``rpbench-<pid>``)::

    .venv/bin/python -m bench.snmp_switch [--polls 30] [--versions 2c,3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import lib

IF_TABLE = "1.3.6.1.2.1.2.2"
IFX_TABLE = "1.3.6.1.2.1.31.1.1"
BASES = (IF_TABLE, IFX_TABLE)
MAX_REP = 25

# (column, name, snmp_exporter type) of ifTable and ifXTable, as the generator's if_mib module has them.
IF_COLUMNS = [
    (1, "ifIndex", "gauge"), (2, "ifDescr", "DisplayString"), (3, "ifType", "gauge"), (4, "ifMtu", "gauge"),
    (5, "ifSpeed", "gauge"), (6, "ifPhysAddress", "PhysAddress48"), (7, "ifAdminStatus", "gauge"),
    (8, "ifOperStatus", "gauge"), (9, "ifLastChange", "gauge"), (10, "ifInOctets", "counter"),
    (11, "ifInUcastPkts", "counter"), (12, "ifInNUcastPkts", "counter"), (13, "ifInDiscards", "counter"),
    (14, "ifInErrors", "counter"), (15, "ifInUnknownProtos", "counter"), (16, "ifOutOctets", "counter"),
    (17, "ifOutUcastPkts", "counter"), (18, "ifOutNUcastPkts", "counter"), (19, "ifOutDiscards", "counter"),
    (20, "ifOutErrors", "counter"), (21, "ifOutQLen", "gauge"),
]
IFX_COLUMNS = [
    (1, "ifName", "DisplayString"), (2, "ifInMulticastPkts", "counter"), (3, "ifInBroadcastPkts", "counter"),
    (4, "ifOutMulticastPkts", "counter"), (5, "ifOutBroadcastPkts", "counter"), (6, "ifHCInOctets", "counter"),
    (7, "ifHCInUcastPkts", "counter"), (8, "ifHCInMulticastPkts", "counter"),
    (9, "ifHCInBroadcastPkts", "counter"), (10, "ifHCOutOctets", "counter"), (11, "ifHCOutUcastPkts", "counter"),
    (12, "ifHCOutMulticastPkts", "counter"), (13, "ifHCOutBroadcastPkts", "counter"),
    (14, "ifLinkUpDownTrapEnable", "gauge"), (15, "ifHighSpeed", "gauge"), (16, "ifPromiscuousMode", "gauge"),
    (17, "ifConnectorPresent", "gauge"), (18, "ifAlias", "DisplayString"),
    (19, "ifCounterDiscontinuityTime", "gauge"),
]


# --- snmp_exporter ---------------------------------------------------------------------------------
def exporter_config(creds: lib.SnmpCreds) -> str:
    """snmp.yml for snmp_exporter 0.21 (auth inside the module): modules if_v2 and if_v3.

    Mirrors the generator's if_mib module: every column a metric indexed by ifIndex, with ifAlias,
    ifDescr and ifName looked up as labels (from the walked tables; no extra requests).
    """
    metrics: list[str] = []
    lookups = [("ifAlias", f"{IFX_TABLE}.1.18"), ("ifDescr", f"{IF_TABLE}.1.2"), ("ifName", f"{IFX_TABLE}.1.1")]
    for base, cols in ((IF_TABLE, IF_COLUMNS), (IFX_TABLE, IFX_COLUMNS)):
        for col, name, typ in cols:
            m = [f"  - name: {name}", f"    oid: {base}.1.{col}", f"    type: {typ}",
                 f"    help: {name} column of {'ifTable' if base == IF_TABLE else 'ifXTable'}",
                 "    indexes:", "    - labelname: ifIndex", "      type: gauge", "    lookups:"]
            for lname, loid in lookups:
                m += ["    - labels:", "      - ifIndex", f"      labelname: {lname}", f"      oid: {loid}",
                      "      type: DisplayString"]
            metrics.append("\n".join(m))
    body = "\n".join(metrics)
    walk = f"  walk:\n  - {IF_TABLE}\n  - {IFX_TABLE}\n"
    common = f"  max_repetitions: {MAX_REP}\n  retries: 1\n  timeout: 5s\n"
    return (
        f"if_v2:\n{walk}  version: 2\n{common}  auth:\n    community: {creds.community}\n  metrics:\n{body}\n"
        f"if_v3:\n{walk}  version: 3\n{common}  auth:\n    username: {creds.user}\n"
        f"    security_level: authPriv\n    password: {creds.auth_key}\n    auth_protocol: SHA\n"
        f"    priv_protocol: AES\n    priv_password: {creds.priv_key}\n  metrics:\n{body}\n"
    )


def bench_exporter(snmpd: lib.Snmpd, work: Path, polls: int, cpus: str | None) -> dict[str, dict[str, Any]]:
    """Scrape snmp_exporter ``polls`` times per version; CPU of the exporter process per scrape."""
    exe = shutil.which("prometheus-snmp-exporter")
    if not exe:
        raise RuntimeError("prometheus-snmp-exporter is not installed (Debian package prometheus-snmp-exporter)")
    cfg = work / "snmp.yml"
    cfg.write_text(exporter_config(snmpd.creds), encoding="utf-8")
    port = lib.free_port()
    proc = lib.start([exe, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                     log=work / "exporter.log", cpus=cpus)
    out: dict[str, dict[str, Any]] = {}
    try:
        lib.wait_tcp(port)
        for version, module in (("2c", "if_v2"), ("3", "if_v3")):
            url = f"http://127.0.0.1:{port}/snmp?target=127.0.0.1:{snmpd.port}&module={module}"
            body = b""
            for _ in range(3):  # warm-up: engine discovery, Go runtime growth
                body = lib.http_get(url)
            samples = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
            if b"ifHCInOctets{" not in body:
                raise RuntimeError(f"snmp_exporter scrape has no ifHCInOctets:\n{body[:2000]!r}")
            c0, t0 = lib.proc_cpu(proc.pid), time.perf_counter()
            for _ in range(polls):
                lib.http_get(url)
            cpu, wall = lib.proc_cpu(proc.pid) - c0, time.perf_counter() - t0
            out[version] = {"cpu": cpu, "wall": wall, "polls": polls, "samples": samples,
                            "rss": lib.proc_mem(proc.pid).get("VmHWM", 0)}
    finally:
        lib.stop(proc)
    return out


# --- snmpbulkwalk ----------------------------------------------------------------------------------
def bench_bulkwalk(snmpd: lib.Snmpd, version: str, polls: int, cpus: str | None) -> dict[str, Any]:
    auth = snmpd.v2_args() if version == "2c" else snmpd.v3_args()
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    cpu = wall = 0.0
    varbinds = 0
    os.environ["MIBS"] = ""
    for i in range(polls + 1):
        n = 0
        for base in BASES:
            r = lib.measure_child([*pin, "snmpbulkwalk", *auth, f"-Cr{MAX_REP}", "-On", "-Oq",
                                   f"127.0.0.1:{snmpd.port}", base])
            if r.rc != 0:
                raise RuntimeError(f"snmpbulkwalk failed: {r.out[-500:]!r}")
            n += r.out.count(b"\n")
            if i:  # the first round is warm-up (page cache, snmpd's interface cache)
                cpu += r.cpu
                wall += r.wall
        varbinds = n
    return {"cpu": cpu, "wall": wall, "polls": polls, "varbinds": varbinds}


# --- Python workers (run as subprocesses; report getrusage deltas) --------------------------------
async def _pysnmp_worker(a: argparse.Namespace) -> dict[str, Any]:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        bulk_walk_cmd,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
    )

    c = lib.SnmpCreds()
    eng = SnmpEngine()
    tgt = await UdpTransportTarget.create(("127.0.0.1", a.port), timeout=2, retries=1)
    auth: Any = (CommunityData(c.community, mpModel=1) if a.version == "2c" else
                 UsmUserData(c.user, c.auth_key, c.priv_key, authProtocol=usmHMACSHAAuthProtocol,
                             privProtocol=usmAesCfb128Protocol))

    async def one() -> int:
        n = 0
        for base in BASES:
            async for err, status, _idx, vbs in bulk_walk_cmd(
                eng, auth, tgt, ContextData(), 0, MAX_REP, ObjectType(ObjectIdentity(base)),
                lexicographicMode=False, lookupMib=False,
            ):
                if err or status:
                    raise RuntimeError(f"pysnmp walk of {base}: {err or status.prettyPrint()}")
                n += len(vbs)
        return n

    varbinds = await one()  # warm-up (v3 engine discovery, imports done lazily)
    c0, t0 = lib.self_cpu(), time.perf_counter()
    for _ in range(a.polls):
        await one()
    res = {"cpu": lib.self_cpu() - c0, "wall": time.perf_counter() - t0, "polls": a.polls, "varbinds": varbinds}
    eng.close_dispatcher()
    return res


def _device_config(a: argparse.Namespace, secrets: Path, profiles: list[str]) -> dict[str, Any]:
    c = lib.SnmpCreds()
    dev: dict[str, Any] = {"name": "sw-bench", "driver": "snmp", "host": "127.0.0.1", "port": a.port,
                           "profiles": profiles, "max_repetitions": MAX_REP}
    if a.version == "2c":
        (secrets / "community").write_text(c.community + "\n", encoding="utf-8")
        dev.update(version="2c", community_file=str(secrets / "community"))
    else:
        (secrets / "auth").write_text(c.auth_key + "\n", encoding="utf-8")
        (secrets / "priv").write_text(c.priv_key + "\n", encoding="utf-8")
        dev.update(version="3", v3={"user": c.user, "auth_protocol": "SHA", "auth_key_file": str(secrets / "auth"),
                                    "priv_protocol": "AES", "priv_key_file": str(secrets / "priv")})
    return dev


def build_snmp_driver(dev: dict[str, Any], session: str = "default", interval: float = 30.0) -> Any:
    """An SnmpDriver built as the daemon builds it; ``session`` "fast" swaps in FastSession.

    Every session is wrapped to count the varbinds it returns, for the per-10k-varbind figure.
    """
    from drivers.base import PollSettings
    from drivers.profiles import ProfileLibrary
    from drivers.registry import plugins
    from drivers.snmp import SnmpPlugin

    plugin = plugins()["snmp"]
    cfg = plugin.config_model.model_validate(dev)
    if session == "fast":
        from drivers.snmp.fastwire import FastSession

        inner: Any = FastSession
    elif session == "pysnmp":
        from drivers.snmp.pysnmp_wire import pysnmp_session

        inner = pysnmp_session
    else:
        inner = None
    if inner is None:
        probe: Any = plugin.create(cfg, ProfileLibrary([]), PollSettings(interval=interval, timeout=5.0, retries=0))
        inner = probe.session_factory
    factory: Any = lambda t: CountingSession(inner(t))  # noqa: E731 - duck-typed SnmpSession
    return SnmpPlugin(session_factory=factory).create(
        cfg, ProfileLibrary([]), PollSettings(interval=interval, timeout=5.0, retries=0))


class CountingSession:
    """Wraps an SnmpSession and counts the varbinds it returns (the wrapper costs ~nothing)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.varbinds = 0

    @property
    def requests(self) -> int:
        return int(self.inner.requests)

    async def get(self, oids: Any) -> Any:
        got = await self.inner.get(oids)
        self.varbinds += len(got)
        return got

    async def walk(self, bases: Any, max_repetitions: int) -> Any:
        got = await self.inner.walk(bases, max_repetitions)
        self.varbinds += sum(len(v) for v in got.values())
        return got

    async def close(self) -> None:
        await self.inner.close()


async def _driver_worker(a: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        drv = build_snmp_driver(_device_config(a, Path(tmp), ["if-mib"]), a.session)
        res = await drv.poll()  # warm-up: connect, engine discovery, identity, counter baselines
        v0 = drv.session.varbinds
        res = await drv.poll()
        readings, requests, varbinds = len(res.readings), res.requests, drv.session.varbinds - v0
        c0, t0 = lib.self_cpu(), time.perf_counter()
        for _ in range(a.polls):
            await drv.poll()
        out = {"cpu": lib.self_cpu() - c0, "wall": time.perf_counter() - t0, "polls": a.polls,
               "readings": readings, "requests": requests, "varbinds": varbinds,
               "walk_columns": len(drv.walk_columns()),
               "session": type(drv.session.inner).__name__}
        await drv.close()
    return out


def _profile_columns(port: int, version: str) -> list[tuple[int, ...]]:
    """The columns an if-mib SnmpDriver walks (asked from the driver itself)."""
    with tempfile.TemporaryDirectory() as tmp:
        ns = argparse.Namespace(port=port, version=version)
        cols: list[tuple[int, ...]] = build_snmp_driver(_device_config(ns, Path(tmp), ["if-mib"])).walk_columns()
        return cols


def snmp_target(port: int, version: str) -> Any:
    """An SnmpTarget for the benchmark snmpd with the benchmark credentials."""
    from drivers.snmp.wire import SnmpTarget

    c = lib.SnmpCreds()
    if version == "2c":
        return SnmpTarget("sw-bench", "127.0.0.1", port, version="2c", community=c.community, timeout=2.0)
    return SnmpTarget("sw-bench", "127.0.0.1", port, version="3", user=c.user, auth_protocol="SHA",
                      auth_key=c.auth_key, priv_protocol="AES", priv_key=c.priv_key, timeout=2.0)


def make_session(kind: str, port: int, version: str) -> Any:
    """A rackpulse SnmpSession: ``fast`` (FastSession) or ``pysnmp`` (PysnmpSession)."""
    if kind == "fast":
        from drivers.snmp.fastwire import FastSession

        return FastSession(snmp_target(port, version))
    from drivers.snmp.pysnmp_wire import PysnmpSession

    return PysnmpSession(snmp_target(port, version))


async def _fastwalk_worker(a: argparse.Namespace) -> dict[str, Any]:
    from drivers.snmp.wire import parse_oid

    session = make_session(a.session, a.port, a.version)
    bases = _profile_columns(a.port, a.version) if a.columns == "profile" else [parse_oid(b) for b in BASES]

    async def one() -> int:
        got = await session.walk(bases, MAX_REP)
        return sum(len(v) for v in got.values())

    first = await session.walk(bases, MAX_REP)  # warm-up: socket, v3 discovery and key localisation
    varbinds = sum(len(v) for v in first.values())
    # Proof that values are really decoded: how many came back as Python ints.
    int_values = sum(1 for v in first.values() for vb in v if isinstance(vb.value, int))
    c0, t0 = lib.self_cpu(), time.perf_counter()
    for _ in range(a.polls):
        await one()
    requests = getattr(session, "requests", 0)
    out = {"cpu": lib.self_cpu() - c0, "wall": time.perf_counter() - t0, "polls": a.polls,
           "varbinds": varbinds, "int_values": int_values, "columns": len(bases),
           "requests": requests // (a.polls + 1) if requests else ""}
    await session.close()
    return out


def worker_main(a: argparse.Namespace) -> None:
    fn = {"pysnmp": _pysnmp_worker, "driver": _driver_worker, "fastwalk": _fastwalk_worker}[a.worker]
    print(json.dumps(asyncio.run(fn(a))), flush=True)


# --- orchestration ---------------------------------------------------------------------------------
def _row(tool: str, version: str, r: dict[str, Any], base_exp: float | None, base_bw: float | None) -> list[Any]:
    per_poll = r["cpu"] / r["polls"]
    vb = r.get("varbinds") or 0
    per10k = per_poll / vb * 10_000 if vb else float("nan")
    return [tool, version, vb or "?", r.get("requests", ""), per_poll, per10k,
            f"{per_poll / base_exp:.2f}x" if base_exp else "-", f"{per_poll / base_bw:.1f}x" if base_bw else "-",
            r["wall"] / r["polls"]]


def inner_main(a: argparse.Namespace) -> int:
    lib.install_exit_handlers()
    versions = a.versions.split(",")
    server_cpu, client_cpu = (None, None) if a.no_pin else ("1", "0")
    results: dict[str, Any] = {"machine": lib.machine(), "netns": lib.inside_netns(), "polls": a.polls,
                               "tools": {"snmpd": lib.tool_version(["snmpd", "-v"]).strip() or "net-snmp",
                                         "snmp_exporter": lib.tool_version(["prometheus-snmp-exporter",
                                                                            "--version"])},
                               "rows": {}}
    with lib.workdir("rpbench-snmp-") as work:
        snmpd = lib.Snmpd(work / "snmpd", cpus=server_cpu)
        port = snmpd.start()
        wk = [lib.PY, "-m", "bench.snmp_switch", "--port", str(port), "--polls", str(a.polls)]
        rows: dict[str, dict[str, Any]] = {}
        exp = bench_exporter(snmpd, work, a.exporter_polls or a.polls, client_cpu)
        for v in versions:
            print(f"[v{v}] snmpbulkwalk ...", flush=True)
            rows[f"snmpbulkwalk|{v}"] = bench_bulkwalk(snmpd, v, a.polls, client_cpu)
            vb = rows[f"snmpbulkwalk|{v}"]["varbinds"]
            rows[f"snmp_exporter|{v}"] = {**exp[v], "varbinds": vb}
            print(f"[v{v}] pysnmp bulk_walk_cmd ...", flush=True)
            rows[f"pysnmp bulk_walk_cmd|{v}"] = lib.run_json_worker(
                [*wk, "--worker", "pysnmp", "--version", v], cpus=client_cpu)
            for worker, session, label in (
                ("fastwalk", "fast", "rackpulse FastSession walk (both tables)"),
                ("fastwalk", "pysnmp", "rackpulse PysnmpSession walk (both tables)"),
                ("driver", "fast", "rackpulse SnmpDriver if-mib poll, FastSession"),
                ("driver", "pysnmp", "rackpulse SnmpDriver if-mib poll, PysnmpSession"),
            ):
                print(f"[v{v}] {label} ...", flush=True)
                try:
                    rows[f"{label}|{v}"] = lib.run_json_worker(
                        [*wk, "--worker", worker, "--version", v, "--columns", "tables", "--session", session],
                        cpus=client_cpu)
                except Exception as e:  # report the missing piece, keep the peers' figures
                    print(f"  {label}: FAILED: {str(e)[-800:]}", flush=True)
                    rows[f"{label}|{v}"] = {"error": str(e)[-800:]}
            try:
                rows[f"rackpulse FastSession walk (if-mib columns)|{v}"] = lib.run_json_worker(
                    [*wk, "--worker", "fastwalk", "--version", v, "--columns", "profile"], cpus=client_cpu)
            except Exception as e:
                rows[f"rackpulse FastSession walk (if-mib columns)|{v}"] = {"error": str(e)[-800:]}
        results["snmpd_cpu_total"] = lib.proc_cpu(snmpd.proc.pid) if snmpd.proc else None
        snmpd.stop()
    results["rows"] = rows
    table: list[list[Any]] = []
    for key, r in rows.items():
        tool, v = key.split("|")
        if "error" in r:
            table.append([tool, v, "-", "-", "FAILED", "-", "-", "-", "-"])
            continue
        ex, bw = rows.get(f"snmp_exporter|{v}"), rows.get(f"snmpbulkwalk|{v}")
        table.append(_row(tool, v, r, ex["cpu"] / ex["polls"] if ex else None,
                          bw["cpu"] / bw["polls"] if bw else None))
    table.sort(key=lambda r: (r[1], r[0]))
    print()
    m = results["machine"]
    print(f"# SNMP ifTable+ifXTable, 97-port snmpd, max-repetitions {MAX_REP}, {a.polls} polls each; "
          f"{m['date']}; {m['nproc']} x {m['cpu']} ({m['arch']})")
    print(lib.md_table(["tool", "ver", "varbinds/poll", "requests", "CPU-s/poll", "CPU-s/10k vb",
                        "vs snmp_exporter", "vs snmpbulkwalk", "wall-s/poll"], table))
    results["table"] = table
    path = lib.save_results("snmp_switch", results, a.json)
    print(f"\nresults: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=30, help="measured polls per tool and version")
    p.add_argument("--exporter-polls", type=int, default=0, help="scrapes of snmp_exporter (default --polls)")
    p.add_argument("--versions", default="2c,3")
    p.add_argument("--no-pin", action="store_true", help="do not pin snmpd to CPU 1 and clients to CPU 0")
    p.add_argument("--json", help="where to write results (default bench/results/snmp_switch.json)")
    p.add_argument("--worker", choices=["pysnmp", "driver", "fastwalk"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--version", default="2c", help=argparse.SUPPRESS)
    p.add_argument("--columns", default="tables", help=argparse.SUPPRESS)
    p.add_argument("--session", default="fast", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker_main(a)
        return 0
    if not lib.inside_netns():
        return lib.reexec_in_netns("bench.snmp_switch", sys.argv[1:] if argv is None else argv)
    return inner_main(a)


if __name__ == "__main__":
    sys.exit(main())
