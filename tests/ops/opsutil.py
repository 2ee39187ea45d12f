"""Small helpers for the ops tests: free loopback ports and binaries that must exist."""

from __future__ import annotations

import os
import shutil
import socket


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    """Path of a binary the test needs; fails loudly (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/sbin", "/usr/bin"):
            if os.access(f"{d}/{name}", os.X_OK):
                path = f"{d}/{name}"
                break
    assert path, f"{name} is required for this test; ./tests/run.sh installs it (Debian package)"
    return path
