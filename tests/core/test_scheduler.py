"""Scheduler behaviour: isolation of a hung device, retries with backoff, reload semantics."""

from __future__ import annotations

import asyncio
import time

from agent.results import PollOutcome
from agent.scheduler import Scheduler, start_offset
from drivers.base import Driver, PollSettings
from drivers.catalog import Kind
from drivers.config import DeviceConfigBase
from drivers.errors import DeviceError
from drivers.model import PollResult, Reading


class ScriptedDriver(Driver):
    """A driver whose poll behaviour is scripted by the test: ok, hang, or fail."""

    def __init__(self, name: str, behaviour: str, interval: float = 0.2, timeout: float = 0.1, retries: int = 0):
        super().__init__(DeviceConfigBase(name=name, driver="test"), PollSettings(interval, timeout, retries))
        self.behaviour = behaviour
        self.calls: list[float] = []
        self.closed = 0

    async def poll(self) -> PollResult:
        self.calls.append(time.monotonic())
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "fail" or (self.behaviour == "flaky" and len(self.calls) % 2 == 1):
            raise DeviceError("connection", "refused")
        return PollResult([Reading(self.name, "inlet_power_watts", (), 100.0, Kind.GAUGE, time.time())])

    async def close(self) -> None:
        self.closed += 1


class Collect:
    def __init__(self) -> None:
        self.outcomes: list[PollOutcome] = []
        self.removed: list[str] = []

    def on_poll(self, outcome: PollOutcome) -> None:
        self.outcomes.append(outcome)

    def on_remove(self, device: str) -> None:
        self.removed.append(device)


async def test_hung_device_does_not_delay_others() -> None:
    sink = Collect()
    sched = Scheduler(max_concurrency=8, listeners=[sink], spread_start=False)
    good = ScriptedDriver("good", "ok", interval=0.2)
    hung = ScriptedDriver("hung", "hang", interval=0.2, timeout=0.15)
    sched.apply({"good": good, "hung": hung}, {"good": "a", "hung": "b"})
    await asyncio.sleep(1.05)
    await sched.stop()
    gaps = [b - a for a, b in zip(good.calls, good.calls[1:], strict=False)]
    assert len(good.calls) >= 5
    assert max(gaps) < 0.26, gaps  # the good device kept its 0.2 s interval
    hung_states = [o.state for o in sink.outcomes if o.state.name == "hung"]
    assert hung_states and not hung_states[-1].up
    assert hung_states[-1].last_reason == "timeout"
    assert hung.closed >= 1  # the timed-out connection was dropped so the next poll reconnects


async def test_retry_succeeds_within_one_poll() -> None:
    sink = Collect()
    sched = Scheduler(max_concurrency=2, listeners=[sink], spread_start=False)
    flaky = ScriptedDriver("flaky", "flaky", interval=1.0, timeout=0.1, retries=2)
    sched.apply({"flaky": flaky}, {"flaky": "x"})
    await asyncio.sleep(0.5)
    await sched.stop()
    assert len(flaky.calls) == 2
    assert flaky.calls[1] - flaky.calls[0] >= 0.19  # first backoff is 0.2 s
    assert sink.outcomes[0].state.up and sink.outcomes[0].result is not None


async def test_failure_counts_reason_and_state_change_once() -> None:
    sink = Collect()
    sched = Scheduler(max_concurrency=2, listeners=[sink], spread_start=False)
    bad = ScriptedDriver("bad", "fail", interval=0.1, timeout=0.05)
    sched.apply({"bad": bad}, {"bad": "x"})
    await asyncio.sleep(0.35)
    await sched.stop()
    st = sink.outcomes[-1].state
    assert st.errors["connection"] == len(sink.outcomes) >= 3
    assert [o.changed for o in sink.outcomes].count(True) == 1


async def test_concurrency_limit_is_global() -> None:
    running = 0
    peak = 0

    class Slow(ScriptedDriver):
        async def poll(self) -> PollResult:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            return PollResult([])

    sched = Scheduler(max_concurrency=3, spread_start=False)
    drivers: dict[str, Driver] = {f"d{i}": Slow(f"d{i}", "ok", interval=1.0, timeout=1.0) for i in range(10)}
    sched.apply(drivers, {n: "x" for n in drivers})
    await asyncio.sleep(0.3)
    await sched.stop()
    assert peak == 3


async def test_reload_keeps_unchanged_tasks() -> None:
    sink = Collect()
    sched = Scheduler(max_concurrency=4, listeners=[sink], spread_start=False)
    a, b = ScriptedDriver("a", "ok", 0.1), ScriptedDriver("b", "ok", 0.1)
    sched.apply({"a": a, "b": b}, {"a": "1", "b": "1"})
    await asyncio.sleep(0.05)
    task_a = sched.pollers["a"].task
    c = ScriptedDriver("c", "ok", 0.1)
    b2 = ScriptedDriver("b", "ok", 0.1)
    added, changed, removed = sched.apply({"b": b2, "c": c, "a": a}, {"a": "1", "b": "2", "c": "1"})
    assert (added, changed, removed) == (["c"], ["b"], [])
    assert sched.pollers["a"].task is task_a
    added, changed, removed = sched.apply({"b": b2, "c": c}, {"b": "2", "c": "1"})
    assert removed == ["a"] and sink.removed == ["a"]
    await asyncio.sleep(0.15)
    await sched.stop()
    assert b2.calls and c.calls


def test_start_offsets_spread_and_stable() -> None:
    offs = [start_offset(f"pdu-{i}", 10.0) for i in range(200)]
    assert all(0 <= o < 10 for o in offs)
    assert offs == [start_offset(f"pdu-{i}", 10.0) for i in range(200)]
    assert max(offs) - min(offs) > 8  # spread over (almost) the whole interval


async def test_first_poll_starts_at_once_and_the_rest_spread() -> None:
    sink = Collect()
    sched = Scheduler(max_concurrency=8, listeners=[sink])
    drivers: dict[str, Driver] = {f"pdu-{i}": ScriptedDriver(f"pdu-{i}", "ok", interval=2.0) for i in range(4)}
    t0 = time.monotonic()
    sched.apply(drivers, {n: "x" for n in drivers})
    await asyncio.sleep(0.3)
    await sched.stop()
    first = min(c for d in drivers.values() for c in d.calls)  # type: ignore[attr-defined]
    assert first - t0 < 0.1
    assert len(sink.outcomes) < 4  # the others wait for their slot in the interval
