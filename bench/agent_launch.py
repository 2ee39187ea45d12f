"""Run ``rackpulse`` with the SNMP wire engine chosen by the benchmark (an experiment switch).

``python -m bench.agent_launch --snmp-engine fast run -c FILE`` is ``rackpulse run -c FILE`` with
the built-in SNMP plug-in's session factory set to FastSession (``pysnmp``: PysnmpSession,
``default``: whatever the plug-in ships). The config has no knob for this, so benchmarks that
compare engines use this launcher and say so in their output.

``--gc-log FILE`` also records every garbage collection that takes 5 ms or more (generation,
seconds, objects collected) as JSON lines, to tell collector pauses from other loop stalls.
"""

from __future__ import annotations

import gc
import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    engine = "default"
    while args[:1] in (["--snmp-engine"], ["--gc-log"]):
        if args[0] == "--snmp-engine":
            engine = args[1]
        else:
            trace_gc(args[1])
        args = args[2:]
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
