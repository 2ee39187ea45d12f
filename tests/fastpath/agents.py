"""A real Net-SNMP snmpd for the live tests, and helpers to read the same tables with other tools.

snmpd runs on a free 127.0.0.1 UDP port with its own config and persistent directory (so it
creates its own engine id and users), and ``MIBS=`` empty so nothing depends on installed MIBs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.snmp import fastcodec as fc
from drivers.snmp import wire
from drivers.snmp.wire import Oid, VarBind, format_oid, parse_oid
from tests.helpers import free_udp_port, require_binary, stop_process

COMMUNITY = "fastpath"
# name -> (auth protocol, auth key, priv protocol, priv key), with snmpd's spelling derived below.
USERS: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "shaaes": ("SHA", "authpass-sha1", "AES", "privpass-aes128"),
    "sha256aes256": ("SHA256", "authpass-sha256", "AES256", "privpass-aes256"),
    "sha1aes256": ("SHA", "authpass-sha1b", "AES256", "privpass-aes256b"),  # needs key extension
    "md5des": ("MD5", "authpass-md5", "DES", "privpass-des"),
    "sha512aes192": ("SHA512", "authpass-sha512", "AES192", "privpass-aes192"),
    "authonly": ("SHA256", "authpass-only", None, None),
    "noauth": (None, None, None, None),
}
_NETSNMP = {"SHA256": "SHA-256", "SHA512": "SHA-512", "AES256": "AES-256", "AES192": "AES-192"}


def netsnmp_name(proto: str) -> str:
    return _NETSNMP.get(proto, proto)


@dataclass
class Snmpd:
    """A running snmpd: where it listens and where it logs."""

    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def target(self, **kw: Any) -> wire.SnmpTarget:
        kw.setdefault("community", COMMUNITY)
        kw.setdefault("timeout", 1.0)
        return wire.SnmpTarget("snmpd", "127.0.0.1", self.port, **kw)

    def v3_target(self, user: str, **kw: Any) -> wire.SnmpTarget:
        auth, akey, priv, pkey = USERS[user]
        return self.target(version="3", user=user, auth_protocol=auth, auth_key=akey, priv_protocol=priv,
                           priv_key=pkey, **kw)  # fmt: skip


def _config(tmp: Path) -> str:
    lines = [f"[snmp] persistentDir {tmp / 'persist'}", f"rocommunity {COMMUNITY} 127.0.0.1"]
    for user, (auth, akey, priv, pkey) in USERS.items():
        line = f"createUser {user}"
        if auth:
            line += f" {netsnmp_name(auth)} {akey}"
        if priv:
            line += f" {netsnmp_name(priv)} {pkey}"
        lines += [line, f"rouser {user} {'priv' if priv else 'auth' if auth else 'noauth'}"]
    return "\n".join(lines) + "\n"


def _answers(port: int) -> bool:
    req = fc.encode_message(fc.V2C, COMMUNITY.encode(), fc.encode_pdu(fc.GET_REQUEST, 1, 0, 0, []))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(req, ("127.0.0.1", port))
        try:
            return bool(s.recv(65535))
        except OSError:
            return False


@contextmanager
def running_snmpd(tmp: Path) -> Iterator[Snmpd]:
    """Start snmpd in the foreground on a free port; stop it on exit. Fails loudly if missing."""
    exe = require_binary("snmpd")
    (tmp / "persist").mkdir(parents=True, exist_ok=True)
    conf = tmp / "snmpd.conf"
    conf.write_text(_config(tmp), encoding="utf-8")
    log = tmp / "snmpd.log"
    port = free_udp_port()
    env = {**os.environ, "MIBS": "", "SNMPCONFPATH": str(tmp)}
    proc = subprocess.Popen([exe, "-f", "-C", "-c", str(conf), "-Lf", str(log), f"udp:127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert proc.poll() is None, f"snmpd exited: {log.read_text(errors='replace') if log.exists() else ''}"
            assert time.monotonic() < deadline, "snmpd did not answer within 10 s"
        yield Snmpd(port, log, proc)
    finally:
        stop_process(proc, 5)


_LINE = re.compile(r"^(\.[0-9.]+) = (.*)$")


def snmpbulkwalk(args: Sequence[str], base: Oid) -> list[VarBind]:
    """Run snmpbulkwalk with numeric output and parse it into VarBinds (ifTable/ifXTable types)."""
    exe = require_binary("snmpbulkwalk")
    out = subprocess.run([exe, "-On", "-Ox", "-Oe", "-Cr25", *args, format_oid(base)], env={**os.environ, "MIBS": ""},
                         capture_output=True, text=True, timeout=30, check=True).stdout  # fmt: skip
    # Long hex strings continue on the next line; glue continuation lines to their varbind.
    entries: list[str] = []
    for line in out.splitlines():
        if _LINE.match(line):
            entries.append(line)
        elif entries:
            entries[-1] += " " + line.strip()
    return [_parse(e) for e in entries]


def _parse(line: str) -> VarBind:
    m = _LINE.match(line)
    assert m, line
    oid, text = parse_oid(m.group(1)), m.group(2).strip()
    if text == '""':
        return VarBind(oid, wire.OCTET_STRING, b"")
    kind, _, value = text.partition(": ")
    value = value.strip()
    if kind == "Hex-STRING":
        return VarBind(oid, wire.OCTET_STRING, bytes.fromhex(value))
    if kind == "STRING":
        return VarBind(oid, wire.OCTET_STRING, value.strip('"').encode())
    if kind == "INTEGER":
        return VarBind(oid, wire.INTEGER, int(value))
    if kind == "Timeticks":
        return VarBind(oid, wire.TIMETICKS, int(value[1 : value.index(")")]))
    if kind == "OID":
        return VarBind(oid, wire.OBJECT_IDENTIFIER, parse_oid(value))
    if kind == "IpAddress":
        return VarBind(oid, wire.IP_ADDRESS, bytes(int(p) for p in value.split(".")))
    tags = {"Counter32": wire.COUNTER32, "Gauge32": wire.GAUGE32, "Counter64": wire.COUNTER64}
    assert kind in tags, f"unexpected snmpbulkwalk output: {line}"
    return VarBind(oid, tags[kind], int(value))
