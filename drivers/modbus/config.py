"""Config model for Modbus devices (``driver: modbus`` entries under ``devices:``).

``agent/config.py`` validates each device entry with :class:`ModbusDeviceConfig`, so every error
carries its path, e.g. ``devices[1].registers[0].type: Input should be 'int16', ...``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.config import DeviceConfigBase
from drivers.modbus.plan import MAX_REGISTERS
from drivers.modbus.profile import Order, RegisterSpec

DEFAULT_TCP_PORT = 502


class ModbusDeviceConfig(DeviceConfigBase):
    """A Modbus device: transport, unit id, request shaping and its profile or inline registers."""

    driver: Literal["modbus"]
    transport: Literal["tcp", "rtu-over-tcp", "rtu"] = "tcp"
    # "fast": drivers/modbus/fasttcp.py (Modbus/TCP only, the default there); "pymodbus": the
    # reference client, and the only one for rtu and rtu-over-tcp. Filled in from the transport.
    engine: Literal["fast", "pymodbus"] = "fast"
    # requests of one poll in flight at once on the TCP connection (engine fast); >1 is opt-in
    # because some devices and gateways handle only one transaction at a time
    pipeline: int = Field(default=1, ge=1, le=16)
    unit_id: int = Field(default=1, ge=0, le=247)
    # rtu: the serial device, e.g. /dev/ttyUSB0 (host/port are not used)
    serial_port: str | None = None
    baudrate: int = Field(default=19200, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    # request shaping
    max_gap: int = Field(default=8, ge=0, le=MAX_REGISTERS, description="registers read through to merge reads")
    max_registers: int = Field(default=MAX_REGISTERS, ge=1, le=MAX_REGISTERS)
    # a 24-outlet unit polled with a profile written for 48 outlets: cap every repeat block
    max_repeat: int | None = Field(default=None, ge=1, le=4096)
    # inline register map (instead of, or in addition to, named profiles)
    address_base: Literal[0, 1] = 0
    word_order: Order = "big"
    registers: list[RegisterSpec] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_engine(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("engine") is None:
            transport = data.get("transport", "tcp")
            data = {**data, "engine": "fast" if transport in (None, "tcp") else "pymodbus"}
        return data

    @model_validator(mode="after")
    def _transport_fields(self) -> ModbusDeviceConfig:
        if self.engine == "fast" and self.transport != "tcp":
            raise ValueError(
                f"engine 'fast' speaks Modbus/TCP (MBAP) only; transport {self.transport!r} always uses "
                "pymodbus: remove 'engine' or set engine: pymodbus"
            )
        if self.pipeline > 1 and self.engine != "fast":
            raise ValueError(f"pipeline {self.pipeline} needs engine 'fast'; pymodbus sends one request at a time")
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport 'rtu' needs serial_port (e.g. /dev/ttyUSB0)")
            if self.host is not None:
                raise ValueError("transport 'rtu' reads a serial port; remove 'host' or use rtu-over-tcp")
        else:
            if not self.host:
                raise ValueError(f"transport {self.transport!r} needs 'host'")
            if self.serial_port is not None:
                raise ValueError(f"serial_port is only for transport 'rtu', not {self.transport!r}")
        if not self.profile_names() and not self.registers:
            raise ValueError("give a 'profile' (or 'profiles') or an inline 'registers' list")
        if self.registers is not None and not self.registers:
            raise ValueError("registers: the list is empty")
        return self

    @property
    def tcp_port(self) -> int:
        """The TCP port to connect to (502 unless configured)."""
        return self.port or DEFAULT_TCP_PORT

    def where(self) -> str:
        """Human description of the endpoint for messages, e.g. ``10.1.42.11:502 unit 1``."""
        if self.transport == "rtu":
            return f"{self.serial_port} unit {self.unit_id}"
        return f"{self.host}:{self.tcp_port} unit {self.unit_id}"
