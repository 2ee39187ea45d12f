"""Fixtures for the SNMP tests: a frozen clock, drivers pointed at simulators, and a real snmpd."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.base import PollSettings
from drivers.profiles import ProfileLibrary
from drivers.snmp import PLUGIN
from drivers.snmp.config import SnmpDeviceConfig
from drivers.snmp.driver import SnmpDriver
from drivers.snmp.pysnmp_wire import close_shared_engines
from drivers.snmp.simulator import SimV3User, SnmpSimulator
from tests.helpers import free_udp_port, require_binary, stop_process

V3 = SimV3User(user="simuser", auth_protocol="SHA", auth_key="auth-secret-1", priv_protocol="AES",
               priv_key="priv-secret-1")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest_asyncio.fixture(autouse=True)
async def _close_pysnmp_engines() -> AsyncIterator[None]:
    """Each test runs on its own loop; close that loop's shared pysnmp engine afterwards."""
    yield
    await close_shared_engines()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def sim(clock: FakeClock) -> AsyncIterator[SnmpSimulator]:
    """A started simulator on a free port with a frozen clock; tests add devices to it."""
    s = SnmpSimulator(v3_user=V3, clock=clock)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


MakeDriver = Callable[..., SnmpDriver]


@pytest_asyncio.fixture
async def make_driver(tmp_path: Path) -> AsyncIterator[MakeDriver]:
    """Build drivers for simulated devices (v2c community or v3 user/context); closed afterwards."""
    made: list[SnmpDriver] = []

    def factory(sim: SnmpSimulator, name: str, profiles: list[str], version: str = "2c",
                timeout: float = 2.0, library: ProfileLibrary | None = None, **extra: Any) -> SnmpDriver:
        entry: dict[str, Any] = {"name": name, "driver": "snmp", "host": "127.0.0.1", "port": sim.port,
                                 "profiles": profiles, "version": version, **extra}
        if version == "3":
            (tmp_path / f"{name}.auth").write_text(V3.auth_key + "\n")
            (tmp_path / f"{name}.priv").write_text(V3.priv_key + "\n")
            entry["v3"] = {"user": V3.user, "auth_protocol": V3.auth_protocol,
                           "auth_key_file": str(tmp_path / f"{name}.auth"),
                           "priv_protocol": V3.priv_protocol, "priv_key_file": str(tmp_path / f"{name}.priv"),
                           "context_name": name}
        else:
            (tmp_path / f"{name}.community").write_text(sim.community_for(name) + "\n")
            entry["community_file"] = str(tmp_path / f"{name}.community")
        cfg = SnmpDeviceConfig.model_validate(entry)
        drv = PLUGIN.create(cfg, library or ProfileLibrary(), PollSettings(interval=10, timeout=timeout, retries=0))
        assert isinstance(drv, SnmpDriver)
        made.append(drv)
        return drv

    yield factory
    for d in made:
        await d.close()


# -- a real Net-SNMP agent ------------------------------------------------------------------------

SNMPD_USER = "rpuser"
SNMPD_AUTH = "authpass-123"
SNMPD_PRIV = "privpass-123"


@dataclass
class Snmpd:
    """A running snmpd on 127.0.0.1 and the tools to read it independently of rackpulse."""

    port: int
    dir: Path

    def tool(self, cmd: str, *args: str) -> str:
        """Run a Net-SNMP command-line tool (v2c, numeric OIDs) and return its stdout."""
        out = subprocess.run(
            [require_binary(cmd), "-v2c", "-c", "public", "-On", "-t", "2", "-r", "1", f"127.0.0.1:{self.port}",
             *args], capture_output=True, text=True, timeout=20, env={**os.environ, "MIBS": ""}, check=True)
        return out.stdout


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd with its own config: v2c community 'public' and a v3 authPriv SHA/AES user."""
    exe = require_binary("snmpd")
    require_binary("snmpget")
    d = tmp_path_factory.mktemp("snmpd")
    conf = d / "snmpd.conf"
    conf.write_text(
        "rocommunity public 127.0.0.1\n"
        f"createUser {SNMPD_USER} SHA {SNMPD_AUTH} AES {SNMPD_PRIV}\n"
        f"rouser {SNMPD_USER} priv\n"
        "sysDescr rackpulse test snmpd\n"
        "sysObjectID .1.3.6.1.4.1.8072.3.2.10\n"
    )
    port = free_udp_port()
    log = open(d / "snmpd.log", "wb")  # noqa: SIM115 - closed at teardown
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(d / "persist")}
    proc = subprocess.Popen([exe, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(d / "snmpd.pid"), "-I", "-smux",
                             f"udp:127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=env)
    agent = Snmpd(port, d)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"snmpd exited: {(d / 'snmpd.log').read_text(errors='replace')}"
            try:
                agent.tool("snmpget", "1.3.6.1.2.1.1.3.0")
                break
            except subprocess.CalledProcessError:
                assert time.monotonic() < deadline, "snmpd did not answer within 15 s"
                time.sleep(0.1)
        yield agent
    finally:
        stop_process(proc, 10)
        log.close()
