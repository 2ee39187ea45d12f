"""Benchmarks against peer tools (net-snmp, snmp_exporter, mbpoll, prometheus-client); not tests."""
