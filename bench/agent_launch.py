"""Run ``rackpulse`` with the SNMP wire engine chosen by the benchmark (an experiment switch).

``python -m bench.agent_launch --snmp-engine fast run -c FILE`` is ``rackpulse run -c FILE`` with
the built-in SNMP plug-in's session factory set to FastSession (``pysnmp``: PysnmpSession,
``default``: whatever the plug-in ships). The config has no knob for this, so benchmarks that
compare engines use this launcher and say so in their output.

``--gc-log FILE`` also records every garbage collection that takes 5 ms or more (generation,
seconds, objects collected) as JSON lines, to tell collector pauses from other loop stalls.
``--gc-freeze SECONDS`` (experiment) calls ``gc.freeze()`` every SECONDS from a daemon thread,
so long-lived objects stop being rescanned by full collections; ``--gc-threshold A,B,C`` sets
``gc.set_threshold``. ``--gc-census FILE`` writes, 60 s after start, how many objects the
collector tracks, by type (JSON).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from typing import Any


def trace_gc(path: str, threshold: float = 0.005) -> None:
    """Append one JSON line per collection slower than ``threshold`` seconds to ``path``."""
    out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process lifetime
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        if took >= threshold:
            out.write(json.dumps({"t": time.time(), "gen": info.get("generation"), "seconds": round(took, 4),
                                  "collected": info.get("collected")}) + "\n")

    gc.callbacks.append(callback)


def freeze_every(seconds: float) -> None:
    """Move everything alive into the permanent generation every ``seconds`` (never collected)."""

    def loop() -> None:
        while True:
            time.sleep(seconds)
            gc.freeze()

    threading.Thread(target=loop, name="gc-freeze", daemon=True).start()


def census_after(path: str, seconds: float = 60.0) -> None:
    """Write the collector's tracked objects by type to ``path`` once, after ``seconds``."""

    def run() -> None:
        time.sleep(seconds)
        counts: dict[str, int] = {}
        objs = gc.get_objects()
        for o in objs:
            name = type(o).__qualname__
            counts[name] = counts.get(name, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:30]
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tracked": len(objs), "frozen": gc.get_freeze_count(), "top": top}, f)

    threading.Thread(target=run, name="gc-census", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    engine = "default"
    while args[:1] in (["--snmp-engine"], ["--gc-log"], ["--gc-freeze"], ["--gc-threshold"], ["--gc-census"]):
        opt, val, args = args[0], args[1], args[2:]
        if opt == "--snmp-engine":
            engine = val
        elif opt == "--gc-log":
            trace_gc(val)
        elif opt == "--gc-freeze":
            freeze_every(float(val))
        elif opt == "--gc-census":
            census_after(val)
        else:
            a, b, c = (int(x) for x in val.split(","))
            gc.set_threshold(a, b, c)
    import drivers.snmp as snmp

    if engine == "fast":
        from drivers.snmp.fastwire import FastSession

        snmp.PLUGIN.session_factory = FastSession
    elif engine == "pysnmp":
        from drivers.snmp.pysnmp_wire import pysnmp_session

        snmp.PLUGIN.session_factory = pysnmp_session
    elif engine != "default":
        print(f"--snmp-engine: {engine!r} is not one of default, fast, pysnmp", file=sys.stderr)
        return 2
    from agent.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
