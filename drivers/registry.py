"""The driver registry: every driver, built-in or third-party, is found through entry points."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from drivers.base import DriverPlugin

GROUP = "rackpulse.drivers"


@cache
def plugins() -> dict[str, DriverPlugin[Any]]:
    """Load every plug-in registered in the ``rackpulse.drivers`` entry-point group."""
    found: dict[str, DriverPlugin[Any]] = {}
    for ep in entry_points(group=GROUP):
        plugin = ep.load()
        if not isinstance(plugin, DriverPlugin):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a DriverPlugin")
        found[ep.name] = plugin
    return found
