"""Fault injection spec shared by the bundled simulators (``rackpulse simulate --faults``).

Spec grammar: ``DEVICE:KIND[=ARG]`` items separated by commas, e.g.
``pdu-2:delay=5s,pdu-3:drop,sw-1:wrong-community``.

Kinds: ``delay=DUR`` (reply late), ``timeout`` (never reply), ``drop`` (close the connection),
``exception=CODE`` (Modbus exception response), ``garbage`` (malformed reply),
``wrong-community`` (SNMP: refuse the configured community/user), ``truncate=N`` (SNMP: tables end
after N rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.config import parse_duration

KINDS = frozenset({"delay", "timeout", "drop", "exception", "garbage", "wrong-community", "truncate"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault on one simulated device."""

    device: str
    kind: str
    arg: float | None = None


def parse_faults(spec: str | None) -> list[Fault]:
    """Parse a --faults spec; ValueError names the bad item."""
    out: list[Fault] = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        dev, sep, rest = item.partition(":")
        kind, _, arg = rest.partition("=")
        if not sep or not dev or kind not in KINDS:
            raise ValueError(f"fault {item!r}: expected DEVICE:KIND[=ARG] with KIND one of {sorted(KINDS)}")
        value: float | None = None
        if arg:
            value = parse_duration(arg) if kind == "delay" else float(arg)
        elif kind in ("delay", "exception", "truncate"):
            raise ValueError(f"fault {item!r}: {kind} needs a value, e.g. {kind}=2")
        out.append(Fault(dev, kind, value))
    return out


def faults_for(faults: list[Fault], device: str) -> list[Fault]:
    """The faults that apply to one simulated device."""
    return [f for f in faults if f.device == device]
