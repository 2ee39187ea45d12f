"""The built-in Modbus driver plug-in (entry point ``modbus = "drivers.modbus:PLUGIN"``).

``create`` loads the device's profiles (and/or inline registers), expands them into flat fields,
plans the reads, and returns a :class:`~drivers.modbus.driver.ModbusDriver`; it does no I/O.
"""

from __future__ import annotations

from drivers.base import DriverPlugin, PollSettings
from drivers.errors import ProfileError
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.profile import (
    ExpandedProfile,
    FieldDef,
    InfoField,
    ModbusProfile,
    check_duplicates,
    expand_profile,
    expand_registers,
)
from drivers.model import DeviceInfo
from drivers.profiles import ProfileLibrary

__all__ = ["PLUGIN", "ModbusDeviceConfig", "ModbusDriver", "ModbusPlugin", "load_profile"]


def load_profile(library: ProfileLibrary, name: str, max_repeat: int | None = None) -> ExpandedProfile:
    """Load, validate and expand a Modbus profile by name (the parsed document is cached)."""
    doc = library.load(name, ModbusProfile, "modbus")
    return library.memo(("modbus-expanded", name, max_repeat), lambda: expand_profile(name, doc, max_repeat))


class ModbusPlugin(DriverPlugin[ModbusDeviceConfig]):
    """Builds Modbus drivers from device configs."""

    name = "modbus"
    config_model = ModbusDeviceConfig

    def create(self, config: ModbusDeviceConfig, library: ProfileLibrary, settings: PollSettings) -> ModbusDriver:
        """Expand the device's profiles and inline registers into a ready driver; no I/O."""
        fields: list[FieldDef] = []
        info_fields: list[InfoField] = []
        vendor = model = ""
        static: dict[str, str] = {}
        names = config.profile_names()
        for pname in names:
            prof = load_profile(library, pname, config.max_repeat)
            fields.extend(prof.fields)
            if not info_fields and not vendor:
                vendor, model = prof.vendor, prof.model
                static = dict(prof.static_info)
                info_fields = list(prof.info_fields)
        if config.registers:
            fields.extend(
                expand_registers(
                    config.registers,
                    address_base=config.address_base,
                    word_order=config.word_order,
                    default_function="holding",
                    origin=f"device {config.name!r}",
                )
            )
        if not fields:
            raise ProfileError(f"device {config.name!r}: no registers to read")
        check_duplicates(fields)
        info = DeviceInfo(
            vendor=vendor,
            model=model,
            serial=static.get("serial", ""),
            firmware=static.get("firmware", ""),
            profile=",".join(names) if names else "inline",
            driver="modbus",
        )
        try:
            return ModbusDriver(config, settings, fields, info_fields=info_fields, static_info=info)
        except ValueError as e:
            raise ProfileError(f"device {config.name!r}: {e}") from None


PLUGIN = ModbusPlugin()
