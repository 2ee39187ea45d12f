"""sd_notify(3) over a plain AF_UNIX datagram socket: readiness, status, reload, stop and watchdog.

No dependency on libsystemd. Every method is a cheap non-blocking ``sendto``; when
``NOTIFY_SOCKET`` is unset (not started by systemd) every method is a no-op that returns False.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(raw: str) -> str | bytes | None:
    """The sendto() address for a NOTIFY_SOCKET value, or None if we cannot use it."""
    if raw.startswith("@"):
        # Linux abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


def _one_line(text: str) -> str:
    """Newlines separate assignments in the protocol, so a value must not contain one."""
    return " ".join(text.splitlines())


class Notifier:
    """Talks to the service manager named by ``NOTIFY_SOCKET``.

    ``env`` and ``pid`` default to the process's own; tests pass their own. Sending never
    raises: a manager that went away must not take the daemon down with it.
    """

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._pid = os.getpid() if pid is None else pid
        raw = self._env.get("NOTIFY_SOCKET", "")
        self._addr = _address(raw) if raw else None
        if raw and self._addr is None:
            log.warning("NOTIFY_SOCKET=%r is not a path or @abstract socket; not notifying", raw)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when a notification socket is configured."""
        return self._addr is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True if the manager got it."""
        if self._addr is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never stall the event loop on a full manager queue; the next ping retries.
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._addr)
        except OSError as e:
            if not self._warned:
                log.warning("sd_notify to %s failed: %s", self._env.get("NOTIFY_SOCKET"), e)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) finished: READY=1, with an optional status line."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """Set the free-form status shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def reloading(self, status: str | None = None) -> bool:
        """A reload began. systemd >= 253 wants MONOTONIC_USEC with RELOADING=1; call ready() after."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        lines = ["RELOADING=1", f"MONOTONIC_USEC={usec}"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown began: STOPPING=1."""
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (EXTEND_TIMEOUT_USEC)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog_usec(self) -> int | None:
        """WATCHDOG_USEC if the watchdog is enabled for this very process, else None."""
        if self._addr is None:
            return None
        wpid = self._env.get("WATCHDOG_PID")
        if wpid is not None and wpid.strip() != str(self._pid):
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec if usec > 0 else None

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises), or None."""
        usec = self.watchdog_usec()
        return None if usec is None else usec / 2_000_000

    def ping(self) -> bool:
        """WATCHDOG=1. Call only while the daemon is healthy, so a stuck scheduler gets restarted."""
        if self.watchdog_usec() is None:
            return False
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket (it is reopened on the next send)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
