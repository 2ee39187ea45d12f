"""Per-device telemetry sequence numbers that survive restarts, ``kill -9`` and power loss.

The numbers live in the spool database (``state_dir/mqtt-spool.sqlite3``), and the spool writes a
message and the new sequence number in one transaction, so a committed message always has a
committed seq and a restart continues after it. Numbers handed out in a transaction that was then
rolled back are given again; they were never published.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_NAME = "mqtt-spool.sqlite3"

SEQ_DDL = "CREATE TABLE IF NOT EXISTS seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID"


def db_path(state_dir: str | Path) -> Path:
    """Where the spool and sequence database lives inside ``state_dir``."""
    return Path(state_dir) / DB_NAME


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the spool database in WAL mode with synchronous=FULL.

    WAL keeps committed data across a killed process with any sync level; FULL also keeps it across
    power loss, so a seq never goes backwards after a reboot (consumers drop duplicates by seq).
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_size_limit=8388608")  # let the WAL shrink after a checkpoint
        conn.execute(SEQ_DDL)
    except (OSError, sqlite3.Error) as e:
        raise OSError(f"cannot open the MQTT spool database {p}: {e}") from None
    return conn


class SeqStore:
    """Hands out strictly increasing per-device sequence numbers, persisted in the spool database.

    ``next()`` only changes memory; the caller persists every pending number with :meth:`write`
    inside the transaction that stores the messages carrying them (or calls :meth:`save`), then
    calls :meth:`committed`, or :meth:`rollback` if that transaction failed.
    """

    def __init__(self, state_dir: str | Path | None = None, *, conn: sqlite3.Connection | None = None):
        if conn is None:
            if state_dir is None:
                raise ValueError("SeqStore needs a state_dir or a connection")
            conn = connect(db_path(state_dir))
            self._own = True
        else:
            conn.execute(SEQ_DDL)
            self._own = False
        self._conn = conn
        self._seq: dict[str, int] = dict(conn.execute("SELECT device, seq FROM seq").fetchall())
        self._dirty: dict[str, int] = {}

    def last(self, device: str) -> int:
        """The last number handed out for ``device`` (0 if none)."""
        return self._seq.get(device, 0)

    def next(self, device: str) -> int:
        """The next number for ``device``; remember to persist it."""
        n = self._seq.get(device, 0) + 1
        self._seq[device] = n
        self._dirty[device] = n
        return n

    def rollback(self) -> None:
        """Forget numbers not yet persisted: reload the committed ones after a failed transaction."""
        self._seq = dict(self._conn.execute("SELECT device, seq FROM seq").fetchall())
        self._dirty.clear()

    def write(self, conn: sqlite3.Connection | None = None) -> None:
        """Persist the pending numbers using ``conn`` (inside the caller's open transaction)."""
        if not self._dirty:
            return
        (conn or self._conn).executemany(
            "INSERT INTO seq(device, seq) VALUES(?, ?) "
            "ON CONFLICT(device) DO UPDATE SET seq=max(seq, excluded.seq)",
            list(self._dirty.items()),
        )

    def committed(self) -> None:
        """The transaction that ran :meth:`write` committed."""
        self._dirty.clear()

    def save(self) -> None:
        """Persist the pending numbers in a transaction of their own."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self.write()
        self.committed()

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._own:
            self._conn.close()
