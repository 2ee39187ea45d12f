"""Modbus benchmark: client CPU per 1k registers, mbpoll vs rackpulse's ModbusDriver.

Servers (one subprocess, pinned to CPU 1): a plain pymodbus device with 125 holding registers
at address 0, and the project's ``ModbusPduSimulator`` (raritan-px-modbus, 48 outlets). Clients
(pinned to CPU 0) are measured by their own CPU only:

- ``mbpoll -m tcp -a 1 -r 1 -c 125 -t 4 -1`` in a loop (a process per read; CPU from wait4);
- ``mbpoll ... -l 11`` polling continuously on one connection (CPU from wait4 after SIGINT);
- plain pymodbus ``read_holding_registers(0, count=125)`` in a loop (no decoding);
- rackpulse ``ModbusDriver`` with an inline map of the same 125 registers (decode + normalize),
  with ``engine: fast`` (the default on TCP) and ``engine: pymodbus``;
- rackpulse ``ModbusDriver`` polling the whole raritan-px-modbus profile from the simulator,
  with requests per poll against the fewest requests the 125-register limit allows: engine
  pymodbus, engine fast one request at a time (the default), and engine fast with ``pipeline``
  8 and 16 requests in flight;
- the same fast-engine polls against ``bench.sims``' light responder (same register layout),
  which answers every request that arrives in one read with one write, as a quick device would;
  the pymodbus server behind the simulator writes each answer on its own.

Python rows are subprocesses reporting getrusage deltas around the measured polls (start-up and
imports excluded). Usage::

    .venv/bin/python -m bench.modbus_pdu [--polls 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import lib

N_REGS = 125


# --- servers ---------------------------------------------------------------------------------------
async def _serve(outlets: int) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    generic_port = lib.free_port()
    dev = SimDevice(id=1, simdata=[SimData(address=0, values=[(i * 37) & 0xFFFF for i in range(N_REGS)],
                                           datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([dev], address=("127.0.0.1", generic_port))
    task = asyncio.create_task(server.serve_forever())
    ports: dict[str, Any] = {"generic": generic_port, "pdu": None, "pdu_error": None, "light": None}
    sim: Any = None
    light: Any = None
    try:
        from drivers.modbus.simulator import ModbusPduSimulator

        sim = ModbusPduSimulator("pdu-bench", profile="raritan-px-modbus", host="127.0.0.1", port=0,
                                 outlets=outlets, seed=1)
        ports["pdu"] = await sim.start()
    except Exception as e:  # the simulator may not exist yet; the generic rows still run
        ports["pdu_error"] = f"{type(e).__name__}: {e}"
    try:
        from bench.sims import _Image, _LightModbus

        image = _Image(outlets)
        light = await asyncio.get_running_loop().create_server(lambda: _LightModbus(image), "127.0.0.1", 0)
        ports["light"] = int(light.sockets[0].getsockname()[1])
    except Exception as e:
        ports["light_error"] = f"{type(e).__name__}: {e}"
    lib.wait_tcp(generic_port)
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if light is not None:
        light.close()
    if sim is not None:
        await sim.stop()
    await server.shutdown()
    task.cancel()


def start_servers(work: Path, outlets: int, cpus: str | None) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the server subprocess and return it with its ports."""
    out = work / "servers.out"
    proc = lib.start([lib.PY, "-m", "bench.modbus_pdu", "--serve", "--outlets", str(outlets)],
                     stdout=open(out, "wb"), cpus=cpus, cwd=lib.REPO)  # noqa: SIM115
    end = time.monotonic() + 30
    while time.monotonic() < end:
        text = out.read_text(errors="replace") if out.exists() else ""
        for line in text.splitlines():
            if line.startswith("{"):
                return proc, json.loads(line)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"Modbus servers did not start:\n{out.read_text(errors='replace')[-3000:]}")


# --- mbpoll ----------------------------------------------------------------------------------------
def _mbpoll_cmd(port: int, extra: list[str]) -> list[str]:
    exe = shutil.which("mbpoll")
    if not exe:
        raise RuntimeError("mbpoll is not installed (Debian package mbpoll)")
    return [exe, "-m", "tcp", "-a", "1", "-r", "1", "-c", str(N_REGS), "-t", "4", *extra, "-p", str(port),
            "127.0.0.1"]


def bench_mbpoll_once(port: int, polls: int, cpus: str | None) -> dict[str, Any]:
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    cmd = [*pin, *_mbpoll_cmd(port, ["-1"])]
    lib.measure_child(cmd)  # warm-up
    cpu = wall = 0.0
    for _ in range(polls):
        r = lib.measure_child(cmd)
        if r.rc != 0 or f"[{N_REGS}]:".encode() not in r.out:
            raise RuntimeError(f"mbpoll failed rc={r.rc}: {r.out[-500:]!r}")
        cpu += r.cpu
        wall += r.wall
    return {"cpu": cpu, "wall": wall, "polls": polls, "registers": N_REGS, "requests": 1}


def bench_mbpoll_continuous(port: int, seconds: float, cpus: str | None) -> dict[str, Any]:
    """mbpoll's own poll loop at its fastest rate (-l 11 ms) on one connection."""
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen([*pin, *_mbpoll_cmd(port, ["-l", "11"])], stdout=out, stderr=subprocess.STDOUT)
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        data = out.read()
    polls = data.count(f"[{N_REGS}]:".encode())
    if polls == 0:
        raise RuntimeError(f"mbpoll continuous produced no complete reads: {data[-500:]!r}")
    return {"cpu": ru.ru_utime + ru.ru_stime, "wall": wall, "polls": polls, "registers": N_REGS, "requests": 1}


# --- Python workers --------------------------------------------------------------------------------
async def _pymodbus_worker(a: argparse.Namespace) -> dict[str, Any]:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=a.port, timeout=2, retries=0)
    await client.connect()
    rr = await client.read_holding_registers(0, count=N_REGS, device_id=1)
    assert not rr.isError() and len(rr.registers) == N_REGS
    c0, t0 = lib.self_cpu(), time.perf_counter()
    for _ in range(a.polls):
        rr = await client.read_holding_registers(0, count=N_REGS, device_id=1)
    out = {"cpu": lib.self_cpu() - c0, "wall": time.perf_counter() - t0, "polls": a.polls, "registers": N_REGS,
           "requests": 1}
    client.close()
    return out


def build_modbus_driver(dev: dict[str, Any], interval: float = 10.0) -> Any:
    """A ModbusDriver built through the plug-in registry, exactly as the daemon builds it."""
    from drivers.base import PollSettings
    from drivers.profiles import ProfileLibrary
    from drivers.registry import plugins

    plugin = plugins()["modbus"]
    cfg = plugin.config_model.model_validate(dev)
    return plugin.create(cfg, ProfileLibrary([]), PollSettings(interval=interval, timeout=3.0, retries=0))


def _registers_per_poll(drv: Any) -> tuple[int, int, int]:
    """(registers read per poll, bits read per poll, fewest requests under the 125-register limit)."""
    from drivers.modbus.plan import BIT_FUNCTIONS, plan_reads

    regs = sum(r.count for r in drv.reads if r.function not in BIT_FUNCTIONS)
    bits = sum(r.count for r in drv.reads if r.function in BIT_FUNCTIONS)
    minimal = len(plan_reads(drv.fields, max_registers=N_REGS, max_gap=N_REGS))
    return regs, bits, minimal


async def _driver_worker(a: argparse.Namespace) -> dict[str, Any]:
    dev: dict[str, Any] = {"name": "pdu-bench", "driver": "modbus", "host": "127.0.0.1", "port": a.port,
                           "unit_id": 1, "engine": a.engine, "pipeline": a.pipeline}
    if a.map == "inline":
        dev["registers"] = [{"name": "reg", "address": 0, "type": "uint16", "metric": "outlet_current_amperes",
                             "scale": 0.001, "labels": {"outlet": "{n}"}, "repeat": {"count": N_REGS, "stride": 1}}]
    else:
        dev["profile"] = "raritan-px-modbus"
    drv = build_modbus_driver(dev)
    res = await drv.poll()  # warm-up: connect, identity registers
    res = await drv.poll()
    regs, bits, minimal = _registers_per_poll(drv)
    c0, t0 = lib.self_cpu(), time.perf_counter()
    for _ in range(a.polls):
        await drv.poll()
    out = {"cpu": lib.self_cpu() - c0, "wall": time.perf_counter() - t0, "polls": a.polls,
           "registers": regs, "bits": bits, "requests": res.requests, "minimal_requests": minimal,
           "readings": len(res.readings), "engine": a.engine, "pipeline": a.pipeline}
    await drv.close()
    return out


def worker_main(a: argparse.Namespace) -> None:
    fn = {"pymodbus": _pymodbus_worker, "driver": _driver_worker}[a.worker]
    print(json.dumps(asyncio.run(fn(a))), flush=True)


# --- orchestration ---------------------------------------------------------------------------------
def inner_main(a: argparse.Namespace) -> int:
    lib.install_exit_handlers()
    server_cpu, client_cpu = (None, None) if a.no_pin else ("1", "0")
    results: dict[str, Any] = {"machine": lib.machine(), "polls": a.polls,
                               "tools": {"mbpoll": lib.tool_version(["mbpoll", "-V"])}}
    rows: dict[str, dict[str, Any]] = {}
    with lib.workdir("rpbench-modbus-") as work:
        proc, ports = start_servers(work, a.outlets, server_cpu)
        results["servers"] = ports
        gp = ports["generic"]
        wk = [lib.PY, "-m", "bench.modbus_pdu", "--polls", str(a.polls)]
        print("mbpoll -1 loop ...", flush=True)
        rows["mbpoll -1 (process per read)"] = bench_mbpoll_once(gp, a.polls, client_cpu)
        print("mbpoll continuous ...", flush=True)
        rows["mbpoll -l 11 (one connection)"] = bench_mbpoll_continuous(gp, a.seconds, client_cpu)
        print("pymodbus ...", flush=True)
        rows["plain pymodbus read_holding_registers"] = lib.run_json_worker(
            [*wk, "--worker", "pymodbus", "--port", str(gp)], cpus=client_cpu)
        pdu = f"raritan-px-modbus {a.outlets} outlets"
        drivers: list[tuple[str, Any, str, str, int]] = [
            ("rackpulse ModbusDriver, inline 125 x uint16, engine fast", gp, "inline", "fast", 1),
            ("rackpulse ModbusDriver, inline 125 x uint16, engine pymodbus", gp, "inline", "pymodbus", 1),
            (f"rackpulse ModbusDriver, {pdu}, engine pymodbus", ports["pdu"], "profile", "pymodbus", 1),
            (f"rackpulse ModbusDriver, {pdu}, engine fast, pipeline 1", ports["pdu"], "profile", "fast", 1),
            (f"rackpulse ModbusDriver, {pdu}, engine fast, pipeline 8", ports["pdu"], "profile", "fast", 8),
            (f"rackpulse ModbusDriver, {pdu}, engine fast, pipeline 16", ports["pdu"], "profile", "fast", 16),
            (f"rackpulse ModbusDriver, {pdu} (light responder), engine fast, pipeline 1", ports["light"],
             "profile", "fast", 1),
            (f"rackpulse ModbusDriver, {pdu} (light responder), engine fast, pipeline 16", ports["light"],
             "profile", "fast", 16),
        ]
        for label, port, m, engine, pipeline in drivers:
            print(f"{label} ...", flush=True)
            if port is None:
                rows[label] = {"error": f"server unavailable: {ports.get('pdu_error') or ports.get('light_error')}"}
                continue
            try:
                rows[label] = lib.run_json_worker([*wk, "--worker", "driver", "--port", str(port), "--map", m,
                                                   "--engine", engine, "--pipeline", str(pipeline)],
                                                  cpus=client_cpu)
            except Exception as e:
                rows[label] = {"error": str(e)[-1500:]}
        lib.stop(proc)
    results["rows"] = rows
    base = rows["mbpoll -l 11 (one connection)"]
    base_k = base["cpu"] / (base["polls"] * base["registers"]) * 1e6  # CPU-ms per 1k registers
    once = rows["mbpoll -1 (process per read)"]
    once_k = once["cpu"] / (once["polls"] * once["registers"]) * 1e6
    table: list[list[Any]] = []
    for label, r in rows.items():
        if "error" in r:
            table.append([label, "-", "-", "-", "-", "FAILED", "-", "-"])
            print(f"{label}: {r['error']}")
            continue
        per_poll_ms = r["cpu"] / r["polls"] * 1000
        per_k = per_poll_ms / r["registers"] * 1000
        req = f"{r['requests']} (min {r['minimal_requests']})" if "minimal_requests" in r else r["requests"]
        table.append([label, r["registers"] + r.get("bits", 0) // 16, req, r.get("readings", ""), per_poll_ms,
                      per_k, f"{per_k / base_k:.2f}x", f"{per_k / once_k:.2f}x"])
    m = results["machine"]
    print(f"\n# Modbus/TCP client CPU, {a.polls} polls each; {m['date']}; {m['nproc']} x {m['cpu']} ({m['arch']})")
    print(lib.md_table(["client", "registers/poll", "requests/poll", "readings", "CPU-ms/poll", "CPU-ms/1k regs",
                        "vs mbpoll loop", "vs mbpoll -1"], table))
    results["table"] = table
    print(f"\nresults: {lib.save_results('modbus_pdu', results, a.json)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=300, help="measured polls per client")
    p.add_argument("--seconds", type=float, default=5.0, help="how long mbpoll polls continuously")
    p.add_argument("--outlets", type=int, default=48)
    p.add_argument("--no-pin", action="store_true", help="do not pin servers to CPU 1 and clients to CPU 0")
    p.add_argument("--json", help="where to write results (default bench/results/modbus_pdu.json)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["pymodbus", "driver"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--map", default="profile", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="fast", choices=["fast", "pymodbus"], help=argparse.SUPPRESS)
    p.add_argument("--pipeline", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        asyncio.run(_serve(a.outlets))
        return 0
    if a.worker:
        worker_main(a)
        return 0
    return inner_main(a)


if __name__ == "__main__":
    sys.exit(main())
