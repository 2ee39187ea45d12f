"""End-to-end fixtures: reuse the real snmpd from the SNMP suite."""

from tests.snmp.conftest import snmpd  # noqa: F401 - re-exported fixture
