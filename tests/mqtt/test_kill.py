"""kill -9: the Will is delivered, and a new process on the same state_dir loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.mqtt_broker import MosquittoBroker, free_port
from agent.seqstore import db_path
from tests.mqtt.conftest import AGENT, MakePublisher
from tests.mqtt.util import Collector, assert_complete, outcome

ROOT = Path(__file__).resolve().parents[2]
AGENT_TOPIC = f"rackpulse/dc1/r42/_agent/{AGENT}/status"


class PubProc:
    """tests/mqtt/pubproc.py in a subprocess."""

    def __init__(self, url: str, state_dir: Path, devices: int = 5, interval: float = 0.02) -> None:
        opts = {"url": url, "state_dir": str(state_dir), "devices": devices, "interval": interval}
        self.log = state_dir.parent / "pubproc.log"
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mqtt.pubproc", json.dumps(opts)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._out,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"started", f"publisher process did not start: {self.text()}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._out.close()


@pytest.fixture
def procs() -> Iterator[list[PubProc]]:
    made: list[PubProc] = []
    yield made
    for p in made:
        if p.proc.poll() is None:
            p.kill9()


def committed(state_dir: Path) -> tuple[dict[str, int], int]:
    """(last committed seq per device, spooled rows) as a crash left them."""
    with sqlite3.connect(db_path(state_dir)) as c:
        seqs = dict(c.execute("SELECT device, seq FROM seq").fetchall())
        (rows,) = c.execute("SELECT count(*) FROM spool").fetchone()
    return seqs, rows


async def wait_spooled(state_dir: Path, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if committed(state_dir)[1] >= n:
                return
        except sqlite3.Error:
            pass
        assert time.monotonic() < deadline, f"fewer than {n} messages spooled after {timeout}s"
        await asyncio.sleep(0.05)


async def test_will_is_delivered_on_kill9(broker: MosquittoBroker, tmp_path: Path, procs: list[PubProc]) -> None:
    async with Collector(broker.port, AGENT_TOPIC) as col:
        procs.append(p := PubProc(broker.url, tmp_path / "state"))
        await col.wait_for(lambda c: bool(c.messages) and c.messages[-1].payload == b"online", timeout=10)
        t0 = time.monotonic()
        p.kill9()
        await col.wait_for(lambda c: c.messages[-1].payload == b"offline", timeout=5)
        assert time.monotonic() - t0 < 3
    async with Collector(broker.port, AGENT_TOPIC) as late:  # and it is retained
        await late.wait_for(lambda c: bool(c.messages))
        assert late.messages[-1].payload == b"offline" and late.messages[-1].retain


async def test_restart_after_kill9_delivers_spooled_and_continues_seq(
    broker: MosquittoBroker, tmp_path: Path, procs: list[PubProc], make_publisher: MakePublisher
) -> None:
    state = tmp_path / "state"
    broker.stop()  # the broker is down while the first process runs
    procs.append(p := PubProc(broker.url, state, devices=5, interval=0.02))
    await wait_spooled(state, 200)
    p.kill9()
    last, rows = committed(state)
    assert sum(last.values()) == rows >= 200, "every committed seq must have its message in the spool"

    broker.start()
    async with Collector(broker.port, "rackpulse/#") as col:
        pub = await make_publisher(broker.url, state_dir=state)
        await col.wait_for(lambda c: c.count() >= rows, timeout=20)
        for d in last:
            pub.on_poll(outcome(d))
        expected = {d: n + 1 for d, n in last.items()}
        await col.wait_for(lambda c: all(c.last_seq(d) >= n for d, n in expected.items()))
        assert_complete(col.seqs(), expected)


async def test_kill9_while_publishing_loses_nothing(
    broker: MosquittoBroker, tmp_path: Path, procs: list[PubProc], make_publisher: MakePublisher
) -> None:
    state = tmp_path / "state"
    async with Collector(broker.port, "rackpulse/+/+/+/telemetry") as col:
        procs.append(p := PubProc(broker.url, state, devices=10, interval=0.02))
        await col.wait_for(lambda c: len(c.messages) >= 300, timeout=20)
        p.kill9()  # with messages committed but not yet acknowledged or even sent
        last, _ = committed(state)
        await make_publisher(broker.url, state_dir=state)
        await col.wait_for(
            lambda c: all(c.last_seq(d) >= n for d, n in last.items()), timeout=20
        )
        assert_complete(col.seqs(), last)


async def test_unreachable_broker_never_blocks_polling(make_publisher: MakePublisher) -> None:
    pub = await make_publisher(f"mqtt://127.0.0.1:{free_port()}")
    t0 = time.perf_counter()
    for i in range(2000):
        pub.on_poll(outcome(f"pdu-{i % 200}", n_readings=20))
    assert time.perf_counter() - t0 < 1.0
    await asyncio.sleep(0.5)
    s = pub.stats()
    assert s["mqtt_connected"] == 0 and s["mqtt_spooled_messages"] == 2000
