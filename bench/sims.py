"""Serve many simulated Modbus PDUs from one process, for the exposition and fleet benchmarks.

Run as ``python -m bench.sims --pdus N --outlets 48 --ports-out FILE``: it starts N
``ModbusPduSimulator`` (raritan-px-modbus) on free ports of 127.0.0.1, writes their ports as a
JSON list to FILE, and serves until SIGTERM/SIGINT. Use :func:`start_pdus` from a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import lib


async def _serve(pdus: int, outlets: int, ports_out: Path) -> None:
    from drivers.modbus.simulator import ModbusPduSimulator

    sims: list[Any] = []
    ports: list[int] = []
    for i in range(pdus):
        sim = ModbusPduSimulator(f"pdu-{i + 1}", profile="raritan-px-modbus", host="127.0.0.1", port=0,
                                 outlets=outlets, seed=i)
        ports.append(await sim.start())
        sims.append(sim)
    tmp = ports_out.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports), encoding="utf-8")
    tmp.rename(ports_out)  # atomic: the reader never sees half a list
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sim in sims:
        await sim.stop()


def start_pdus(work: Path, pdus: int, outlets: int = 48, cpus: str | None = None,
               timeout: float = 300.0) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start the simulator process; return it with the PDUs' TCP ports (in order pdu-1..N)."""
    ports_out = work / "pdu-ports.json"
    ports_out.unlink(missing_ok=True)
    proc = lib.start([lib.PY, "-m", "bench.sims", "--pdus", str(pdus), "--outlets", str(outlets),
                      "--ports-out", str(ports_out)], log=work / "sims.log", cpus=cpus, cwd=lib.REPO)
    end = time.monotonic() + timeout
    while not ports_out.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"simulators did not start:\n{(work / 'sims.log').read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    ports: list[int] = json.loads(ports_out.read_text(encoding="utf-8"))
    return proc, ports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdus", type=int, required=True)
    p.add_argument("--outlets", type=int, default=48)
    p.add_argument("--ports-out", type=Path, required=True)
    a = p.parse_args(argv)
    asyncio.run(_serve(a.pdus, a.outlets, a.ports_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
