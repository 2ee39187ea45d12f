"""The MQTT publisher: telemetry, device status and meta, with on-disk store-and-forward.

Data path: ``on_poll`` (event loop, O(1)) appends to an in-memory list; a writer task commits that
list to the SQLite :class:`~agent.spool.Spool` every ``flush_interval`` from one dedicated thread,
assigning each device's ``seq`` in the same transaction; a sender task reads the spool in insertion
order and publishes with at most ``max_inflight`` unacknowledged messages; each acknowledged
message is deleted by the next commit. A broker outage therefore only grows the spool, a restart
(even after ``kill -9``) resends whatever was not acknowledged, and per-device order is the spool
order. Replay after a reconnect runs at the live rate plus ``replay_rate`` messages per second.

Status and meta are retained and kept in memory only: the latest value of each is published on
change and again on every connect. The agent's own status topic is ``online`` while connected and
``offline`` on a clean stop or, as the Last Will, when the connection dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import aiomqtt

from agent.config import MqttSettings, safe_name
from agent.payloads import encode_meta, encode_status, encode_telemetry
from agent.results import PollOutcome
from agent.spool import CommitResult, Entry, Row, Spool

log = logging.getLogger("rackpulse.mqtt")

T = TypeVar("T")
Stats = dict[str, Any]

FETCH_BATCH = 256            # spool rows read per query by the sender
PENDING_CAP = 20_000         # in-memory messages kept while the spool cannot be written
STATE_CONCURRENCY = 16       # retained status/meta publishes in flight at once
DROP_LOG_EVERY = 30.0        # seconds between drop report lines
STABLE_AFTER = 60.0          # a connection this old resets the reconnect backoff


def _hint(error: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in error:
        return (" hint='the broker certificate is not signed by mqtt.ca_file (the system CA store when "
                "ca_file is unset), or does not name the URL host'")
    return ""


class MqttPublisher:
    """Publishes poll outcomes to MQTT with store-and-forward; implements ``ResultListener``.

    Start ``run()`` as a task; call ``stop()`` to flush what can be sent within a deadline, publish
    ``offline`` and disconnect. ``stats()`` gives the counters the Prometheus exposition renders as
    ``rackpulse_mqtt_*``; ``metrics_hook`` (optional) is called with the same dict when the
    connection state changes and at most once a second while counters move.
    """

    def __init__(
        self,
        site: str,
        rack: str,
        agent_name: str,
        settings: MqttSettings,
        state_dir: str | Path,
        metrics_hook: Callable[[Stats], None] | None = None,
        *,
        flush_interval: float = 0.1,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.site, self.rack, self.agent_name = site, rack, agent_name
        self.settings = settings
        self.metrics_hook = metrics_hook
        self.flush_interval = flush_interval
        self.backoff_min, self.backoff_max = backoff_min, max(backoff_min, backoff_max)

        url = urlparse(settings.url)
        self.tls = url.scheme in ("mqtts", "ssl")
        self.host = url.hostname or "localhost"
        self.port = url.port or (8883 if self.tls else 1883)
        self.url = f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
        self.client_id = settings.client_id or f"rackpulse-{agent_name}"
        self.base = f"{settings.topic_prefix.rstrip('/')}/{safe_name(site)}/{safe_name(rack)}"
        self.agent_topic = f"{self.base}/_agent/{safe_name(agent_name)}/status"

        # Opening the spool here makes an unusable state_dir a startup error, not a silent loss.
        self.spool = Spool(state_dir, settings.spool.max_bytes, settings.spool.max_age)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rackpulse-spool")
        self._db_open = True

        self._pending: deque[Entry] = deque()
        self._committing = 0                    # entries handed to a commit still running
        self._acked: list[int] = []
        self._acked_pending: set[int] = set()   # acknowledged, delete not yet committed
        self._inflight: set[asyncio.Task[None]] = set()
        self._status: dict[str, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._sent_status: dict[str, bytes] = {}
        self._sent_meta: dict[str, bytes] = {}
        self._clears: set[str] = set()

        self._connected = False
        self._published = 0
        self._overflow_dropped = 0
        self._live_credits = 0
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._drops_unlogged: dict[str, int] = {}
        self._drops_logged_at = 0.0
        self._hook_at = 0.0
        self._db_error_logged_at = 0.0

        self._wake_writer = asyncio.Event()
        self._new_rows = asyncio.Event()
        self._state_dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stop_deadline = 0.0
        self._run_task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- ResultListener

    def topic(self, device: str, kind: str) -> str:
        """``{prefix}/{site}/{rack}/{device}/{kind}``."""
        return f"{self.base}/{safe_name(device)}/{kind}"

    def on_poll(self, outcome: PollOutcome) -> None:
        """Queue telemetry for a successful poll and note status/meta changes; never blocks."""
        st = outcome.state
        dev = st.name
        if outcome.result is not None:
            render = partial(
                encode_telemetry,
                agent=self.agent_name,
                site=self.site,
                rack=self.rack,
                device=dev,
                ts=outcome.started,
                poll_seconds=st.duration,
                readings=list(outcome.result.readings),
            )
            entry = Entry(dev, self.topic(dev, "telemetry"), time.time(), lambda seq: render(seq=seq))
            self._pending.append(entry)
            if len(self._pending) > PENDING_CAP:  # only when the disk has been failing for a while
                self._pending.popleft()
                self._overflow_dropped += 1
                self._note_drops({"overflow": 1})
            if self._connected:
                self._live_credits += 1
            self._wake_writer.set()
        self._clears.discard(dev)
        status = encode_status(st.up, st.since or outcome.started, st.last_error)
        info = outcome.result.info if outcome.result is not None else st.info
        meta = encode_meta(info, st.labels, driver=st.driver, profile=st.profile)
        if self._status.get(dev) != status or self._meta.get(dev) != meta:
            self._status[dev] = status
            self._meta[dev] = meta
            self._state_dirty.set()

    def on_remove(self, device: str) -> None:
        """Clear the device's retained status and meta (empty retained payloads)."""
        for d in (self._status, self._meta, self._sent_status, self._sent_meta):
            d.pop(device, None)
        self._clears.add(device)
        self._state_dirty.set()

    # ----------------------------------------------------------------- metrics

    def stats(self) -> Stats:
        """Counters for the Prometheus exposition (names without the ``rackpulse_`` prefix)."""
        dropped = dict(self.spool.dropped)
        dropped["overflow"] = self._overflow_dropped
        return {
            "mqtt_connected": 1 if self._connected else 0,
            "mqtt_published_messages_total": self._published,
            "mqtt_spooled_messages": self.spool.count + len(self._pending) + self._committing,
            "mqtt_spool_bytes": self.spool.bytes,
            "mqtt_dropped_messages_total": dropped,
        }

    def _notify(self, force: bool = False) -> None:
        if self.metrics_hook is None:
            return
        now = time.monotonic()
        if not force and now - self._hook_at < 1.0:
            return
        self._hook_at = now
        try:
            self.metrics_hook(self.stats())
        except Exception:
            log.exception("mqtt_metrics_hook_failed")

    def _set_connected(self, up: bool) -> None:
        if self._connected != up:
            self._connected = up
            self._notify(force=True)

    def _note_drops(self, dropped: dict[str, int]) -> None:
        for reason, n in dropped.items():
            self._drops_unlogged[reason] = self._drops_unlogged.get(reason, 0) + n
        now = time.monotonic()
        if self._drops_unlogged and now - self._drops_logged_at >= DROP_LOG_EVERY:
            counts = " ".join(f"{r}={n}" for r, n in sorted(self._drops_unlogged.items()))
            log.warning(
                "mqtt_spool_dropped %s spooled=%d spool_bytes=%d max_bytes=%d max_age=%gs "
                "(oldest messages dropped since the last report)",
                counts, self.spool.count, self.spool.bytes, self.spool.max_bytes, self.spool.max_age,
            )
            self._drops_unlogged = {}
            self._drops_logged_at = now

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Connect, publish and reconnect until :meth:`stop`; the writer runs throughout."""
        self._run_task = asyncio.current_task()
        writer = asyncio.create_task(self._writer(), name="mqtt-spool-writer")
        backoff = self.backoff_min
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    await self._connect_and_serve()
                    break  # clean stop
                except (aiomqtt.MqttError, OSError, ssl.SSLError, ValueError) as e:
                    error = str(e) or type(e).__name__
                if self._stopping.is_set():
                    break
                if time.monotonic() - started > STABLE_AFTER:
                    backoff = self.backoff_min
                delay = random.uniform(backoff / 2, backoff)  # jitter spreads a fleet's reconnects
                log.warning(
                    "mqtt_connect_failed url=%s client_id=%s error=%r retry_in=%.1fs%s",
                    self.url, self.client_id, error, delay, _hint(error),
                )
                backoff = min(backoff * 2, self.backoff_max)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            self._set_connected(False)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._final_flush()
            self._stopped.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what can be sent, publish ``offline`` and disconnect, all within ``timeout`` s.

        Anything unsent stays in the spool for the next start.
        """
        loop = asyncio.get_running_loop()
        self._stop_deadline = loop.time() + max(0.0, timeout - 1.0)  # keep 1 s for offline + disconnect
        self._stopping.set()
        if self._run_task is None or self._run_task.done():
            await self._final_flush()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped.wait()), timeout)
        except TimeoutError:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task

    async def _final_flush(self) -> None:
        if not self._db_open:
            return
        try:
            await self._flush_once()
        finally:
            self._db_open = False
            await self._in_db(self.spool.close)
            self._db.shutdown(wait=True)

    # ----------------------------------------------------------------- spool writer

    async def _in_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _writer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # Wake at least once a second so age bounds apply while nothing arrives.
                await asyncio.wait_for(self._wake_writer.wait(), 1.0)
            await asyncio.sleep(self.flush_interval)  # gather a batch: one fsync per batch
            self._wake_writer.clear()
            if not await self._flush_once():
                await asyncio.sleep(1.0)

    async def _flush_once(self) -> bool:
        """Commit pending messages and acks; False (and everything kept) on a database error."""
        entries = list(self._pending)
        self._pending.clear()
        acked, self._acked = self._acked, []
        self._committing += len(entries)
        try:
            res: CommitResult = await self._in_db(self.spool.commit, entries, acked)
        except Exception as e:
            self._pending.extendleft(reversed(entries))
            while len(self._pending) > PENDING_CAP:
                self._pending.popleft()
                self._overflow_dropped += 1
            self._acked = acked + self._acked
            now = time.monotonic()
            if now - self._db_error_logged_at >= DROP_LOG_EVERY:
                self._db_error_logged_at = now
                log.error("mqtt_spool_write_failed path=%s error=%r pending=%d",
                          self.spool.path, str(e), len(self._pending))
            return False
        finally:
            self._committing -= len(entries)
        self._acked_pending.difference_update(acked)
        for problem in res.invalid[:3]:
            log.error("mqtt_payload_invalid %s", problem)
        if res.inserted:
            self._new_rows.set()
        if res.dropped:
            self._note_drops(res.dropped)
        elif self._drops_unlogged:
            self._note_drops({})
        if res.inserted or res.deleted or res.dropped:
            self._notify()
        return True

    # ----------------------------------------------------------------- connection

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        s = self.settings
        ctx = ssl.create_default_context(cafile=s.ca_file)  # system store when ca_file is unset
        if s.cert_file:
            ctx.load_cert_chain(s.cert_file, s.key_file)
        return ctx

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=s.username,
            password=s.password() if s.username else None,
            identifier=self.client_id,
            will=aiomqtt.Will(self.agent_topic, b"offline", qos=1, retain=True),
            keepalive=max(1, int(s.keepalive)),
            timeout=max(10.0, s.keepalive),
            tls_context=self._tls_context(),
            max_inflight_messages=s.max_inflight + STATE_CONCURRENCY + 2,
            logger=logging.getLogger("rackpulse.mqtt.client"),
        )
        # Our own bounds keep pending calls below this, so aiomqtt never warns about them.
        client.pending_calls_threshold = s.max_inflight + STATE_CONCURRENCY + 2
        return client

    async def _connect_and_serve(self) -> None:
        """One connection: returns after a clean stop, raises when the connection fails."""
        client = self._client()
        async with client:
            log.info("mqtt_connected url=%s client_id=%s spooled=%d", self.url, self.client_id, self.spool.count)
            await client.publish(self.agent_topic, b"online", qos=1, retain=True)
            self._published += 1
            self._sent_status.clear()  # republish every retained status and meta
            self._sent_meta.clear()
            self._live_credits = 0
            self._tokens, self._tokens_at = 1.0, time.monotonic()
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            tasks = {
                asyncio.create_task(self._sender(client, failed), name="mqtt-sender"),
                asyncio.create_task(self._state_sender(client), name="mqtt-state"),
                asyncio.create_task(self._watch(client), name="mqtt-watch"),
            }
            stopper = asyncio.create_task(self._drain_for_stop(), name="mqtt-drain")
            self._set_connected(True)
            try:
                done, _ = await asyncio.wait({*tasks, stopper, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._set_connected(False)
                rest = [*tasks, stopper, *self._inflight]
                for t in rest:
                    t.cancel()
                await asyncio.gather(*rest, return_exceptions=True)
                self._inflight.clear()
            if stopper in done:
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(self.agent_topic, b"offline", qos=1, retain=True, timeout=0.5)
                    self._published += 1
                log.info("mqtt_disconnected reason=stop spooled=%d", self.spool.count)
                return
            error: BaseException | None = failed.exception() if failed.done() else None
            for fut in done:
                if fut is not failed and not fut.cancelled():
                    error = error or fut.exception()
            if not failed.done():
                failed.cancel()
            log.warning("mqtt_disconnected error=%r spooled=%d", str(error), self.spool.count)
            if isinstance(error, aiomqtt.MqttError):
                raise error
            raise aiomqtt.MqttError(f"connection ended: {error!r}")

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Ends (by raising MqttError) as soon as the connection drops; we subscribe to nothing."""
        async for _ in client.messages:
            pass

    async def _drain_for_stop(self) -> None:
        """After stop(): wait until everything is acknowledged or the deadline passes."""
        await self._stopping.wait()
        loop = asyncio.get_running_loop()
        while loop.time() < self._stop_deadline:
            if (
                not self._pending
                and not self._committing
                and not self._inflight
                and self.spool.count == 0
                and not self._clears
                and self._sent_status == self._status
                and self._sent_meta == self._meta
            ):
                return
            self._wake_writer.set()
            await asyncio.sleep(0.05)

    # ----------------------------------------------------------------- telemetry sender

    async def _take_token(self) -> None:
        """Pace sending: each live message brings its own token, replay adds replay_rate/s."""
        rate = self.settings.spool.replay_rate
        burst = max(1.0, rate)
        while True:
            if self._live_credits > 0:
                self._live_credits -= 1
                return
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep(min(0.05, (1.0 - self._tokens) / rate))

    async def _sender(self, client: aiomqtt.Client, failed: asyncio.Future[None]) -> None:
        sem = asyncio.Semaphore(self.settings.max_inflight)
        cursor = 0  # a new connection resends everything not yet acknowledged, oldest first
        while True:
            self._new_rows.clear()
            rows = await self._in_db(self.spool.fetch, cursor, FETCH_BATCH)
            if not rows:
                await self._new_rows.wait()
                continue
            for row in rows:
                cursor = row.id
                if row.id in self._acked_pending:
                    continue
                await self._take_token()
                await sem.acquire()
                # Tasks start in creation order, so messages hit the socket in spool order.
                t = asyncio.create_task(self._publish_row(client, row, sem, failed))
                self._inflight.add(t)
                t.add_done_callback(self._inflight.discard)

    async def _publish_row(
        self, client: aiomqtt.Client, row: Row, sem: asyncio.Semaphore, failed: asyncio.Future[None]
    ) -> None:
        try:
            await client.publish(row.topic, row.payload, qos=self.settings.qos)
        except aiomqtt.MqttError as e:
            if not failed.done():
                failed.set_exception(e)
            return
        finally:
            sem.release()
        self._published += 1
        self._acked_pending.add(row.id)
        self._acked.append(row.id)
        self._wake_writer.set()

    # ----------------------------------------------------------------- retained state

    async def _state_sender(self, client: aiomqtt.Client) -> None:
        """Publish retained status/meta that differ from what the broker has (all after a connect)."""
        while True:
            self._state_dirty.clear()
            jobs: deque[tuple[str, str, bytes, dict[str, bytes] | None]] = deque()
            for dev in list(self._clears):
                jobs.append((dev, self.topic(dev, "status"), b"", None))
                jobs.append((dev, self.topic(dev, "meta"), b"", None))
            for kind, latest, sent in (
                ("status", self._status, self._sent_status),
                ("meta", self._meta, self._sent_meta),
            ):
                for dev, payload in latest.items():
                    if sent.get(dev) != payload:
                        jobs.append((dev, self.topic(dev, kind), payload, sent))
            clears = set(self._clears)
            n = min(STATE_CONCURRENCY, len(jobs))
            workers = [asyncio.create_task(self._state_worker(client, jobs)) for _ in range(n)]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
            self._clears -= {d for d in clears if d not in self._status}
            await self._state_dirty.wait()

    async def _state_worker(
        self, client: aiomqtt.Client, jobs: deque[tuple[str, str, bytes, dict[str, bytes] | None]]
    ) -> None:
        # A few workers pulling from one queue: bounded in-flight calls, no task per message.
        while jobs:
            dev, topic, payload, sent = jobs.popleft()
            await client.publish(topic, payload, qos=1, retain=True)
            self._published += 1
            if sent is not None and dev not in self._clears:
                sent[dev] = payload
