"""Exposition benchmark: a real Prometheus scraping ~50k series from ``rackpulse run`` every second.

Inside a throw-away network namespace (so the switches can be a real 97-port snmpd):

- ``--pdus`` simulated Raritan PDUs (48 outlets, ~204 series each) in one simulator process and
  ``--switches`` switch devices (if-mib, ~1,072 series each) all pointing at one Net-SNMP snmpd;
  defaults 100 + 28 give ~50.4k device series;
- the real daemon, ``rackpulse run -c CONFIG`` (pinned to CPU 0), polling them every 10 s;
- a real ``prometheus`` (CPU 1) scraping /metrics every 1 s; ``scrape_duration_seconds`` and
  ``scrape_samples_scraped`` come from Prometheus' HTTP API over the measurement window (note
  that Prometheus stops that clock after parsing and appending the samples to its TSDB, so
  its own ingest cost is inside the figure: the "floor" row serves the same bytes pre-rendered
  and pre-compressed to show that part);
- the poll loop's scheduler lag p50/p99 and missed deadlines from ``/api/devices`` while scraping.

The peer: the same series (parsed from one rackpulse scrape) served by prometheus-client's
standard pattern, a custom Collector building metric families on every scrape behind
``start_http_server``, scraped by the same Prometheus every 5 s (a 1 s timeout would cut it off).
Usage::

    .venv/bin/python -m bench.exposition [--pdus 100] [--switches 28] [--seconds 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from bench import lib
from bench.sims import start_pdus


# --- the peer: prometheus-client's standard collector ----------------------------------------------
def peer_serve(dump: Path, port: int) -> None:
    """Serve the series of a text-format dump through a prometheus-client Collector, until killed."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector

    families: list[tuple[str, str, str, list[str], list[tuple[list[str], float]]]] = []
    for fam in text_string_to_metric_families(dump.read_text(encoding="utf-8")):
        if not fam.name.startswith("rackpulse_") or fam.name.startswith("rackpulse_scheduler"):
            continue
        names: list[str] = []
        rows: list[tuple[list[str], float]] = []
        for s in fam.samples:
            if not names:
                names = sorted(s.labels)
            rows.append(([s.labels.get(n, "") for n in names], s.value))
        kind = "counter" if fam.type == "counter" else "gauge"
        families.append((fam.name, fam.documentation or fam.name, kind, names, rows))

    class Snapshot(Collector):
        """Rebuilds every family on each scrape, as a Collector over a live snapshot does."""

        def collect(self) -> Any:
            for name, doc, kind, names, rows in families:
                fam: Any = (CounterMetricFamily(name, doc, labels=names) if kind == "counter"
                            else GaugeMetricFamily(name, doc, labels=names))
                for values, v in rows:
                    fam.add_metric(values, v)
                yield fam

    reg = CollectorRegistry()
    reg.register(Snapshot())
    start_http_server(port, addr="127.0.0.1", registry=reg)
    print(json.dumps({"series": sum(len(f[4]) for f in families)}), flush=True)
    while True:
        time.sleep(3600)


def static_serve(dump: Path, port: int) -> None:
    """Serve a dump as fixed bytes (gzip pre-computed): the floor of what any exporter can do."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    plain = dump.read_bytes()
    packed = gzip.compress(plain, 1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            gz = "gzip" in (self.headers.get("Accept-Encoding") or "")
            body = packed if gz else plain
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            if gz:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def measure_server(work: Path, name: str, port: int, pid: int, interval: float, seconds: float,
                   cpus: str | None, queries: dict[str, str] | None = None) -> dict[str, Any]:
    """Let a fresh Prometheus scrape ``port`` every ``interval`` s for ``seconds``; its view plus server CPU."""
    prom = Prometheus(work / f"prom-{name}", [(name, port, interval)], cpus)
    prom.start()
    time.sleep(interval + 5)
    c0, w0 = lib.proc_cpu(pid), time.time()
    time.sleep(seconds)
    c1, w1 = lib.proc_cpu(pid), time.time()
    out = {
        "scrape_duration_seconds": _stats(prom.series(f'scrape_duration_seconds{{job="{name}"}}', w0, w1, interval)),
        "scrape_samples_scraped": _stats(prom.series(f'scrape_samples_scraped{{job="{name}"}}', w0, w1, interval)),
        "up": _stats(prom.series(f'up{{job="{name}"}}', w0, w1, interval)),
        "server_cpu_percent": (c1 - c0) / (w1 - w0) * 100,
        "window": (w0, w1),
    }
    for key, q in (queries or {}).items():  # instant queries at the window's end; {w} is its length
        out[key] = prom.instant(q.replace("{w}", f"{int(w1 - w0)}s"), w1)
    prom.stop()
    return out


# --- Prometheus -------------------------------------------------------------------------------------
class Prometheus:
    """A real Prometheus server on 127.0.0.1 with a throw-away TSDB."""

    def __init__(self, work: Path, jobs: list[tuple[str, int, float]], cpus: str | None) -> None:
        self.work = work
        self.port = lib.free_port()
        self.jobs = jobs
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("prometheus")
        if not exe:
            raise RuntimeError("prometheus is not installed (Debian package prometheus)")
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = {"global": {"scrape_interval": "15s", "evaluation_interval": "1m"},
               "scrape_configs": [{"job_name": name, "scrape_interval": f"{iv:g}s", "scrape_timeout": f"{iv:g}s",
                                   "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                  for name, port, iv in self.jobs]}
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        self.proc = lib.start([exe, f"--config.file={self.work / 'prometheus.yml'}",
                               f"--storage.tsdb.path={self.work / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                              log=self.work / "prometheus.log", cpus=self.cpus)
        lib.wait_http(f"http://127.0.0.1:{self.port}/-/ready", timeout=60)

    def series(self, query: str, start: float, end: float, step: float = 1.0) -> list[float]:
        q = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
        doc = json.loads(lib.http_get(f"http://127.0.0.1:{self.port}/api/v1/query_range?{q}"))
        out: list[float] = []
        for r in doc["data"]["result"]:
            out.extend(float(v) for _, v in r["values"])
        return out

    def instant(self, query: str, at: float) -> float | None:
        q = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
        doc = json.loads(lib.http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{q}"))
        res = doc["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def stop(self) -> None:
        lib.stop(self.proc)
        self.proc = None


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": lib.quantile(xs, 0.5), "p99": lib.quantile(xs, 0.99), "max": max(xs),
            "mean": sum(xs) / len(xs)}


def _time_scrapes(url: str, n: int, gz: bool) -> dict[str, float]:
    headers = {"Accept-Encoding": "gzip"} if gz else {}
    times: list[float] = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        body = lib.http_get(url, headers=headers)
        times.append(time.perf_counter() - t0)
        size = len(body)
    return {**_stats(times), "bytes": size}


# --- orchestration ---------------------------------------------------------------------------------
def write_config(work: Path, pdu_ports: list[int], snmpd: lib.Snmpd | None, switches: int, listen: int,
                 interval: str, mqtt_port: int | None = None, switch_interval: str | None = None) -> Path:
    """A rackpulse config polling the simulated PDUs and ``switches`` devices on the one snmpd."""
    secrets = work / "secrets"
    secrets.mkdir(exist_ok=True)
    devices: list[dict[str, Any]] = [
        {"name": f"pdu-{i + 1}", "driver": "modbus", "profile": "raritan-px-modbus", "host": "127.0.0.1",
         "port": p, "unit_id": 1} for i, p in enumerate(pdu_ports)]
    if switches:
        assert snmpd is not None
        cfile = secrets / "community"
        cfile.write_text(snmpd.creds.community + "\n", encoding="utf-8")
        os.chmod(cfile, 0o600)
        for i in range(switches):
            dev: dict[str, Any] = {"name": f"sw-{i + 1}", "driver": "snmp", "profile": "if-mib",
                                   "host": "127.0.0.1", "port": snmpd.port, "version": "2c",
                                   "community_file": str(cfile)}
            if switch_interval:
                dev["interval"] = switch_interval
            devices.append(dev)
    cfg: dict[str, Any] = {
        "site": "bench", "rack": "r1",
        "agent": {"name": "bench", "interval": interval, "timeout": "5s", "state_dir": str(work / "state"),
                  "log_level": "warning", "max_concurrency": 64},
        "prometheus": {"listen": f"127.0.0.1:{listen}"},
        "devices": devices,
    }
    if mqtt_port:
        cfg["mqtt"] = {"url": f"mqtt://127.0.0.1:{mqtt_port}", "topic_prefix": "rackpulse", "qos": 1}
    path = work / "rackpulse.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def rackpulse_exe() -> str:
    exe = Path(lib.PY).parent / "rackpulse"
    return str(exe) if exe.exists() else shutil.which("rackpulse") or "rackpulse"


def snmp_engines(cfg: Path, engine: str) -> dict[str, int]:
    """Which SNMP session engine the agent's drivers use for this config (class name -> devices)."""
    if engine != "default":
        return {f"{engine} (forced by bench.agent_launch)": -1}
    from agent.config import load_config

    out: dict[str, int] = {}
    for drv in load_config(cfg).build_drivers().values():
        factory = getattr(drv, "session_factory", None)
        if factory is not None:
            name = getattr(factory, "__name__", type(factory).__name__)
            out[name] = out.get(name, 0) + 1
    return out


def agent_cmd(engine: str, cfg: Path, gc_log: Path | None = None, gc_opts: list[str] | None = None) -> list[str]:
    """``rackpulse run -c cfg``, through the launcher when an engine is forced or GC is traced/tuned."""
    if engine == "default" and gc_log is None and not gc_opts:
        return [rackpulse_exe(), "run", "-c", str(cfg)]
    extra = (["--gc-log", str(gc_log)] if gc_log else []) + (gc_opts or [])
    return [lib.PY, "-m", "bench.agent_launch", "--snmp-engine", engine, *extra, "run", "-c", str(cfg)]


def wait_healthz(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Block until the agent answers /healthz; fail with its log tail if it exits first."""
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"the agent exited with {proc.returncode} before serving /healthz:\n{tail}")
        try:
            lib.http_get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"the agent did not answer /healthz within {timeout:g}s") from None
            time.sleep(0.1)


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until /readyz answers 200 (every device polled once)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"rackpulse exited with {proc.returncode}")
        try:
            lib.http_get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"rackpulse not ready after {timeout:g}s")


def inner_main(a: argparse.Namespace) -> int:
    lib.install_exit_handlers()
    agent_cpu, other_cpu = (None, None) if a.no_pin else ("0", "1")
    res: dict[str, Any] = {"machine": lib.machine(), "args": vars(a),
                           "tools": {"prometheus": lib.tool_version(["prometheus", "--version"])}}
    with lib.workdir("rpbench-expo-") as work:
        snmpd = None
        if a.switches:
            snmpd = lib.Snmpd(work / "snmpd", cpus=other_cpu)
            snmpd.start()
        sims, pdu_ports = start_pdus(work, a.pdus, 48, cpus=other_cpu)
        port = lib.free_port()
        cfg = write_config(work, pdu_ports, snmpd, a.switches, port, a.interval)
        res["snmp_engines"] = snmp_engines(cfg, a.snmp_engine)
        t0 = time.monotonic()
        agent = lib.start(agent_cmd(a.snmp_engine, cfg), log=work / "rackpulse.log", cpus=agent_cpu, cwd=lib.REPO)
        wait_healthz(port, agent, work / "rackpulse.log", timeout=60)
        res["startup_http_seconds"] = time.monotonic() - t0
        res["startup_ready_seconds"] = wait_ready(port, agent, timeout=120) + res["startup_http_seconds"]
        time.sleep(a.interval_s + 2)  # one more full round so every device series exists
        url = f"http://127.0.0.1:{port}/metrics"
        dump = work / "metrics.txt"
        body = lib.http_get(url)
        dump.write_bytes(body)
        res["rackpulse_series"] = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
        res["rackpulse_bytes"] = len(body)
        res["rackpulse_gzip_bytes"] = len(gzip.compress(body, 1))
        print(f"rackpulse serves {res['rackpulse_series']} series ({len(body) / 1e6:.1f} MB)", flush=True)

        lag = "histogram_quantile({q}, sum by (le) (increase(rackpulse_scheduler_lag_seconds_bucket[{w}])))"
        rp = measure_server(work, "rackpulse", port, agent.pid, 1.0, a.seconds, other_cpu,
                            {"lag_p50_histogram": lag.replace("{q}", "0.5"),
                             "lag_p99_histogram": lag.replace("{q}", "0.99")})
        res["rackpulse_prometheus"] = rp
        res["agent_cpu_percent"] = rp["server_cpu_percent"]
        status = json.loads(lib.http_get(f"http://127.0.0.1:{port}/api/devices"))
        res["scheduler_while_scraping"] = status.get("scheduler")
        res["devices_down"] = status["summary"].get("down")
        res["agent_mem"] = lib.proc_mem(agent.pid)
        res["client_scrape_gzip"] = _time_scrapes(url, a.client_scrapes, True)
        res["client_scrape_plain"] = _time_scrapes(url, a.client_scrapes, False)
        lib.stop(agent)
        lib.stop(sims)
        if snmpd:
            snmpd.stop()

        # The peer, on the same series.
        pport = lib.free_port()
        peer = lib.start([lib.PY, "-m", "bench.exposition", "--peer-serve", str(dump), "--port", str(pport)],
                         log=work / "peer.log", cpus=agent_cpu, cwd=lib.REPO)
        lib.wait_http(f"http://127.0.0.1:{pport}/metrics", timeout=120)
        pbody = lib.http_get(f"http://127.0.0.1:{pport}/metrics")
        res["peer_series"] = sum(1 for ln in pbody.splitlines() if ln and not ln.startswith(b"#"))
        res["peer_prometheus"] = measure_server(work, "peer", pport, peer.pid, 5.0, max(a.seconds, 30), other_cpu)
        res["peer_cpu_percent"] = res["peer_prometheus"]["server_cpu_percent"]
        res["peer_client_scrape_gzip"] = _time_scrapes(f"http://127.0.0.1:{pport}/metrics", 3, True)
        lib.stop(peer)

        # The floor: the same bytes served pre-rendered and pre-compressed.
        sport = lib.free_port()
        static = lib.start([lib.PY, "-m", "bench.exposition", "--static-serve", str(dump), "--port", str(sport)],
                           log=work / "static.log", cpus=agent_cpu, cwd=lib.REPO)
        lib.wait_http(f"http://127.0.0.1:{sport}/metrics", timeout=60)
        res["static_prometheus"] = measure_server(work, "static", sport, static.pid, 1.0, a.seconds, other_cpu)
        res["static_client_scrape_gzip"] = _time_scrapes(f"http://127.0.0.1:{sport}/metrics", 3, True)
        lib.stop(static)
    report(res)
    print(f"\nresults: {lib.save_results('exposition', res, a.json)}")
    return 0


def report(res: dict[str, Any]) -> None:
    m = res["machine"]
    rp, pe, sp = res["rackpulse_prometheus"], res["peer_prometheus"], res["static_prometheus"]
    rd, pd, sd = rp["scrape_duration_seconds"], pe["scrape_duration_seconds"], sp["scrape_duration_seconds"]
    print(f"\n# Exposition: {res['rackpulse_series']} series, SNMP engine {res.get('snmp_engines')}; "
          f"{m['date']}; {m['nproc']} x {m['cpu']} ({m['arch']})")
    rows = [
        ["rackpulse run (PromStore + HttpServer)", res["rackpulse_series"], rd.get("p50"), rd.get("p99"),
         rd.get("max"), rp["up"].get("mean"), rd.get("n"), res["client_scrape_gzip"]["p50"]],
        ["prometheus-client standard collector (peer)", res["peer_series"], pd.get("p50"), pd.get("p99"),
         pd.get("max"), pe["up"].get("mean"), pd.get("n"), res["peer_client_scrape_gzip"]["p50"]],
        ["floor: same bytes pre-rendered, pre-gzipped", res["rackpulse_series"], sd.get("p50"), sd.get("p99"),
         sd.get("max"), sp["up"].get("mean"), sd.get("n"), res["static_client_scrape_gzip"]["p50"]],
    ]
    print(lib.md_table(["server", "series", "scrape_duration p50 s", "p99 s", "max s", "up", "scrapes",
                        "client GET gzip p50 s"], rows))
    if rd.get("p50") and pd.get("p50"):
        print(f"\nratio rackpulse/peer scrape_duration p50: {rd['p50'] / pd['p50']:.3f}x")
    sch = res.get("scheduler_while_scraping") or {}
    print(f"agent CPU while polling + 1 s scrapes: {res['agent_cpu_percent']:.1f}% of a core; "
          f"scheduler lag while scraped (Prometheus histogram) p50 {rp.get('lag_p50_histogram')} s, "
          f"p99 {rp.get('lag_p99_histogram')} s; agent's last 4096 polls: "
          f"p50 {sch.get('lag_p50_seconds')} s, p99 {sch.get('lag_p99_seconds')} s, "
          f"missed deadlines {sch.get('missed_deadlines')}; devices down {res.get('devices_down')}; "
          f"start-up to ready {res['startup_ready_seconds']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdus", type=int, default=100)
    p.add_argument("--switches", type=int, default=28)
    p.add_argument("--interval", default="10s", help="device poll interval")
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window per server")
    p.add_argument("--client-scrapes", type=int, default=10)
    p.add_argument("--no-pin", action="store_true", help="do not pin the agent to CPU 0 and the rest to CPU 1")
    p.add_argument("--json", help="where to write results (default bench/results/exposition.json)")
    p.add_argument("--snmp-engine", choices=["default", "fast", "pysnmp"], default="default",
                   help="experiment: run the agent with this SNMP session engine (via bench.agent_launch)")
    p.add_argument("--peer-serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--static-serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.peer_serve:
        peer_serve(a.peer_serve, a.port)
        return 0
    if a.static_serve:
        static_serve(a.static_serve, a.port)
        return 0
    from drivers.config import parse_duration

    a.interval_s = parse_duration(a.interval)
    if not lib.inside_netns():
        return lib.reexec_in_netns("bench.exposition", sys.argv[1:] if argv is None else argv)
    return inner_main(a)


if __name__ == "__main__":
    sys.exit(main())
