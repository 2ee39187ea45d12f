"""Reusable MQTT test helpers: a reconnecting subscriber that collects messages, synthetic poll
outcomes, and checks for the per-device seq contract.

``Collector`` is meant for any test that needs to see what reached the broker (the daemon
end-to-end tests reuse it)::

    async with Collector(broker.port, "rackpulse/#", persistent=True) as col:
        ...
        await col.wait_for(lambda c: c.count() >= 10, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from agent.results import DeviceState, PollOutcome
from drivers.catalog import Kind
from drivers.model import DeviceInfo, PollResult, Reading, make_labels


@dataclass(frozen=True)
class Msg:
    """One received message."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    """Subscribes to ``topic`` and keeps every message; reconnects until closed.

    With ``persistent=True`` it uses a fixed client id and clean_session=False, so a broker that
    keeps sessions (mosquitto with persistence) queues messages for it while it reconnects.
    """

    def __init__(
        self,
        port: int,
        topic: str = "#",
        *,
        host: str = "127.0.0.1",
        qos: int = 1,
        persistent: bool = False,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.host, self.port, self.topic, self.qos = host, port, topic, qos
        self.persistent = persistent
        self.tls_context = tls_context
        self.identifier = f"collector-{uuid.uuid4().hex[:8]}"
        self.messages: list[Msg] = []
        self._telemetry: list[dict[str, Any]] = []   # parsed once, on arrival
        self._seqs: dict[str, list[int]] = {}
        self.connects = 0
        self._subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.identifier,
                    clean_session=not self.persistent,
                    tls_context=self.tls_context,
                    username=self.username,
                    password=self.password,
                    keepalive=5,
                ) as c:
                    await c.subscribe(self.topic, qos=self.qos)
                    self.connects += 1
                    self._subscribed.set()
                    async for m in c.messages:
                        msg = Msg(str(m.topic), bytes(m.payload), bool(m.retain), int(m.qos), time.time())
                        self.messages.append(msg)
                        if msg.topic.endswith("/telemetry"):
                            t = msg.json()
                            self._telemetry.append(t)
                            self._seqs.setdefault(t["device"], []).append(t["seq"])
                        self._changed.set()
            except aiomqtt.MqttError:
                self._subscribed.clear()
                await asyncio.sleep(0.05)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the collector is (re)subscribed."""
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def wait_for(self, pred: Callable[[Collector], bool], timeout: float = 10.0) -> None:
        """Wait until ``pred(self)`` holds; AssertionError with a summary on timeout."""
        deadline = time.monotonic() + timeout
        while not pred(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:g}s; {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))
            await asyncio.sleep(0.02)  # re-check at most ~50 times a second, whatever the message rate

    def on(self, suffix: str) -> list[Msg]:
        """Messages whose topic ends with ``suffix``."""
        return [m for m in self.messages if m.topic.endswith(suffix)]

    def telemetry(self) -> list[dict[str, Any]]:
        """Every telemetry payload received, parsed, in arrival order."""
        return list(self._telemetry)

    def seqs(self) -> dict[str, list[int]]:
        """Per device, the telemetry seqs in arrival order (duplicates included)."""
        return {d: list(s) for d, s in self._seqs.items()}

    def last_seq(self, device: str) -> int:
        """The highest seq received from ``device`` (0 if none)."""
        s = self._seqs.get(device)
        return max(s) if s else 0

    def count(self, suffix: str = "/telemetry") -> int:
        """How many telemetry messages (or messages on topics ending with ``suffix``) arrived."""
        if suffix == "/telemetry":
            return len(self._telemetry)
        return sum(1 for m in self.messages if m.topic.endswith(suffix))

    def last(self, topic: str) -> Msg | None:
        """The last message received on exactly ``topic``."""
        for m in reversed(self.messages):
            if m.topic == topic:
                return m
        return None

    def summary(self) -> str:
        seqs = self.seqs()
        per_dev = {d: (len(s), s[-1] if s else None) for d, s in sorted(seqs.items())[:8]}
        return f"{len(self.messages)} messages, {len(seqs)} devices, (count, last seq) {per_dev}"


def dedup(seqs: list[int]) -> list[int]:
    """What a consumer that drops anything not newer than the last seq it kept would keep."""
    kept: list[int] = []
    for s in seqs:
        if not kept or s > kept[-1]:
            kept.append(s)
    return kept


def assert_complete(seqs: dict[str, list[int]], expected: dict[str, int], first: dict[str, int] | None = None) -> None:
    """Each device's deduplicated seqs are exactly first..expected: in order and none missing.

    A seq that first arrives after a later one would be dropped by :func:`dedup` and show up as
    missing, so this also proves per-device order.
    """
    problems = []
    for dev, last in sorted(expected.items()):
        start = (first or {}).get(dev, 1)
        got = dedup(seqs.get(dev, []))
        want = list(range(start, last + 1))
        if got != want:
            missing = sorted(set(want) - set(got))
            problems.append(
                f"{dev}: got {len(got)} seqs {got[:5]}..{got[-5:]}, want {start}..{last}; missing {missing[:10]}"
            )
    assert not problems, "\n".join(problems)


def outcome(
    device: str,
    *,
    up: bool = True,
    n_readings: int = 3,
    started: float | None = None,
    error: str | None = None,
    value: float = 1.0,
    vendor: str = "Acme",
    serial: str = "SN1",
) -> PollOutcome:
    """A synthetic PollOutcome as the scheduler would hand it to listeners."""
    now = time.time() if started is None else started
    st = DeviceState(
        name=device, driver="modbus", profile="test-pdu", up=up, since=now - 60, last_poll=now,
        duration=0.042, last_error=None if up else (error or "timeout: no answer"), labels={"row": "3"},
    )
    result = None
    if up:
        readings = [
            Reading(device, "outlet_power_watts", make_labels({"outlet": str(i + 1), "outlet_name": f"o{i + 1}"}),
                    value + i, Kind.GAUGE, now)
            for i in range(n_readings)
        ]
        result = PollResult(readings, DeviceInfo("Acme", "PX-1", serial, "1.0", "test-pdu", "modbus"), 1)
        result.info.vendor = vendor
        st.info = result.info
    return PollOutcome(state=st, result=result, started=now, changed=False)
