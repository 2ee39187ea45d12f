"""The metric catalog: the single source of canonical metric names, kinds, units and labels.

Profiles may only name metrics listed here; the Prometheus name is ``rackpulse_`` + name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How consumers should treat a series."""

    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One canonical metric: its name, kind, help text and the labels it carries."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


PREFIX = "rackpulse_"

_G, _C = Kind.GAUGE, Kind.COUNTER
_INLET = ("inlet", "phase")
_OUTLET = ("outlet", "outlet_name")
_PORT = ("port", "if_index")

_DEFS = [
    # inlet / phase
    MetricDef("inlet_voltage_volts", _G, "Inlet or phase RMS voltage.", _INLET),
    MetricDef("inlet_current_amperes", _G, "Inlet or phase RMS current.", _INLET),
    MetricDef("inlet_power_watts", _G, "Inlet or phase active power.", _INLET),
    MetricDef("inlet_apparent_power_voltamperes", _G, "Inlet or phase apparent power.", _INLET),
    MetricDef("inlet_power_factor_ratio", _G, "Inlet or phase power factor.", _INLET),
    MetricDef("inlet_frequency_hertz", _G, "Inlet line frequency.", _INLET),
    MetricDef("inlet_energy_joules_total", _C, "Inlet active energy since the last reset.", _INLET),
    # outlet
    MetricDef("outlet_current_amperes", _G, "Outlet RMS current.", _OUTLET),
    MetricDef("outlet_power_watts", _G, "Outlet active power.", _OUTLET),
    MetricDef("outlet_energy_joules_total", _C, "Outlet active energy since the last reset.", _OUTLET),
    MetricDef("outlet_on", _G, "1 if the outlet relay is on.", _OUTLET),
    # environment
    MetricDef("sensor_temperature_celsius", _G, "Temperature sensor reading.", ("sensor",)),
    MetricDef("sensor_humidity_ratio", _G, "Relative humidity as a ratio (0-1).", ("sensor",)),
    # switch port
    MetricDef("port_receive_bytes_total", _C, "Octets received on the port.", _PORT),
    MetricDef("port_transmit_bytes_total", _C, "Octets transmitted on the port.", _PORT),
    MetricDef("port_receive_packets_total", _C, "Unicast packets received on the port.", _PORT),
    MetricDef("port_transmit_packets_total", _C, "Unicast packets transmitted on the port.", _PORT),
    MetricDef("port_receive_errors_total", _C, "Inbound packets with errors.", _PORT),
    MetricDef("port_transmit_errors_total", _C, "Outbound packets with errors.", _PORT),
    MetricDef("port_receive_discards_total", _C, "Inbound packets discarded.", _PORT),
    MetricDef("port_transmit_discards_total", _C, "Outbound packets discarded.", _PORT),
    MetricDef("port_up", _G, "1 if the port's operational status is up.", _PORT),
    MetricDef("port_admin_up", _G, "1 if the port is administratively up.", _PORT),
    MetricDef("port_speed_bytes", _G, "Port speed in bytes per second.", _PORT),
    # switch health
    MetricDef("fan_speed_rpm", _G, "Fan speed in revolutions per minute.", ("sensor",)),
    MetricDef("psu_power_watts", _G, "Power supply output or input power.", ("sensor",)),
    MetricDef("optic_rx_power_dbm", _G, "Optical receive power.", ("port", "sensor")),
    MetricDef("optic_tx_power_dbm", _G, "Optical transmit power.", ("port", "sensor")),
    MetricDef("optic_bias_current_amperes", _G, "Optical transmitter bias current.", ("port", "sensor")),
    MetricDef("optic_temperature_celsius", _G, "Optical transceiver temperature.", ("port", "sensor")),
    # device (emitted by the agent, not by profiles)
    MetricDef("device_up", _G, "1 if the last poll of the device succeeded."),
    MetricDef("device_poll_duration_seconds", _G, "Duration of the last poll."),
    MetricDef("device_poll_errors_total", _C, "Failed polls by reason.", ("reason",)),
    MetricDef("device_last_success_timestamp_seconds", _G, "Unix time of the last successful poll."),
    MetricDef("device_poll_requests", _G, "Protocol requests issued by the last poll."),
    MetricDef(
        "device_info",
        _G,
        "Device identity; always 1.",
        ("vendor", "model", "serial", "firmware", "profile"),
    ),
]

CATALOG: dict[str, MetricDef] = {d.name: d for d in _DEFS}

# Metrics a profile may map raw values to; device_* series belong to the agent.
PROFILE_METRICS = frozenset(n for n in CATALOG if not n.startswith("device_"))


def lookup(name: str) -> MetricDef:
    """Return the catalog entry for ``name`` or raise KeyError naming the valid choices."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; see drivers/catalog.py for the catalog") from None
