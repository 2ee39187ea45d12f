"""Serve many simulated Modbus PDUs from one process, for the exposition and fleet benchmarks.

Run as ``python -m bench.sims --pdus N --outlets 48 --ports-out FILE``: it starts N
``ModbusPduSimulator`` (raritan-px-modbus) on free ports of 127.0.0.1, writes their ports as a
JSON list to FILE, and serves until SIGTERM/SIGINT. Use :func:`start_pdus` from a benchmark.

``--light`` serves the same register layout from a minimal Modbus/TCP responder instead (FC01
and FC03 only, one shared register image whose energy counters advance every second). The
pymodbus server behind the project simulator costs ~0.3 ms of CPU per request, so 800 PDUs x
50 requests per 10 s would need more than the one core the fleet benchmark leaves for servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import lib


class _Image:
    """One register image of a raritan-px-modbus PDU, shared by every light responder."""

    def __init__(self, outlets: int) -> None:
        from drivers.modbus import load_profile
        from drivers.modbus.codec import encode_value
        from drivers.profiles import ProfileLibrary

        self.encode = encode_value
        self.regs = bytearray(65536 * 2)
        self.coils = bytearray(b"\xff" * 8192)  # every outlet on
        prof = load_profile(ProfileLibrary([]), "raritan-px-modbus", outlets)
        self.fields = [f for f in prof.fields if f.function == "holding"]
        self.energy = [f for f in self.fields if f.metric.endswith("_joules_total")]
        self.joules = 3.6e9
        for f in self.fields:
            outlet = dict(f.labels).get("outlet")
            amps = 0.5 + (int(outlet) % 7) * 0.25 if outlet else 6.0
            value = {"inlet_voltage_volts": 230.0, "inlet_frequency_hertz": 50.0, "inlet_power_factor_ratio": 0.95,
                     "inlet_current_amperes": amps, "outlet_current_amperes": amps,
                     "inlet_power_watts": 230 * amps * 0.95, "outlet_power_watts": 230 * amps * 0.95,
                     "inlet_apparent_power_voltamperes": 230 * amps}.get(f.metric, self.joules)
            self.put(f, value)

    def put(self, f: Any, value: float) -> None:
        words = self.encode(f, value)
        self.regs[f.address * 2 : (f.address + len(words)) * 2] = struct.pack(f">{len(words)}H", *words)

    def tick(self) -> None:
        self.joules += 3600.0 * 250  # 250 W for one second, in Wh-resolution joules
        for f in self.energy:
            self.put(f, self.joules)


class _LightModbus(asyncio.Protocol):
    """Answers FC03 (holding registers) and FC01 (coils) from the shared image; FC others: exception 1."""

    def __init__(self, image: _Image) -> None:
        self.image = image
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out: list[bytes] = []
        while len(buf) >= 12:
            tid, _proto, length = struct.unpack_from(">HHH", buf)
            end = 6 + length
            if len(buf) < end:
                break
            unit, fc, addr, count = struct.unpack_from(">BBHH", buf, 6)
            buf = buf[end:]
            if fc == 3 and 1 <= count <= 125 and addr + count <= 65536:
                body = bytes((fc, count * 2)) + self.image.regs[addr * 2 : (addr + count) * 2]
            elif fc == 1 and 1 <= count <= 2000:
                nbytes = (count + 7) // 8
                bits = bytearray(self.image.coils[:nbytes])
                if count % 8:
                    bits[-1] &= (1 << (count % 8)) - 1
                body = bytes((fc, nbytes)) + bits
            else:
                body = bytes((fc | 0x80, 1))
            out.append(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def _ticker(image: _Image) -> None:
    while True:
        await asyncio.sleep(1.0)
        image.tick()


async def _serve(pdus: int, outlets: int, ports_out: Path, light: bool) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two sockets per PDU
    handles: list[Any] = []
    ports: list[int] = []
    loop = asyncio.get_running_loop()
    ticker: asyncio.Task[None] | None = None
    if light:
        image = _Image(outlets)
        ticker = asyncio.create_task(_ticker(image))
        for _ in range(pdus):
            srv = await loop.create_server(lambda: _LightModbus(image), "127.0.0.1", 0)
            ports.append(int(srv.sockets[0].getsockname()[1]))
            handles.append(srv)
    else:
        from drivers.modbus.simulator import ModbusPduSimulator

        for i in range(pdus):
            sim = ModbusPduSimulator(f"pdu-{i + 1}", profile="raritan-px-modbus", host="127.0.0.1", port=0,
                                     outlets=outlets, seed=i)
            ports.append(await sim.start())
            handles.append(sim)
    tmp = ports_out.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports), encoding="utf-8")
    tmp.rename(ports_out)  # atomic: the reader never sees half a list
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if ticker is not None:
        ticker.cancel()
    for h in handles:
        if light:
            h.close()
        else:
            await h.stop()


def start_pdus(work: Path, pdus: int, outlets: int = 48, cpus: str | None = None, light: bool = False,
               timeout: float = 300.0) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start the simulator process; return it with the PDUs' TCP ports (in order pdu-1..N)."""
    ports_out = work / "pdu-ports.json"
    ports_out.unlink(missing_ok=True)
    proc = lib.start([lib.PY, "-m", "bench.sims", "--pdus", str(pdus), "--outlets", str(outlets),
                      "--ports-out", str(ports_out), *(["--light"] if light else [])],
                     log=work / "sims.log", cpus=cpus, cwd=lib.REPO)
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
    p.add_argument("--light", action="store_true", help="minimal FC01/FC03 responder instead of the simulator")
    a = p.parse_args(argv)
    asyncio.run(_serve(a.pdus, a.outlets, a.ports_out, a.light))
    return 0


if __name__ == "__main__":
    sys.exit(main())
