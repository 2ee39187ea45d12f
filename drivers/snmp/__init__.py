"""The SNMP driver plug-in: switches and PDUs over SNMP v1, v2c and v3.

``PLUGIN`` is registered under the ``rackpulse.drivers`` entry-point group as ``snmp``.
"""

from __future__ import annotations

from dataclasses import replace

from drivers.base import Driver, DriverPlugin, PollSettings
from drivers.errors import ProfileError
from drivers.profiles import ProfileLibrary
from drivers.snmp.config import SnmpDeviceConfig
from drivers.snmp.profile import SnmpProfile
from drivers.snmp.wire import SessionFactory, SnmpTarget

# Each request attempt gets this share of the device timeout, with one resend, so a lost
# datagram is retried inside the poll and a dead device still fails with our own message.
ATTEMPT_SHARE = 0.45
MIN_ATTEMPT = 0.2


def load_profile(library: ProfileLibrary, name: str) -> SnmpProfile:
    """Load and validate SNMP profile ``name``; ProfileError names the file and the problem."""

    def same_name(p: SnmpProfile) -> None:
        if p.name != name:
            raise ProfileError(f"profile {name!r} ({library.doc(name).path}) says name: {p.name!r}; "
                               "the name must match the file name")

    return library.load(name, SnmpProfile, "snmp", same_name)


def inline_profile(config: SnmpDeviceConfig) -> SnmpProfile | None:
    """The device's inline ``oids:`` as an anonymous profile named 'inline'."""
    if not config.oids:
        return None
    return SnmpProfile.model_validate({
        "driver": "snmp", "name": "inline", "source": {"mib": f"inline oids of device {config.name}"},
        "scalars": [o.model_dump(by_alias=True) for o in config.oids],
    })


def make_target(config: SnmpDeviceConfig, settings: PollSettings) -> SnmpTarget:
    """Build the wire target, reading secrets now; ValueError names the file or variable."""
    attempt = max(MIN_ATTEMPT, settings.timeout * ATTEMPT_SHARE)
    base = SnmpTarget(device=config.name, host=config.host, port=config.port, version=config.version,
                      timeout=attempt, retries=1)
    if config.version == "3":
        v3 = config.v3
        assert v3 is not None
        return replace(base, user=v3.user, auth_protocol=v3.auth_protocol, auth_key=v3.auth_key(),
                       priv_protocol=v3.priv_protocol, priv_key=v3.priv_key(), context_name=v3.context_name)
    return replace(base, community=config.community())


class SnmpPlugin(DriverPlugin[SnmpDeviceConfig]):
    """Builds SnmpDriver instances; the device's ``engine`` picks the wire session unless a factory is forced."""

    name = "snmp"
    config_model = SnmpDeviceConfig

    def __init__(self, session_factory: SessionFactory | None = None) -> None:
        self.session_factory = session_factory

    def create(self, config: SnmpDeviceConfig, library: ProfileLibrary, settings: PollSettings) -> Driver:
        from drivers.snmp.driver import SnmpDriver
        from drivers.snmp.fastwire import fast_session

        profiles = [load_profile(library, n) for n in config.profile_names()]
        inline = inline_profile(config)
        if inline:
            profiles.append(inline)
        target = make_target(config, settings)
        factory = self.session_factory or fast_session
        if self.session_factory is None and config.engine == "pysnmp":
            from drivers.snmp.pysnmp_wire import pysnmp_session  # pysnmp costs ~15 MB and 1-2 CPU-s to import

            factory = pysnmp_session
        return SnmpDriver(config, settings, profiles, target, factory)

    async def shutdown(self) -> None:
        """Close the shared pysnmp engines, if any device used the pysnmp engine."""
        import sys

        if "drivers.snmp.pysnmp_wire" in sys.modules:
            from drivers.snmp.pysnmp_wire import close_shared_engines

            await close_shared_engines()


PLUGIN = SnmpPlugin()
