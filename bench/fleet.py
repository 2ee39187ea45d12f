"""Fleet benchmark: one agent on one core polling 1,000 devices, publishing to MQTT and Prometheus.

Inside a throw-away network namespace:

- CPU 0: ``rackpulse run`` only (``taskset -c 0``);
- CPU 1: everything else: ``--pdus`` (800) Raritan PDUs with 48 outlets polled every 10 s (served
  by the light responder in :mod:`bench.sims`, same register layout as the simulator),
  ``--switches`` (200) if-mib switches polled every 30 s, all answered by one 97-port Net-SNMP
  snmpd, mosquitto (MQTT QoS 1), and Prometheus scraping /metrics every 15 s.

Reported: start-up (launch to /healthz, to the first finished poll, to every device polled), the
agent's CPU as % of one core (sampled every 5 s), RSS max, scheduler lag p50/p99 (the agent's own
window and Prometheus' histogram over the whole run), missed deadlines, polls done against
polls due, errors, MQTT messages published, and Prometheus scrape durations. Usage::

    .venv/bin/python -m bench.fleet [--minutes 10] [--pdus 800] [--switches 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import lib
from bench.exposition import Prometheus, _stats, agent_cmd, snmp_engines, wait_healthz, write_config
from bench.sims import start_pdus


def start_mosquitto(work: Path, cpus: str | None) -> tuple[Any, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = lib.free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\n", encoding="utf-8")
    conf.chmod(0o644)
    work.chmod(0o755)
    proc = lib.start([exe, "-c", str(conf)], log=work / "mosquitto.log", cpus=cpus)
    lib.wait_tcp(port)
    return proc, port


def devices_status(port: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(lib.http_get(f"http://127.0.0.1:{port}/api/devices", timeout=60))
    return doc


def prom_query(prom: Prometheus, query: str, at: float) -> float | None:
    q = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    doc = json.loads(lib.http_get(f"http://127.0.0.1:{prom.port}/api/v1/query?{q}"))
    res = doc["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def inner_main(a: argparse.Namespace) -> int:
    lib.install_exit_handlers()
    agent_cpu, other_cpu = ("0", "1")
    res: dict[str, Any] = {"machine": lib.machine(), "args": {k: v for k, v in vars(a).items() if k != "json"}}
    with lib.workdir("rpbench-fleet-") as work:
        snmpd = lib.Snmpd(work / "snmpd", cpus=other_cpu)
        snmpd.start()
        sims, pdu_ports = start_pdus(work, a.pdus, 48, cpus=other_cpu, light=not a.simulator)
        mq, mq_port = start_mosquitto(work, other_cpu)
        port = lib.free_port()
        cfg = write_config(work, pdu_ports, snmpd, a.switches, port, "10s", mqtt_port=mq_port,
                           switch_interval="30s")
        res["snmp_engines"] = snmp_engines(cfg, a.snmp_engine)
        t0 = time.monotonic()
        nofile = a.nofile if ":" in a.nofile else f"{a.nofile}:{a.nofile}"
        limit = ["prlimit", f"--nofile={nofile}", "--"] if a.nofile else []
        gc_log = work / "gc.jsonl" if a.gc_trace else None
        gc_opts = (["--gc-freeze", str(a.gc_freeze)] if a.gc_freeze else []) + (
            ["--gc-threshold", a.gc_threshold] if a.gc_threshold else []) + (
            ["--gc-census", str(work / "gc-census.json")] if a.gc_trace else [])
        agent = lib.start([*limit, *agent_cmd(a.snmp_engine, cfg, gc_log, gc_opts)], log=work / "rackpulse.log",
                          cpus=agent_cpu, cwd=lib.REPO)
        wait_healthz(port, agent, work / "rackpulse.log")
        res["startup_http_seconds"] = time.monotonic() - t0
        first = ready = None
        while time.monotonic() - t0 < 120 and ready is None:
            if agent.poll() is not None:
                raise RuntimeError(f"rackpulse exited with {agent.returncode}; see {work / 'rackpulse.log'}")
            if first is None:
                st = devices_status(port)
                if any(d["polls"] > 0 for d in st["devices"]):
                    first = time.monotonic() - t0
            try:
                lib.http_get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                ready = time.monotonic() - t0
            except OSError:
                time.sleep(0.5)
        res["startup_first_poll_seconds"] = first
        res["startup_all_polled_seconds"] = ready
        print(f"start-up: http {res['startup_http_seconds']:.2f} s, first poll {first} s, all polled {ready} s",
              flush=True)
        prom = Prometheus(work / "prom", [("rackpulse", port, 15.0)], other_cpu)
        prom.start()
        st0 = devices_status(port)
        polls0 = {d["name"]: d["polls"] for d in st0["devices"]}
        c0, w0 = lib.proc_cpu(agent.pid), time.time()
        cpu_samples: list[float] = []
        lag_p99_samples: list[float] = []
        end = w0 + a.minutes * 60
        last_c, last_w = c0, w0
        next_status = w0 + 30
        spy = None
        if a.profile:
            spy = start_profile(agent.pid, work / "pyspy.txt", a.profile)
        while time.time() < end:
            time.sleep(5)
            if agent.poll() is not None:
                raise RuntimeError(f"rackpulse exited with {agent.returncode}")
            c, w = lib.proc_cpu(agent.pid), time.time()
            cpu_samples.append((c - last_c) / (w - last_w) * 100)
            last_c, last_w = c, w
            if w >= next_status:
                sch = devices_status(port)["scheduler"]
                lag_p99_samples.append(sch["lag_p99_seconds"])
                next_status = w + 30
                print(f"  t={w - w0:5.0f}s agent CPU {cpu_samples[-1]:5.1f}% lag p99 {sch['lag_p99_seconds']:.4f}s "
                      f"missed {sch['missed_deadlines']}", flush=True)
        c1, w1 = lib.proc_cpu(agent.pid), time.time()
        if spy is not None:
            spy.wait(timeout=a.profile + 60)
            res["profile"] = summarize_profile(work / "pyspy.txt")
            lib.save_results("fleet-pyspy", {"raw": (work / "pyspy.txt").read_text(errors="replace")[:2_000_000]},
                             str(Path(a.json or lib.REPO / "bench/results/fleet.json").with_suffix(".pyspy.json")))
        st1 = devices_status(port)
        mem = lib.proc_mem(agent.pid)
        res["agent_open_files"] = len(os.listdir(f"/proc/{agent.pid}/fd"))
        window = w1 - w0
        due = due_polls(a.pdus, a.switches, window)
        done = sum(d["polls"] - polls0.get(d["name"], 0) for d in st1["devices"])
        errors: dict[str, int] = {}
        for d in st1["devices"]:
            for k, v in d["errors"].items():
                errors[k] = errors.get(k, 0) + v
        res.update({
            "window_seconds": window,
            "agent_cpu_percent_mean": (c1 - c0) / window * 100,
            "agent_cpu_percent_samples": _stats(cpu_samples),
            "agent_rss_bytes": mem.get("VmRSS"),
            "agent_rss_max_bytes": mem.get("VmHWM"),
            "scheduler_end": st1["scheduler"],
            "lag_p99_over_run": _stats(lag_p99_samples),
            "polls_done": done,
            "polls_due": due,
            "devices_down_end": st1["summary"].get("down"),
            "errors_total": errors,
            "mqtt": st1.get("mqtt"),
            "readings_per_poll_round": sum(d["reading_count"] for d in st1["devices"]),
        })
        res["prometheus"] = {
            "scrape_duration_seconds": _stats(prom.series('scrape_duration_seconds{job="rackpulse"}', w0, w1, 15)),
            "scrape_samples_scraped": _stats(prom.series('scrape_samples_scraped{job="rackpulse"}', w0, w1, 15)),
            "up": _stats(prom.series('up{job="rackpulse"}', w0, w1, 15)),
            "lag_p99_histogram": prom_query(
                prom, f"histogram_quantile(0.99, sum by (le) (increase(rackpulse_scheduler_lag_seconds_bucket"
                f"[{int(window)}s])))", w1),
            "lag_p50_histogram": prom_query(
                prom, f"histogram_quantile(0.5, sum by (le) (increase(rackpulse_scheduler_lag_seconds_bucket"
                f"[{int(window)}s])))", w1),
        }
        res["server_cpu_percent"] = {
            "sims": lib.proc_cpu(sims.pid) / (time.monotonic() - t0) * 100,
            "snmpd": lib.proc_cpu(snmpd.proc.pid) / (time.monotonic() - t0) * 100 if snmpd.proc else None,
            "mosquitto": lib.proc_cpu(mq.pid) / (time.monotonic() - t0) * 100,
        }
        prom.stop()
        lib.stop(agent)
        res["agent_exit_code"] = agent.returncode
        if (work / "gc-census.json").exists():
            res["gc_census"] = json.loads((work / "gc-census.json").read_text(encoding="utf-8"))
        if gc_log is not None and gc_log.exists():
            pauses = [json.loads(ln) for ln in gc_log.read_text(encoding="utf-8").splitlines() if ln.strip()]
            in_run = [p for p in pauses if w0 <= p["t"] <= w1]
            res["gc_pauses"] = {
                "count_over_5ms": len(in_run),
                "by_generation": {g: _stats([p["seconds"] for p in in_run if p["gen"] == g]) for g in (0, 1, 2)},
            }
        log_tail = (work / "rackpulse.log").read_text(errors="replace").splitlines()[-20:]
        res["agent_log_tail"] = log_tail
    report(res)
    print(f"\nresults: {lib.save_results('fleet', res, a.json)}")
    return 0


def pyspy_exe() -> str | None:
    """py-spy from $RPBENCH_PYSPY or PATH (optional: only ``--profile`` needs it)."""
    return os.environ.get("RPBENCH_PYSPY") or shutil.which("py-spy")


def start_profile(pid: int, out: Path, seconds: float) -> Any:
    exe = pyspy_exe()
    if not exe:
        raise RuntimeError("--profile needs py-spy (set RPBENCH_PYSPY=/path/to/py-spy or put it on PATH)")
    return lib.start([exe, "record", "--nonblocking", "-r", "100", "-d", str(int(seconds)), "--format", "raw",
                      "-o", str(out), "--pid", str(pid)], log=out.with_suffix(".log"), cpus="1")


def summarize_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [f.split(" (", 1)[0] + " " + (f.split(" (", 1)[1].rstrip(")") if " (" in f else "")
                  for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + count
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + count

    def share(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(v / total * 100, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self_percent": share(self_n), "inclusive_percent": share(incl_n)}


def due_polls(pdus: int, switches: int, window: float) -> float:
    """Polls the schedule asks for in ``window`` seconds (PDUs every 10 s, switches every 30 s)."""
    return pdus * window / 10 + switches * window / 30


def report(res: dict[str, Any]) -> None:
    m, sch, pr = res["machine"], res["scheduler_end"], res["prometheus"]
    a = res["args"]
    print(f"\n# Fleet: {a['pdus']} PDUs @10 s + {a['switches']} switches @30 s, {res['window_seconds'] / 60:.1f} min, "
          f"SNMP engine {res.get('snmp_engines')}; GC options {a.get('gc_freeze') or '-'} "
          f"{a.get('gc_threshold') or ''}; "
          f"{m['date']}; {m['nproc']} x {m['cpu']} ({m['arch']})")
    rows = [
        ["agent CPU, mean (% of one core)", f"{res['agent_cpu_percent_mean']:.1f}"],
        ["agent CPU, 5 s samples p99 / max", f"{res['agent_cpu_percent_samples'].get('p99', 0):.1f} / "
                                             f"{res['agent_cpu_percent_samples'].get('max', 0):.1f}"],
        ["RSS at end / max", f"{(res['agent_rss_bytes'] or 0) / 2**20:.0f} MiB / "
                             f"{(res['agent_rss_max_bytes'] or 0) / 2**20:.0f} MiB"],
        ["scheduler lag p50 / p99 (agent, last ~4096 polls)", f"{sch['lag_p50_seconds']:.4f} s / "
                                                              f"{sch['lag_p99_seconds']:.4f} s"],
        ["scheduler lag p50 / p99 (Prometheus histogram, whole run)", f"{pr['lag_p50_histogram']} / "
                                                                      f"{pr['lag_p99_histogram']}"],
        ["missed deadlines (skipped intervals)", sch["missed_deadlines"]],
        ["polls done / due", f"{res['polls_done']} / {res['polls_due']:.0f}"],
        ["poll errors by reason", json.dumps(res["errors_total"])],
        ["devices down at end", res["devices_down_end"]],
        ["readings per round", res["readings_per_poll_round"]],
        ["agent open file descriptors", res.get("agent_open_files")],
        ["MQTT", json.dumps(res["mqtt"])],
        ["Prometheus scrape_duration p50 / max", f"{pr['scrape_duration_seconds'].get('p50')} / "
                                                 f"{pr['scrape_duration_seconds'].get('max')} s"],
        ["Prometheus samples per scrape", pr["scrape_samples_scraped"].get("max")],
        ["start-up: /healthz, first poll, all polled", f"{res['startup_http_seconds']:.2f} s, "
                                                       f"{res['startup_first_poll_seconds']} s, "
                                                       f"{res['startup_all_polled_seconds']} s"],
        ["servers' CPU (CPU 1)", json.dumps({k: round(v or 0, 1) for k, v in res["server_cpu_percent"].items()})],
    ]
    print(lib.md_table(["figure", "value"], rows))
    if "gc_census" in res:
        print(f"\nGC-tracked objects 60 s after start: {res['gc_census']['tracked']}, top types: "
              f"{res['gc_census']['top'][:12]}")
    if "gc_pauses" in res:
        print(f"\nGC pauses >= 5 ms during the window: {json.dumps(res['gc_pauses'])}")
    if "profile" in res:
        prof = res["profile"]
        print(f"\npy-spy, {prof['samples']} samples of the agent (all threads), top self time:")
        for name, pct in prof["self_percent"][:15]:
            print(f"  {pct:5.1f}%  {name}")
        print("top inclusive:")
        for name, pct in prof["inclusive_percent"][:25]:
            print(f"  {pct:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--pdus", type=int, default=800)
    p.add_argument("--switches", type=int, default=200)
    p.add_argument("--simulator", action="store_true",
                   help="serve PDUs with the project's pymodbus simulator instead of the light responder")
    p.add_argument("--snmp-engine", choices=["default", "fast", "pysnmp"], default="default",
                   help="experiment: run the agent with this SNMP session engine (via bench.agent_launch)")
    p.add_argument("--gc-trace", action="store_true", help="log the agent's garbage-collector pauses")
    p.add_argument("--gc-freeze", type=float, default=0, metavar="SECONDS",
                   help="experiment: gc.freeze() in the agent every SECONDS (via bench.agent_launch)")
    p.add_argument("--gc-threshold", help="experiment: gc.set_threshold(A,B,C) in the agent")
    p.add_argument("--nofile", default="", metavar="SOFT[:HARD]",
                   help="run the agent with this open-file limit (systemd's default for services is soft 1024)")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="also sample the agent with py-spy for SECONDS (needs py-spy)")
    p.add_argument("--json", help="where to write results (default bench/results/fleet.json)")
    a = p.parse_args(argv)
    if not lib.inside_netns():
        return lib.reexec_in_netns("bench.fleet", sys.argv[1:] if argv is None else argv)
    return inner_main(a)


if __name__ == "__main__":
    sys.exit(main())
