"""Benchmark helpers: CPU and memory accounting, process lifecycle, a network namespace, snmpd, tables.

Everything a benchmark starts is tracked by PID and stopped on exit, including on SIGINT/SIGTERM,
and every started process gets a parent-death signal so nothing outlives a crashed benchmark.
Network traffic stays on 127.0.0.1, inside a namespace the benchmark creates (``rpbench-<pid>``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_ENV = "RPBENCH_NS"
PR_SET_PDEATHSIG = 1


# --- CPU, memory, time ----------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        data = f.read()
    # Fields after the ')' of comm: index 0 is state (field 3), so utime (14) is 11 and stime (15) is 12.
    rest = data[data.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in bytes from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out


def self_cpu() -> float:
    """User+system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def free_port(kind: str = "tcp") -> int:
    """A port on 127.0.0.1 that is free right now in the current network namespace."""
    st = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, st) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int, kind: str = "tcp") -> list[int]:
    """``n`` distinct free ports (held open together while choosing, so they differ)."""
    st = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    socks = [socket.socket(socket.AF_INET, st) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of values; 0 for an empty sequence."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- processes -------------------------------------------------------------------------------------
_started: dict[int, subprocess.Popen[bytes]] = {}
_cleanups: list[Callable[[], None]] = []


def _child_setup() -> None:
    """In the child before exec: die with the benchmark (parent-death signal)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start(
    cmd: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cpus: str | None = None,
    cwd: Path | None = None,
    stdout: Any = None,
) -> subprocess.Popen[bytes]:
    """Start a tracked process (optionally pinned with taskset); its output goes to ``log``."""
    argv = list(cmd)
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out: Any = stdout
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - the child owns it until exit
    p = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        cwd=cwd,
        preexec_fn=_child_setup,
    )
    if log is not None:
        out.close()
    _started[p.pid] = p
    return p


def stop(p: subprocess.Popen[bytes] | None, timeout: float = 8.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after ``timeout``."""
    if p is None:
        return
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
    _started.pop(p.pid, None)


def stop_all() -> None:
    """Stop every tracked process (newest first) and run registered cleanups."""
    for p in reversed(list(_started.values())):
        stop(p)
    while _cleanups:
        fn = _cleanups.pop()
        with contextlib.suppress(Exception):
            fn()


def on_cleanup(fn: Callable[[], None]) -> None:
    """Run ``fn`` at exit (after the tracked processes are stopped)."""
    _cleanups.append(fn)


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_exit_handlers() -> None:
    """Turn SIGTERM/SIGINT/SIGHUP into SystemExit so ``finally`` blocks and atexit run."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


atexit.register(stop_all)


@dataclass
class ChildRun:
    """A finished child process with its own CPU time (from wait4) and wall time."""

    rc: int
    cpu: float
    wall: float
    out: bytes


def measure_child(cmd: Sequence[str], capture: bool = True) -> ChildRun:
    """Run ``cmd`` to completion; return its exit code, rusage CPU seconds, wall seconds, stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(list(cmd), stdout=out if capture else subprocess.DEVNULL, stderr=err,
                             preexec_fn=_child_setup)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        data = out.read()
        if p.returncode != 0:
            err.seek(0)
            data += err.read()
    return ChildRun(p.returncode, ru.ru_utime + ru.ru_stime, wall, data)


def run_json_worker(cmd: Sequence[str], log: Path | None = None, cpus: str | None = None,
                    timeout: float = 900.0) -> dict[str, Any]:
    """Run a worker that prints one JSON object on its last stdout line; return that object."""
    argv = list(cmd)
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    res = subprocess.run(argv, capture_output=True, timeout=timeout, preexec_fn=_child_setup, check=False)
    if log is not None:
        log.write_bytes(res.stdout + b"\n--- stderr ---\n" + res.stderr)
    lines = [ln for ln in res.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"worker {' '.join(argv)} failed rc={res.returncode}:\n"
                           f"{res.stderr.decode(errors='replace')[-3000:]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


# --- readiness -------------------------------------------------------------------------------------
def wait_tcp(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until a TCP connect to host:port succeeds."""
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:g}s") from None
            time.sleep(0.05)


def http_get(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> bytes:
    """GET a URL on loopback and return the body."""
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body: bytes = r.read()
        return body


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Block until ``url`` answers 200."""
    end = time.monotonic() + timeout
    while True:
        try:
            http_get(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not answer after {timeout:g}s") from None
            time.sleep(0.1)


# --- network namespace -----------------------------------------------------------------------------
def _ip(*args: str, stdin: str | None = None) -> str:
    res = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


class NetNs:
    """A throw-away network namespace with ``veth_pairs`` veth pairs (2 interfaces each) plus lo."""

    def __init__(self, name: str | None = None, veth_pairs: int = 48) -> None:
        self.name = name or f"rpbench-{os.getpid()}"
        self.veth_pairs = veth_pairs
        self.created = False

    def create(self) -> NetNs:
        if not shutil.which("ip"):
            raise RuntimeError("the 'ip' command (iproute2) is required")
        _ip("netns", "add", self.name)
        self.created = True
        cmds = ["link set lo up"]
        for i in range(self.veth_pairs):
            cmds += [f"link add vethA{i} type veth peer name vethB{i}", f"link set vethA{i} up",
                     f"link set vethB{i} up"]
        _ip("-n", self.name, "-batch", "-", stdin="\n".join(cmds) + "\n")
        return self

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _ip("netns", "pids", self.name).split()]
        except RuntimeError:
            return []

    def delete(self) -> None:
        """Kill what is left inside (only our processes live there) and remove the namespace."""
        if not self.created:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = self.pids()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if not left:
                break
            end = time.monotonic() + 5
            while self.pids() and time.monotonic() < end:
                time.sleep(0.1)
        with contextlib.suppress(RuntimeError):
            _ip("netns", "del", self.name)
        self.created = False


def inside_netns() -> str | None:
    """The benchmark namespace we run in, if this process was re-executed inside one."""
    return os.environ.get(NS_ENV)


def reexec_in_netns(module: str, argv: Sequence[str], veth_pairs: int = 48) -> int:
    """Create a namespace, re-run ``python -m module argv`` inside it, then delete the namespace."""
    install_exit_handlers()
    ns = NetNs(veth_pairs=veth_pairs)
    p: subprocess.Popen[bytes] | None = None
    try:
        ns.create()
        env = {**os.environ, NS_ENV: ns.name, "PYTHONPATH": str(REPO)}
        p = start(["ip", "netns", "exec", ns.name, PY, "-m", module, *argv], env=env, cwd=REPO)
        return p.wait()
    finally:
        stop(p, timeout=30)
        ns.delete()


# --- snmpd -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnmpCreds:
    """The v2c community and v3 authPriv (SHA/AES-128) user configured on the benchmark snmpd."""

    community: str = "rpbench"
    user: str = "rpbench3"
    auth_key: str = "rpbenchauth1"
    priv_key: str = "rpbenchpriv1"


@dataclass
class Snmpd:
    """Net-SNMP snmpd on 127.0.0.1 (started in the current namespace), v2c + v3 authPriv SHA/AES."""

    workdir: Path
    port: int = 0
    cpus: str | None = None
    creds: SnmpCreds = field(default_factory=SnmpCreds)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> int:
        self.workdir.mkdir(parents=True, exist_ok=True)
        persist = self.workdir / "persist"
        persist.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port("udp")
        c = self.creds
        conf = self.workdir / "snmpd.conf"
        conf.write_text(
            f"rocommunity {c.community} 127.0.0.1\n"
            f'createUser {c.user} SHA "{c.auth_key}" AES "{c.priv_key}"\n'
            f"rouser {c.user} priv\n"
            "sysLocation rackpulse-bench\nsysContact bench@localhost\n",
            encoding="utf-8",
        )
        snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
        env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)}
        self.proc = start([snmpd, "-f", "-Lo", "-C", "-c", str(conf), f"udp:127.0.0.1:{self.port}"],
                          log=self.workdir / "snmpd.log", env=env, cpus=self.cpus)
        end = time.monotonic() + timeout
        while True:
            res = subprocess.run(["snmpget", "-v2c", "-c", c.community, "-t", "0.5", "-r", "0", "-Oqv",
                                  f"127.0.0.1:{self.port}", "1.3.6.1.2.1.1.3.0"],
                                 capture_output=True, env={**os.environ, "MIBS": ""}, check=False)
            if res.returncode == 0:
                return self.port
            if self.proc.poll() is not None or time.monotonic() > end:
                log = (self.workdir / "snmpd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"snmpd did not answer on udp:127.0.0.1:{self.port}:\n{log}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def v2_args(self) -> list[str]:
        """net-snmp command-line auth arguments for v2c."""
        return ["-v2c", "-c", self.creds.community]

    def v3_args(self) -> list[str]:
        """net-snmp command-line auth arguments for v3 authPriv SHA/AES."""
        c = self.creds
        return ["-v3", "-l", "authPriv", "-u", c.user, "-a", "SHA", "-A", c.auth_key, "-x", "AES", "-X", c.priv_key]


# --- reporting -------------------------------------------------------------------------------------
def _first_line(cmd: Sequence[str]) -> str:
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine() -> dict[str, str]:
    """Where and when a figure was measured: date, cores, arch, CPU model, kernel, Python."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "git": git_rev(),
        "date": _first_line(["date"]),
        "nproc": _first_line(["nproc"]),
        "arch": platform.machine(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_rev() -> str:
    """The commit benchmarked, marked dirty when agent/ or drivers/ differ from it."""
    rev = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    res = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "agent", "drivers"],
                         capture_output=True, text=True, check=False)
    return rev + (" (agent/ or drivers/ modified)" if res.stdout.strip() else "")


def tool_version(cmd: Sequence[str]) -> str:
    """First line of a tool's version output."""
    return _first_line(cmd)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*r) for r in cells[1:]]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def save_results(name: str, data: dict[str, Any], path: str | None = None) -> Path:
    """Write results as JSON under bench/results/ (or ``path``) and return the path."""
    out = Path(path) if path else REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return out


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory removed afterwards (unless RPBENCH_KEEP is set).

    Tracked processes are stopped first: snmpd, for one, writes its persistent state on exit
    and would otherwise re-create part of the directory after it was removed.
    """
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        for p in reversed(list(_started.values())):
            stop(p)
        if not os.environ.get("RPBENCH_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
