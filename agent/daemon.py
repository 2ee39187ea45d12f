"""The daemon: wires config, drivers, scheduler and publishers together and handles signals.

SIGHUP re-reads the config (a bad config is rejected and the old one keeps running); SIGTERM and
SIGINT stop polling, flush or spool MQTT, publish ``offline`` and exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from agent import __version__
from agent.config import Config, load_config
from agent.exposition import PromStore
from agent.http import HttpHooks, HttpServer
from agent.logs import register_config_secrets
from agent.notify import Notifier
from agent.results import DeviceState, PollOutcome
from agent.scheduler import Scheduler
from agent.status_page import StatusSnapshot, render_html, render_json
from drivers.errors import ConfigError
from drivers.registry import plugins

log = logging.getLogger("rackpulse.daemon")

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class KeyReadings:
    """Tracks rack-level headline numbers for the status page: total power and the hottest sensor."""

    def __init__(self) -> None:
        self.power: dict[str, float] = {}
        self.hottest: dict[str, tuple[str, float]] = {}

    def on_poll(self, outcome: PollOutcome) -> None:
        name = outcome.state.name
        if outcome.result is None:
            self.power.pop(name, None)
            self.hottest.pop(name, None)
            return
        inlet_total = phase_total = 0.0
        have_inlet = False
        hot: tuple[str, float] | None = None
        for r in outcome.result.readings:
            if r.metric == "inlet_power_watts":
                if any(k == "phase" and v for k, v in r.labels):
                    phase_total += r.value
                else:
                    inlet_total += r.value
                    have_inlet = True
            elif r.metric == "sensor_temperature_celsius" and (hot is None or r.value > hot[1]):
                hot = (dict(r.labels).get("sensor", "?"), r.value)
        if have_inlet or phase_total:
            self.power[name] = inlet_total if have_inlet else phase_total
        if hot:
            self.hottest[name] = hot
        else:
            self.hottest.pop(name, None)

    def on_remove(self, device: str) -> None:
        self.power.pop(device, None)
        self.hottest.pop(device, None)

    def summary(self) -> dict[str, Any]:
        hot = max(self.hottest.items(), key=lambda kv: kv[1][1], default=None)
        return {
            "rack_power_watts": round(sum(self.power.values()), 1) if self.power else None,
            "hottest_sensor": {"device": hot[0], "sensor": hot[1][0], "celsius": hot[1][1]} if hot else None,
        }


class _MqttCollector(Collector):
    """Renders the MQTT publisher's stats as rackpulse_mqtt_* metrics."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Any:
        pub = self.daemon.mqtt
        if pub is None:
            return
        s = pub.stats()
        yield GaugeMetricFamily("rackpulse_mqtt_connected", "1 while connected to the broker.", s["mqtt_connected"])
        yield CounterMetricFamily(
            "rackpulse_mqtt_published_messages", "Messages acknowledged by the broker.",
            s["mqtt_published_messages_total"],
        )
        yield GaugeMetricFamily("rackpulse_mqtt_spooled_messages", "Messages waiting in the spool.",
                                s["mqtt_spooled_messages"])
        yield GaugeMetricFamily("rackpulse_mqtt_spool_bytes", "Bytes held by the spool.", s["mqtt_spool_bytes"])
        dropped = CounterMetricFamily("rackpulse_mqtt_dropped_messages", "Spooled messages dropped by a bound.",
                                      labels=["reason"])
        for reason, n in sorted(s.get("mqtt_dropped_messages_total", {}).items()):
            dropped.add_metric([reason], n)
        yield dropped


def raise_nofile_limit() -> None:
    """Lift the soft open-file limit to the hard one: every device holds a socket, and 1,024 is too few."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("nofile_limit_unchanged soft=%d hard=%d error=%r", soft, hard, str(e))


def fingerprint(cfg: Config, dev_index: int) -> str:
    """What identifies a device's setup; a reload restarts a device only when this changes."""
    dev = cfg.devices[dev_index]
    s = cfg.settings_for(dev)
    return f"{dev.model_dump_json()}|{s.interval}|{s.timeout}|{s.retries}|{cfg.top.profile_dirs}"


class Daemon:
    """Owns the running agent's pieces; ``run()`` returns the process exit code."""

    def __init__(self, config_path: str, http_port: int | None = None) -> None:
        self.config_path = config_path
        self.http_port = http_port
        self.cfg: Config | None = None
        self.mqtt: Any = None
        self.scheduler: Scheduler | None = None
        self.store: PromStore | None = None
        self.keys = KeyReadings()
        self.http: HttpServer | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.registry = CollectorRegistry()
        self.notifier = Notifier()

    # --- setup -------------------------------------------------------------------------------
    def _agent_metrics(self, cfg: Config) -> None:
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        info = Gauge("rackpulse_agent_build_info", "Agent build and identity; always 1.",
                     ["version", "agent", "site", "rack"], registry=reg)
        info.labels(__version__, cfg.top.agent.name, cfg.site, cfg.rack).set(1)
        self.lag_hist = Histogram("rackpulse_scheduler_lag_seconds", "How late polls start.", buckets=LAG_BUCKETS,
                                  registry=reg)
        reg.register(_MqttCollector(self))

    def _status_html(self) -> str:
        return render_html(self.snapshot())

    def _devices_json(self) -> dict[str, Any]:
        return render_json(self.snapshot())

    def snapshot(self) -> StatusSnapshot:
        """A StatusSnapshot for the status page and /api/devices."""
        assert self.cfg is not None
        states: list[DeviceState] = self.scheduler.states() if self.scheduler else []
        return StatusSnapshot(
            site=self.cfg.site,
            rack=self.cfg.rack,
            agent=self.cfg.top.agent.name,
            version=__version__,
            devices=states,
            mqtt=self.mqtt.stats() if self.mqtt else None,
            key_readings=self.keys.summary(),
            scheduler={
                "lag_p50_seconds": self.scheduler.lag.quantile(0.5) if self.scheduler else 0.0,
                "lag_p99_seconds": self.scheduler.lag.quantile(0.99) if self.scheduler else 0.0,
                "missed_deadlines": self.scheduler.lag.missed if self.scheduler else 0,
            },
            now=time.time(),
        )

    async def run(self) -> int:
        raise_nofile_limit()
        try:
            cfg = load_config(self.config_path)
            drivers = cfg.build_drivers()
        except ConfigError as e:
            for p in e.problems:
                log.error("config_invalid problem=%r", p)
            return 2
        register_config_secrets(cfg.top, *cfg.devices)
        self.cfg = cfg
        self._agent_metrics(cfg)
        self.store = PromStore(cfg.site, cfg.rack, self.registry)
        listeners: list[Any] = [self.store, self.keys]
        if cfg.top.mqtt is not None:
            from agent.mqtt import MqttPublisher

            try:
                self.mqtt = MqttPublisher(cfg.site, cfg.rack, cfg.top.agent.name, cfg.top.mqtt,
                                          cfg.top.agent.state_dir)
            except OSError as e:
                log.error("mqtt_spool_unusable state_dir=%s error=%r", cfg.top.agent.state_dir, str(e))
                return 1
            listeners.append(self.mqtt)
        self.scheduler = Scheduler(cfg.top.agent.max_concurrency, listeners)
        self.scheduler.lag.observers.append(self.lag_hist.observe)
        host, port = cfg.top.prometheus.address()
        self.http = HttpServer(host, self.http_port if self.http_port is not None else port, HttpHooks(
            render_metrics=self.store.render,
            ready=lambda: self.scheduler is not None and self.scheduler.all_polled(),
            status_html=self._status_html,
            devices_json=self._devices_json,
        ))
        self.http.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        mqtt_task = asyncio.create_task(self.mqtt.run(), name="mqtt") if self.mqtt else None
        self.scheduler.apply(drivers, {d.name: fingerprint(cfg, i) for i, d in enumerate(cfg.devices)})
        log.info("started version=%s devices=%d listen=%s:%d", __version__, len(drivers), host, self.http.port)
        self.notifier.ready(f"polling {len(drivers)} devices")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        freezer = asyncio.create_task(self._freeze_when_polled(), name="gc-freeze")
        await self._stop.wait()
        freezer.cancel()
        return await self._shutdown(watchdog, mqtt_task)

    async def _freeze_when_polled(self) -> None:
        """Move the long-lived heap (drivers, caches, rendered blocks) out of the collector's sight.

        With a thousand devices the full collections otherwise walk millions of long-lived objects
        and stall the loop for half a second; once every device has been polled, the set of
        long-lived objects is stable, so freeze it (again after each reload).
        """
        frozen_for: object = None
        while True:
            await asyncio.sleep(1.0)
            sched = self.scheduler
            if sched is None or not sched.pollers or not sched.all_polled() or frozen_for is self.cfg:
                continue
            gc.freeze()  # no collect() first: on a big heap that is the very stall we are avoiding
            frozen_for = self.cfg
            log.info("gc_frozen objects=%d", gc.get_freeze_count())

    async def _shutdown(self, watchdog: asyncio.Task[None], mqtt_task: asyncio.Task[Any] | None) -> int:
        t0 = time.monotonic()
        self.notifier.stopping()
        log.info("stopping")
        watchdog.cancel()
        if self.scheduler:
            await self.scheduler.stop()
        for plugin in plugins().values():
            try:
                await plugin.shutdown()
            except Exception:
                log.exception("driver_shutdown_failed driver=%s", plugin.name)
        if self.mqtt:
            try:
                await asyncio.wait_for(self.mqtt.stop(), timeout=6)
            except TimeoutError:
                log.warning("mqtt_stop_timeout: unsent messages stay spooled")
        if mqtt_task:
            mqtt_task.cancel()
            await asyncio.gather(mqtt_task, return_exceptions=True)
        if self.http:
            self.http.stop()
        log.info("stopped seconds=%.2f", time.monotonic() - t0)
        return 0

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog only while the scheduler makes progress; a stalled loop stops too."""
        interval = self.notifier.watchdog_interval()
        if not interval:
            return
        while True:
            if self.scheduler is None or self.scheduler.healthy():
                self.notifier.ping()
            else:
                log.error("scheduler_stalled: withholding the watchdog ping so systemd restarts us")
            await asyncio.sleep(interval)

    async def reload(self) -> None:
        """Re-read the config; apply device changes; keep the old config if the new one is bad."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                cfg = load_config(self.config_path)
                drivers = cfg.build_drivers()
                register_config_secrets(cfg.top, *cfg.devices)
            except ConfigError as e:
                for p in e.problems:
                    log.error("reload_rejected problem=%r", p)
                self.notifier.ready("reload rejected; running the previous config")
                return
            old = self.cfg
            assert self.scheduler is not None and old is not None
            fixed = ("site", "rack", "prometheus", "mqtt")
            stale = [k for k in fixed if getattr(cfg.top, k) != getattr(old.top, k)]
            a_new, a_old = cfg.top.agent, old.top.agent
            stale += [f"agent.{k}" for k in ("name", "state_dir", "max_concurrency", "log_format", "log_level")
                      if getattr(a_new, k) != getattr(a_old, k)]
            if stale:  # device timing defaults (interval, timeout, retries) do apply
                log.warning("reload_partial need_restart=%s", ",".join(stale))
            fps = {d.name: fingerprint(cfg, i) for i, d in enumerate(cfg.devices)}
            added, changed, removed = self.scheduler.apply(drivers, fps)
            # Keep the running identity and publishers' settings; only the device list changes.
            top = old.top.model_copy(update={"devices": cfg.top.devices, "profile_dirs": cfg.top.profile_dirs})
            self.cfg = Config(top=top, devices=cfg.devices, source=cfg.source)
            log.info("reloaded added=%s changed=%s removed=%s", added, changed, removed)
            self.notifier.ready(f"polling {len(drivers)} devices")
