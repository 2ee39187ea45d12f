"""The SQLite spool and the seq store on their own: bounds, ordering, atomicity, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.seqstore import SeqStore, db_path
from agent.spool import Entry, Spool


def entry(device: str, created: float = 1000.0, size: int = 100) -> Entry:
    return Entry(device, f"t/{device}", created, lambda seq: f"{device}:{seq}:".encode().ljust(size, b"x"))


def test_seq_is_assigned_in_the_insert_transaction_and_survives_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=1e9)
    s.commit([entry("a"), entry("b"), entry("a")], now=1000)
    rows = s.fetch(0, 10)
    assert [(r.device, r.seq) for r in rows] == [("a", 1), ("b", 1), ("a", 2)]
    assert rows[2].payload.startswith(b"a:2:")
    s.close()
    s2 = Spool(tmp_path, max_bytes=10**6, max_age=1e9)
    assert (s2.count, s2.bytes) == (3, sum(len(r.payload) + len(r.topic) for r in rows))
    s2.commit([entry("a")], acked=[rows[0].id], now=1000)
    assert [(r.device, r.seq) for r in s2.fetch(0, 10)] == [("b", 1), ("a", 2), ("a", 3)]
    assert SeqStore(tmp_path).last("a") == 3


def test_failed_transaction_consumes_no_seq(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=1e9)
    s.commit([entry("a")], now=1000)

    class Boom(BaseException):
        pass

    def explode(seq: int) -> bytes:
        raise Boom

    with pytest.raises(Boom):
        s.commit([entry("a"), Entry("a", "t/a", 1000, explode)], now=1000)
    assert s.count == 1 and s.seqs.last("a") == 1
    s.commit([entry("a")], now=1000)
    assert [r.seq for r in s.fetch(0, 10)] == [1, 2]


def test_a_payload_that_cannot_be_built_is_reported_not_wedging(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=1e9)

    def broken(seq: int) -> bytes:
        raise ValueError("bad reading")

    res = s.commit([Entry("a", "t/a", 1000, broken), entry("b")], now=1000)
    assert res.inserted == 1 and res.invalid == ["a: ValueError: bad reading"]


def test_max_bytes_drops_oldest_and_counts(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1000, max_age=1e9)
    for i in range(20):
        s.commit([entry(f"d{i % 3}")], now=1000)  # 103 bytes each (100 payload + 3 topic)
    assert s.bytes <= 1000
    assert s.count == 9
    assert s.dropped == {"age": 0, "bytes": 11}
    kept = s.fetch(0, 100)
    assert kept[0].payload[:5] == b"d2:4:"  # the 12th message is the oldest kept
    assert s.bytes == sum(len(r.payload) + len(r.topic) for r in kept)


def test_max_age_drops_expired_even_when_idle(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=60)
    s.commit([entry("a", created=1000 + i) for i in range(10)], now=1000)
    res = s.commit([], now=1065.5)  # messages created before 1005.5 are older than 60 s
    assert res.dropped == {"age": 6}
    assert s.count == 4 and s.dropped["age"] == 6
    assert [r.seq for r in s.fetch(0, 100)] == [7, 8, 9, 10]


def test_ids_never_restart_after_the_spool_empties(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=1e9)
    s.commit([entry("a")], now=1000)
    first = s.fetch(0, 1)[0].id
    s.commit([], acked=[first], now=1000)
    assert s.count == 0
    s.commit([entry("a")], now=1000)
    assert s.fetch(first, 1)[0].id > first


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=10**6, max_age=1e9)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db_path(tmp_path).exists()


def test_seqstore_standalone(tmp_path: Path) -> None:
    st = SeqStore(tmp_path / "state")
    assert [st.next("x"), st.next("x"), st.next("y")] == [1, 2, 1]
    st.save()
    st.next("x")
    st.rollback()  # unsaved numbers are forgotten
    assert st.last("x") == 2
    st.close()
    assert SeqStore(tmp_path / "state").next("x") == 3


def test_unusable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(OSError, match=r"cannot open the MQTT spool database .*file"):
        Spool(blocker / "state", max_bytes=1000, max_age=10)
    bad = tmp_path / "bad"
    bad.mkdir()
    db_path(bad).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OSError, match="MQTT spool database"):
        Spool(bad, max_bytes=1000, max_age=10)


def test_one_writer_per_state_dir(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1000, max_age=10)
    with pytest.raises(OSError, match="in use by another rackpulse publisher"):
        Spool(tmp_path, max_bytes=1000, max_age=10)
    s.close()
    Spool(tmp_path, max_bytes=1000, max_age=10).close()
