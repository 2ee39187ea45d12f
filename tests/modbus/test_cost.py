"""A guard on the driver's CPU cost per poll, measured with the simulator in another process.

On the 2-core dev box a 48-outlet Xerus poll (50 reads, 940 registers) costs ~2 ms of client CPU
with the fast engine one request at a time (see docs/benchmarks.md for the measured figures).
The bound here is loose, to catch regressions such as a per-register Python path, not to
benchmark.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.modbus.conftest import make_driver

ROOT = Path(__file__).resolve().parents[2]


async def test_poll_cpu_per_thousand_registers() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.modbus.simulator", "--count", "1", "--seed", "1",
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        port = int(line.rsplit(":", 1)[1])
        drv = make_driver(port)
        try:
            await drv.poll()
            registers = sum(r.count for r in drv.reads)
            n = 40
            t0 = time.process_time()
            for _ in range(n):
                res = await drv.poll()
            cpu = (time.process_time() - t0) / n
        finally:
            await drv.close()
    finally:
        proc.terminate()
        await proc.wait()
    per_k = cpu / registers * 1000
    print(f"\nclient CPU per poll {cpu * 1e3:.2f} ms, {per_k * 1e3:.2f} ms per 1k registers, "
          f"{cpu / len(drv.reads) * 1e6:.0f} us per request")
    assert len(res.readings) == 199
    assert per_k < 0.008, f"{per_k * 1e3:.2f} ms of CPU per 1k registers"
