"""The on-disk store-and-forward spool for MQTT telemetry (SQLite in ``state_dir``).

Every telemetry message is committed here before it is sent and deleted once the broker has
acknowledged it, so nothing is lost while the broker is down or when the process is killed
(delivery is at-least-once; consumers drop duplicates by ``seq``). The spool is bounded by total
message bytes and by age: when a bound is hit the oldest messages go first and each drop is counted
by reason.

A :class:`Spool` is synchronous and not thread-safe: the publisher drives it from one dedicated
thread so that disk writes never stall the event loop. One :meth:`Spool.commit` call is one
transaction: it stores new messages together with their sequence numbers, deletes acknowledged
ones and applies the bounds.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.seqstore import SeqStore, connect, db_path

_DDL = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""
# AUTOINCREMENT: ids never restart after the table empties, so a sender's cursor stays valid.
# Small columns come first so the bound checks never read payload overflow pages.

_SCAN = 512        # rows examined per step when dropping for a bound
_IN_CHUNK = 500    # ids per DELETE ... IN (...) statement
DROP_REASONS = ("age", "bytes")


@dataclass(slots=True)
class Entry:
    """A message waiting to be spooled; ``render(seq)`` builds its payload once seq is known."""

    device: str
    topic: str
    created: float
    render: Callable[[int], bytes]


@dataclass(slots=True, frozen=True)
class Row:
    """A spooled message, as the sender reads it back."""

    id: int
    device: str
    seq: int
    topic: str
    payload: bytes


@dataclass(slots=True)
class CommitResult:
    """What one :meth:`Spool.commit` did."""

    inserted: int = 0
    deleted: int = 0
    acked_ids: list[int] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)


class Spool:
    """A bounded FIFO of MQTT messages in SQLite, plus the per-device sequence numbers."""

    def __init__(
        self,
        state_dir: str | Path,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = db_path(state_dir)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self._lock = _lock(self.path)
        try:
            self.conn = connect(self.path)
        except OSError:
            os.close(self._lock)
            raise
        try:
            self.conn.execute(_DDL)
            self.seqs = SeqStore(conn=self.conn)
            count, size = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM spool").fetchone()
        except sqlite3.Error as e:
            self.conn.close()
            os.close(self._lock)
            raise OSError(f"cannot use the MQTT spool database {self.path}: {e}") from None
        self.count: int = count
        self.bytes: int = size
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)

    def commit(self, entries: Sequence[Entry], acked: Iterable[int] = (), now: float | None = None) -> CommitResult:
        """In one transaction: store ``entries`` with fresh seqs, delete ``acked`` ids, apply bounds.

        On any error the transaction is rolled back, no seq is consumed and the error propagates.
        """
        now = self.clock() if now is None else now
        acked = list(acked)
        res = CommitResult()
        count, size = self.count, self.bytes
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            for i in range(0, len(acked), _IN_CHUNK):
                chunk = acked[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for rid, sz in c.execute(f"DELETE FROM spool WHERE id IN ({marks}) RETURNING id, size", chunk):
                    res.acked_ids.append(rid)
                    count -= 1
                    size -= sz
            res.deleted = len(res.acked_ids)
            rows = []
            for e in entries:
                seq = self.seqs.next(e.device)
                try:
                    payload = e.render(seq)
                except Exception as err:  # one bad message must not wedge the whole spool
                    res.invalid.append(f"{e.device}: {type(err).__name__}: {err}")
                    continue
                sz = len(payload) + len(e.topic)
                rows.append((e.created, sz, e.device, seq, e.topic, payload))
                count += 1
                size += sz
            if rows:
                c.executemany(
                    "INSERT INTO spool(created, size, device, seq, topic, payload) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self.seqs.write(c)
            res.inserted = len(rows)
            if count:
                n, sz = self._drop_oldest(lambda created, _sz: created < now - self.max_age)
                count, size = count - n, size - sz
                if n:
                    res.dropped["age"] = n
            if size > self.max_bytes:
                excess = size - self.max_bytes
                acc = 0

                def over(_created: float, sz: int) -> bool:
                    nonlocal acc
                    if acc >= excess:
                        return False
                    acc += sz
                    return True

                n, sz = self._drop_oldest(over)
                count, size = count - n, size - sz
                if n:
                    res.dropped["bytes"] = n
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            self.seqs.rollback()
            raise
        self.seqs.committed()
        self.count, self.bytes = count, size
        for reason, n in res.dropped.items():
            self.dropped[reason] += n
        return res

    def _drop_oldest(self, doomed: Callable[[float, int], bool]) -> tuple[int, int]:
        """Delete the longest prefix (in id order) of rows for which ``doomed(created, size)``."""
        n = total = 0
        last_id = 0
        while True:
            batch = self.conn.execute(
                "SELECT id, created, size FROM spool WHERE id > ? ORDER BY id LIMIT ?", (last_id, _SCAN)
            ).fetchall()
            stop = False
            for rid, created, sz in batch:
                if not doomed(created, sz):
                    stop = True
                    break
                last_id = rid
                n += 1
                total += sz
            if stop or len(batch) < _SCAN:
                break
        if n:
            self.conn.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
        return n, total

    def fetch(self, after_id: int, limit: int) -> list[Row]:
        """Up to ``limit`` messages with id greater than ``after_id``, oldest first."""
        cur = self.conn.execute(
            "SELECT id, device, seq, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [Row(rid, dev, seq, topic, bytes(payload)) for rid, dev, seq, topic, payload in cur]

    def oldest_created(self) -> float | None:
        """When the oldest spooled message was created (None if empty)."""
        row = self.conn.execute("SELECT created FROM spool ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        """Close the database; committed messages stay for the next start."""
        self.conn.close()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def _lock(db: Path) -> int:
    """Hold an exclusive lock next to the database: two writers would hand out the same seqs.

    The kernel drops the lock when the process dies, so ``kill -9`` never leaves it stale.
    """
    path = db.with_suffix(".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise OSError(f"cannot open the MQTT spool database {db}: {e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OSError(
            f"the MQTT spool {db} is in use by another rackpulse publisher; "
            "each agent needs its own state_dir"
        ) from None
    return fd
