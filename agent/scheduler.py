"""The poll scheduler: one asyncio task per device, owning timing, timeouts, retries and backoff.

Each device polls on its own interval from a start offset spread across that interval, so a rack
of PDUs never polls in lock-step. A global semaphore bounds concurrent polls. Every attempt is
bounded by the device's timeout, so a hung device only ever delays itself. Outcomes go to the
registered listeners (Prometheus store, MQTT, status board), which never call drivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable

from agent.results import DeviceState, PollOutcome, ResultListener
from drivers.base import Driver
from drivers.errors import DeviceError
from drivers.model import PollResult

log = logging.getLogger("rackpulse.scheduler")

BACKOFF_BASE = 0.2  # seconds before the first retry; doubles per attempt


def start_phase(name: str) -> float:
    """A stable per-device phase in [0, 1): where in its interval the device polls."""
    return zlib.crc32(name.encode()) / 2**32


def start_offset(name: str, interval: float, phase0: float = 0.0) -> float:
    """A stable per-device offset in [0, interval) so restarts keep the same spread.

    ``phase0`` rotates every phase so the earliest device of the first config polls at once.
    """
    return ((start_phase(name) - phase0) % 1.0) * interval


class LagTracker:
    """Keeps recent scheduler lags (how late a poll started) for quantiles and the lag metric."""

    def __init__(self, size: int = 4096) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.missed = 0
        self.observers: list[Callable[[float], None]] = []

    def observe(self, lag: float) -> None:
        self.samples.append(lag)
        for fn in self.observers:
            fn(lag)

    def quantile(self, q: float) -> float:
        """The q-quantile of recent lags (0 when nothing was observed)."""
        if not self.samples:
            return 0.0
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(q * len(s)))]


class DevicePoller:
    """The task that polls one device forever, until cancelled."""

    def __init__(self, driver: Driver, scheduler: Scheduler, fingerprint: str) -> None:
        self.driver = driver
        self.scheduler = scheduler
        self.fingerprint = fingerprint
        cfg = driver.config
        self.state = DeviceState(
            name=cfg.name,
            driver=cfg.driver,
            profile=",".join(cfg.profile_names()) or "inline",
            labels=dict(cfg.labels),
        )
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.driver.settings.interval
        due = loop.time() + self.scheduler.offset_for(self.driver.name, interval)
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self.scheduler.lag.observe(max(0.0, now - due))
            await self.poll_once()
            due += interval
            now = loop.time()
            if due <= now:  # the poll overran whole intervals: skip them rather than burst
                skipped = int((now - due) // interval) + 1
                self.scheduler.lag.missed += skipped
                due += skipped * interval

    async def poll_once(self) -> PollOutcome:
        """Poll with retries and backoff, update state and notify listeners."""
        sched = self.scheduler
        settings = self.driver.settings
        started = sched.clock()
        t0 = time.perf_counter()
        result: PollResult | None = None
        error: DeviceError | None = None
        budget_end = t0 + settings.interval * 0.9
        async with sched.semaphore:
            for attempt in range(settings.retries + 1):
                try:
                    async with asyncio.timeout(settings.timeout):
                        result = await self.driver.poll()
                    break
                except DeviceError as e:
                    error = e
                except TimeoutError:
                    error = DeviceError("timeout", f"no complete answer within {settings.timeout:g}s")
                    await self._close_quietly()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a driver bug must not kill the task
                    log.exception("driver_crash device=%s", self.driver.name)
                    error = DeviceError("internal", f"{type(e).__name__}: {e}")
                    await self._close_quietly()
                backoff = BACKOFF_BASE * (2**attempt)
                if attempt == settings.retries or time.perf_counter() + backoff + settings.timeout > budget_end:
                    break
                await asyncio.sleep(backoff)
        duration = time.perf_counter() - t0
        return self._record(started, duration, result, error)

    async def _close_quietly(self) -> None:
        try:
            await self.driver.close()
        except Exception:  # closing a broken connection may fail in any way
            log.debug("close failed device=%s", self.driver.name, exc_info=True)

    def _record(
        self, started: float, duration: float, result: PollResult | None, error: DeviceError | None
    ) -> PollOutcome:
        st = self.state
        now = self.scheduler.clock()
        was_up, first = st.up, st.polls == 0
        st.polls += 1
        st.last_poll = now
        st.duration = duration
        if result is not None:
            st.up = True
            st.last_success = now
            st.last_error = None
            st.last_reason = None
            st.reading_count = len(result.readings)
            result.info.driver = st.driver
            if not result.info.profile:
                result.info.profile = st.profile
            st.info = result.info
        else:
            assert error is not None
            st.up = False
            st.reading_count = 0
            st.last_error = str(error)
            st.last_reason = error.reason
            st.errors[error.reason] = st.errors.get(error.reason, 0) + 1
        changed = first or was_up != st.up
        if changed:
            st.since = now
            if st.up:
                log.info("device_up device=%s duration=%.3f readings=%d", st.name, duration, st.reading_count)
            else:
                log.warning("device_down device=%s reason=%s error=%r", st.name, st.last_reason, st.last_error)
        outcome = PollOutcome(state=st, result=result, started=started, changed=changed)
        self.scheduler.dispatch(outcome)
        return outcome


class Scheduler:
    """Runs one DevicePoller per device and applies config reloads without disturbing unchanged devices."""

    def __init__(
        self,
        max_concurrency: int,
        listeners: Iterable[ResultListener] = (),
        clock: Callable[[], float] = time.time,
        spread_start: bool = True,
    ) -> None:
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.listeners = list(listeners)
        self.clock = clock
        self.spread_start = spread_start
        self.pollers: dict[str, DevicePoller] = {}
        self.lag = LagTracker()
        self._closing: set[asyncio.Task[None]] = set()
        self.last_progress = time.monotonic()
        self._phase0: float | None = None

    def offset_for(self, name: str, interval: float) -> float:
        return start_offset(name, interval, self._phase0 or 0.0) if self.spread_start else 0.0

    def healthy(self) -> bool:
        """True while polls keep finishing: some poll ended within three of the longest cycles."""
        if not self.pollers:
            return True
        worst = max(p.driver.settings.interval + p.driver.settings.timeout * (p.driver.settings.retries + 1)
                    for p in self.pollers.values())
        dead = [p for p in self.pollers.values() if p.task is not None and p.task.done() and not p.task.cancelled()]
        return not dead and time.monotonic() - self.last_progress < 3 * worst + 5

    def dispatch(self, outcome: PollOutcome) -> None:
        self.last_progress = time.monotonic()
        for listener in self.listeners:
            try:
                listener.on_poll(outcome)
            except Exception:
                log.exception("listener_failed listener=%s device=%s", type(listener).__name__, outcome.state.name)

    def states(self) -> list[DeviceState]:
        """Current state of every device, in config order."""
        return [p.state for p in self.pollers.values()]

    def all_polled(self) -> bool:
        """True once every device has finished at least one poll (readiness)."""
        return all(p.state.polls > 0 for p in self.pollers.values())

    def apply(self, drivers: dict[str, Driver], fingerprints: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
        """Start new devices, restart changed ones and stop removed ones; returns (added, changed, removed)."""
        added, changed, removed = [], [], []
        if self._phase0 is None and drivers:
            self._phase0 = min(start_phase(n) for n in drivers)
        for name in list(self.pollers):
            if name not in drivers:
                removed.append(name)
                self._stop(name)
        for name, drv in drivers.items():
            old = self.pollers.get(name)
            if old is not None and old.fingerprint == fingerprints[name]:
                continue
            if old is not None:
                changed.append(name)
                self._stop(name, notify=False)
            else:
                added.append(name)
            poller = DevicePoller(drv, self, fingerprints[name])
            self.pollers[name] = poller
            poller.task = asyncio.create_task(poller.run(), name=f"poll:{name}")
        return added, changed, removed

    def _stop(self, name: str, notify: bool = True) -> None:
        poller = self.pollers.pop(name)
        if poller.task:
            poller.task.cancel()
        closing = asyncio.create_task(poller.driver.close(), name=f"close:{name}")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        if notify:
            for listener in self.listeners:
                listener.on_remove(name)

    async def stop(self) -> None:
        """Cancel every poll task and close every driver."""
        tasks = [p.task for p in self.pollers.values() if p.task]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(p.driver.close() for p in self.pollers.values()), return_exceptions=True)
