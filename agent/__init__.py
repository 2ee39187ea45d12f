"""The rackpulse daemon: config, scheduler, publishers (Prometheus, MQTT, HTTP), CLI and systemd glue."""

__version__ = "0.1.0"
