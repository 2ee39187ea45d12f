"""Micro benchmark: CPU seconds per 10k varbinds, fastcodec vs pyasn1, decoding the same packets.

The packets are GETBULK Response messages shaped like an ifTable/ifXTable walk (10 columns x 25
repetitions: counters, Counter64s, names, enums), encoded once by pysnmp/pyasn1. "warm" decodes
the same packets again, as a steady-state poller does (OIDs come from fastcodec's cache); "cold"
clears that cache before every packet. With ``--live`` it also walks a real snmpd's whole MIB
tree with FastSession (v2c and v3 SHA/AES), snmpbulkwalk and, with ``--pysnmp``, pysnmp 7.

    .venv/bin/python -m bench.snmp_codec_micro [--packets 200] [--live [--walks 10] [--pysnmp]]

This is only a micro benchmark; bench/snmp_switch.py is the full comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

from drivers.snmp import fastcodec as fc

COLUMNS = [  # (column OID, pysnmp type, value maker)
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 2), v2c.OctetString, lambda i: b"Ethernet%d" % i),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8), v2c.Integer, lambda i: 1 + i % 2),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10), v2c.Counter32, lambda i: (i * 2654435761) & 0xFFFFFFFF),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 14), v2c.Counter32, lambda i: i % 7),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 16), v2c.Counter32, lambda i: (i * 40503) & 0xFFFFFFFF),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1), v2c.OctetString, lambda i: b"Eth1/%d" % i),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6), v2c.Counter64, lambda i: i * 1_000_000_007),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10), v2c.Counter64, lambda i: i * 998_244_353),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15), v2c.Gauge32, lambda i: 100000),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18), v2c.OctetString, lambda i: b""),
]
REPS = 25


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def build_packets(n: int) -> list[bytes]:
    """``n`` Response messages of len(COLUMNS) x REPS varbinds with increasing interface indexes."""
    out = []
    for p in range(n):
        pdu = v2c.GetResponsePDU()
        v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_request_id(pdu, 1000 + p)
        vbs = []
        for r in range(REPS):
            idx = 1 + p * REPS + r  # 1..n*REPS: multi-octet arcs from 128 on, as on big switches
            vbs += [((*col, idx), typ(make(idx))) for col, typ, make in COLUMNS]
        v2c.apiPDU.set_varbinds(pdu, vbs)
        msg = v2c.Message()
        v2c.apiMessage.set_defaults(msg)
        v2c.apiMessage.set_community(msg, b"public")
        v2c.apiMessage.set_pdu(msg, pdu)
        out.append(bytes(encoder.encode(msg)))
    return out


def v3_packets(packets: list[bytes]) -> tuple[fc.UsmKeys, list[bytes]]:
    """The same PDUs re-wrapped as SNMPv3 authPriv SHA/AES messages."""
    keys = fc.UsmUser("bench", "SHA", "benchauth1", "AES", "benchpriv1").localize(b"\x80\x00\x1f\x88\x04bench")
    out = []
    for i, data in enumerate(packets):
        pdu = fc.decode_message(data).pdu
        out.append(
            fc.encode_v3_message(
                msg_id=pdu.request_id, max_size=65507, flags=fc.FLAG_AUTH | fc.FLAG_PRIV,
                engine_id=keys.engine_id, engine_boots=1, engine_time=1000 + i, user_name=b"bench",
                context_engine_id=keys.engine_id, context_name=b"",
                pdu=fc.encode_pdu(pdu.tag, pdu.request_id, 0, 0, pdu.varbinds), keys=keys, salt=i,
            )
        )  # fmt: skip
    return keys, out


def timed(fn: Callable[[], int], min_seconds: float = 0.5) -> tuple[float, int]:
    """Run ``fn`` (returning varbinds decoded) until at least ``min_seconds`` CPU; (cpu, varbinds)."""
    total_cpu, total_vb = 0.0, 0
    while total_cpu < min_seconds:
        c0 = cpu()
        total_vb += fn()
        total_cpu += cpu() - c0
    return total_cpu, total_vb


def pyasn1_values(data: bytes) -> int:
    msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
    n = 0
    for oid, val in v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(msg)):
        tuple(oid)
        val.asOctets() if isinstance(val, v2c.OctetString) else int(val)
        n += 1
    return n


def codec_rows(n: int) -> list[tuple[str, float, int]]:
    packets = build_packets(n)
    keys, v3 = v3_packets(packets)
    fc._OID_CACHE.clear()

    def fast_cold() -> int:
        k = 0
        for d in packets:
            fc._OID_CACHE.clear()
            k += len(fc.decode_message(d).pdu.varbinds)
        return k

    def fast_warm() -> int:
        return sum(len(fc.decode_message(d).pdu.varbinds) for d in packets)

    def fast_v3() -> int:
        return sum(len(fc.decode_v3_message(d, keys).pdu.varbinds) for d in v3)

    def pyasn1_only() -> int:
        k = 0
        for d in packets[: max(1, n // 10)]:
            decoder.decode(d, asn1Spec=v2c.Message())
            k += len(COLUMNS) * REPS
        return k

    def pyasn1_full() -> int:
        return sum(pyasn1_values(d) for d in packets[: max(1, n // 10)])

    rows = []
    for name, fn in (
        ("fastcodec decode, cold OID cache", fast_cold),
        ("fastcodec decode, warm OID cache", fast_warm),
        ("fastcodec decode v3 authPriv SHA/AES (incl. HMAC + AES)", fast_v3),
        ("pyasn1 decode (asn1Spec=v2c.Message)", pyasn1_only),
        ("pyasn1 decode + values to Python", pyasn1_full),
    ):
        c, k = timed(fn)
        rows.append((name, c, k))
    return rows


async def _fast_walks(target: Any, base: tuple[int, ...], walks: int) -> tuple[float, int]:
    from drivers.snmp.fastwire import FastSession

    session = FastSession(target)
    await session.walk([base], 25)  # warm-up: socket, v3 discovery, OID cache
    c0, n = cpu(), 0
    for _ in range(walks):
        n += sum(len(v) for v in (await session.walk([base], 25)).values())
    used = cpu() - c0
    await session.close()
    return used, n


async def _pysnmp_walks(port: int, auth: Any, base: str, walks: int) -> tuple[float, int]:
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
    )

    engine = SnmpEngine()
    target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=5, retries=1)
    c0, n = cpu(), 0
    for _ in range(walks):
        async for _e, _s, _i, vbs in bulk_walk_cmd(engine, auth, target, ContextData(), 0, 25,
                                                   ObjectType(ObjectIdentity(base)), lexicographicMode=False,
                                                   lookupMib=False):  # fmt: skip
            n += len(vbs)
    used = cpu() - c0
    engine.close_dispatcher()
    return used, n


def live_rows(walks: int, with_pysnmp: bool) -> list[tuple[str, float, int, float]]:
    """(label, client CPU, varbinds, snmpd CPU) walking the whole tree of a local snmpd."""
    from bench import lib
    from drivers.snmp.wire import SnmpTarget

    rows: list[tuple[str, float, int, float]] = []
    base = (1, 3, 6, 1)
    with lib.workdir("rp-codec-micro-") as wd:
        agent = lib.Snmpd(wd)
        port = agent.start()
        assert agent.proc is not None
        pid = agent.proc.pid
        c = agent.creds
        try:
            targets = {
                "v2c": SnmpTarget("bench", "127.0.0.1", port, community=c.community, timeout=5),
                "v3 SHA/AES": SnmpTarget("bench", "127.0.0.1", port, version="3", user=c.user, auth_protocol="SHA",
                                         auth_key=c.auth_key, priv_protocol="AES", priv_key=c.priv_key, timeout=5),
            }  # fmt: skip
            netsnmp = {"v2c": agent.v2_args(), "v3 SHA/AES": agent.v3_args()}
            for label, target in targets.items():
                s0 = lib.proc_cpu(pid)
                used, n = asyncio.run(_fast_walks(target, base, walks))
                rows.append((f"FastSession walk {label}", used, n, lib.proc_cpu(pid) - s0))
                s0, used, n = lib.proc_cpu(pid), 0.0, 0
                for _ in range(walks):
                    run = lib.measure_child(["snmpbulkwalk", "-Cr25", "-On", *netsnmp[label],
                                             f"127.0.0.1:{port}", ".1.3.6.1"])  # fmt: skip
                    used += run.cpu
                    n += run.out.count(b"\n")
                rows.append((f"snmpbulkwalk -Cr25 {label} (incl. process start)", used, n, lib.proc_cpu(pid) - s0))
                if with_pysnmp:
                    from pysnmp.hlapi.v3arch.asyncio import (
                        CommunityData,
                        UsmUserData,
                        usmAesCfb128Protocol,
                        usmHMACSHAAuthProtocol,
                    )

                    auth = (
                        CommunityData(c.community, mpModel=1)
                        if label == "v2c"
                        else UsmUserData(c.user, c.auth_key, c.priv_key, authProtocol=usmHMACSHAAuthProtocol,
                                         privProtocol=usmAesCfb128Protocol)
                    )  # fmt: skip
                    s0 = lib.proc_cpu(pid)
                    used, n = asyncio.run(_pysnmp_walks(port, auth, ".1.3.6.1", max(1, walks // 5)))
                    rows.append((f"pysnmp 7 bulk_walk_cmd {label}", used, n, lib.proc_cpu(pid) - s0))
        finally:
            agent.stop()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packets", type=int, default=200, help="distinct packets to decode (default 200)")
    p.add_argument("--live", action="store_true", help="also walk a local snmpd (needs snmpd, snmpbulkwalk)")
    p.add_argument("--walks", type=int, default=10, help="whole-tree walks per client in --live mode")
    p.add_argument("--pysnmp", action="store_true", help="with --live, also walk with pysnmp 7")
    a = p.parse_args()
    os.environ.setdefault("MIBS", "")

    rows = codec_rows(a.packets)
    base = next(r for r in rows if r[0].startswith("pyasn1 decode + values"))
    ref = base[1] / base[2]
    print(f"decode: {a.packets} packets of {len(COLUMNS) * REPS} varbinds, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'decoder':58} {'varbinds':>9} {'CPU s':>7} {'CPU-s/10k vb':>13} {'vs pyasn1':>9}")
    for name, c, k in rows:
        print(f"{name:58} {k:9d} {c:7.3f} {c / k * 1e4:13.4f} {ref / (c / k):8.1f}x")
    if a.live:
        print("\nlive: whole-tree walks of a local snmpd, max-repetitions 25")
        print(f"{'client':58} {'varbinds':>9} {'CPU s':>7} {'CPU-s/10k vb':>13} {'snmpd/10k':>9}")
        for name, c, k, s in live_rows(a.walks, a.pysnmp):
            print(f"{name:58} {k:9d} {c:7.3f} {c / k * 1e4:13.4f} {s / k * 1e4:9.4f}")


if __name__ == "__main__":
    main()
