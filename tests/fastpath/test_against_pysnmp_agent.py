"""FastSession against a pysnmp command responder (the project's simulator) serving every value type.

Here pysnmp is the agent, so its encoder and its USM produce what FastSession must read.
"""

from __future__ import annotations

import pytest

from drivers.errors import DeviceError
from drivers.snmp import wire
from drivers.snmp.fastwire import FastSession
from drivers.snmp.simulator import SimV3User, SnmpSimulator
from drivers.snmp.wire import SnmpTarget

ENT = (1, 3, 6, 1, 4, 1, 318, 1, 1, 26)
VALUES: dict[wire.Oid, tuple[int, object]] = {
    (*ENT, 1, 1): (wire.INTEGER, -2147483648),
    (*ENT, 1, 2): (wire.INTEGER, 2147483647),
    (*ENT, 2, 1): (wire.OCTET_STRING, b"PDU \x00\xff\x80 binary"),
    (*ENT, 2, 2): (wire.OCTET_STRING, b"x" * 300),
    (*ENT, 3, 1): (wire.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 318, 1, 3, 4, 5)),
    (*ENT, 4, 1): (wire.IP_ADDRESS, b"\x0a\x01\x2a\xff"),
    (*ENT, 5, 300): (wire.COUNTER32, 4294967295),
    (*ENT, 6, 128): (wire.GAUGE32, 128),
    (*ENT, 7, 1): (wire.TIMETICKS, 123456789),
    (*ENT, 8, 1): (wire.OPAQUE, b"\x9f\x78\x04\x42\xf6\x00\x00"),
    (*ENT, 9, 16384): (wire.COUNTER64, 18446744073709551615),
    (*ENT, 9, 16385): (wire.COUNTER64, 0),
}
EXPECTED = [wire.VarBind(o, t, v) for o, (t, v) in sorted(VALUES.items())]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "user",
    [None, SimV3User(), SimV3User("u256", "SHA256", "authpass-256", "AES256", "privpass-256"),
     SimV3User("md5", "MD5", "authpass-md5", "AES192", "privpass-192"),
     SimV3User("sha1des", "SHA", "authpass-des", "DES", "privpass-des")],
    ids=["v2c", "sha-aes", "sha256-aes256", "md5-aes192", "sha-des"],
)  # fmt: skip
async def test_every_type_round_trips_through_a_pysnmp_agent(user: SimV3User | None) -> None:
    async with SnmpSimulator(v3_user=user) as sim:
        sim.add_static("other", {(1, 3, 6, 1, 2, 1, 1, 5, 0): (wire.OCTET_STRING, b"first")})
        sim.add_static("pdu", VALUES)
        if user is None:
            target = SnmpTarget("pdu", "127.0.0.1", sim.port, community=sim.community_for("pdu"))
        else:
            keys = {"auth_protocol": user.auth_protocol, "auth_key": user.auth_key,
                    "priv_protocol": user.priv_protocol, "priv_key": user.priv_key}  # fmt: skip
            target = SnmpTarget("pdu", "127.0.0.1", sim.port, version="3", user=user.user, context_name="pdu", **keys)
        session = FastSession(target)
        for reps in (1, 4, 25):
            walked = await session.walk([ENT], reps)
            assert walked[ENT] == EXPECTED
        assert await session.get([vb.oid for vb in EXPECTED]) == EXPECTED
        missing = await session.get([(*ENT, 1, 3), (*ENT, 99, 1)])
        assert missing == [wire.VarBind(o, wire.NO_SUCH_OBJECT, None) for o in ((*ENT, 1, 3), (*ENT, 99, 1))]
        await session.close()


async def test_garbage_fault_from_the_simulator_is_reported() -> None:
    from drivers.simfaults import parse_faults

    async with SnmpSimulator(faults=parse_faults("pdu:garbage")) as sim:
        sim.add_static("pdu", VALUES)
        session = FastSession(SnmpTarget("pdu", "127.0.0.1", sim.port, community=sim.community_for("pdu"),
                                         timeout=0.3, retries=0))  # fmt: skip
        with pytest.raises(DeviceError) as e:
            await session.get([(*ENT, 1, 1)])
        await session.close()
    assert e.value.reason == "timeout" and session.stray_packets == 1  # no request id to blame
