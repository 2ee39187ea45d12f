"""Run ``rackpulse`` with the SNMP wire engine chosen by the benchmark (an experiment switch).

``python -m bench.agent_launch --snmp-engine fast run -c FILE`` is ``rackpulse run -c FILE`` with
the built-in SNMP plug-in's session factory set to FastSession (``pysnmp``: PysnmpSession,
``default``: whatever the plug-in ships). The config has no knob for this, so benchmarks that
compare engines use this launcher and say so in their output.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    engine = "default"
    if args[:1] == ["--snmp-engine"]:
        engine, args = args[1], args[2:]
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
