"""Small helpers for the ops tests: free loopback ports and binaries that must exist."""

from __future__ import annotations

from tests.helpers import free_port as free_port
from tests.helpers import require_binary as require_binary

