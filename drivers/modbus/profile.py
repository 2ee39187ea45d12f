"""Modbus device profiles: the YAML register map model, validated by pydantic, and its expansion.

A profile states where each value lives (function, address, type, word order) and how the raw
value becomes a canonical metric (scale, offset, unit, sentinels, labels). ``repeat`` blocks are
expanded once at load time into a flat tuple of :class:`FieldDef`, so the poll path never looks at
YAML structures again. The same :class:`RegisterSpec` model validates a device's inline
``registers:`` list in the agent config, so both report errors with the same paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from drivers.catalog import CATALOG, PROFILE_METRICS, Kind
from drivers.config import StrictModel
from drivers.errors import ProfileError
from drivers.model import Labels, make_labels

Function = Literal["holding", "input", "coil", "discrete"]
RegType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "string"
]
Order = Literal["big", "little"]

# Registers each fixed-width type occupies; strings give their own `count`.
TYPE_WIDTH: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
    "float32": 2, "float64": 4, "bool": 1,
}
BIT_FUNCTIONS = frozenset({"coil", "discrete"})
MAX_ADDRESS = 65535

# Source units a register may be declared in; the value is multiplied into SI base units.
UNITS: dict[str, float] = {
    "V": 1.0, "mV": 1e-3, "dV": 0.1, "cV": 0.01,
    "A": 1.0, "mA": 1e-3, "cA": 0.01, "dA": 0.1,
    "W": 1.0, "kW": 1e3, "VA": 1.0, "kVA": 1e3,
    "Wh": 3600.0, "kWh": 3.6e6, "MWh": 3.6e9, "J": 1.0, "kJ": 1e3,
    "Hz": 1.0, "dHz": 0.1, "cHz": 0.01,
    "C": 1.0, "dC": 0.1,
    "percent": 0.01, "permille": 1e-3, "ratio": 1.0,
    "rpm": 1.0, "B": 1.0, "s": 1.0, "ms": 1e-3,
}


def _parse_sentinel(v: Any) -> float | int:
    if isinstance(v, bool):
        raise ValueError("a sentinel must be a number")
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s, 0)
        except ValueError:
            pass
        try:
            return float(s)  # accepts 'nan', 'inf', '-1.5'
        except ValueError:
            raise ValueError(f"sentinel {v!r} is not a number (write e.g. 65535, 0xFFFF or nan)") from None
    raise ValueError(f"sentinel {v!r} is not a number")


class RepeatSpec(StrictModel):
    """Repeat one register entry for consecutive blocks, e.g. one per outlet."""

    count: int = Field(ge=1, le=4096)
    stride: int = Field(ge=1, le=MAX_ADDRESS, description="registers (or bits) between blocks")
    start: int = Field(default=1, ge=0, description="value of {n} for the first block")


class InfoRegisterSpec(StrictModel):
    """A register holding an identity string or number (serial, firmware)."""

    function: Function = "holding"
    address: int = Field(ge=0, le=MAX_ADDRESS)
    type: RegType = "string"
    count: int | None = Field(default=None, ge=1, le=125, description="registers, for strings")
    word_order: Order | None = None
    byte_order: Order = "big"

    @model_validator(mode="after")
    def _shape(self) -> InfoRegisterSpec:
        _check_shape(self.function, self.type, self.count)
        return self


class InfoSpec(StrictModel):
    """Device identity: static strings or registers to read once per connection."""

    vendor: str | InfoRegisterSpec | None = None
    model: str | InfoRegisterSpec | None = None
    serial: str | InfoRegisterSpec | None = None
    firmware: str | InfoRegisterSpec | None = None


def _check_shape(function: str, typ: str, count: int | None) -> None:
    if function in BIT_FUNCTIONS and typ != "bool":
        raise ValueError(f"function {function!r} reads single bits; its type must be 'bool', not {typ!r}")
    if typ == "string" and count is None:
        raise ValueError("type 'string' needs 'count' (the number of registers it spans)")
    if typ != "string" and count is not None:
        raise ValueError(f"'count' is only for strings; {typ} always spans {TYPE_WIDTH[typ]} register(s)")


class RegisterSpec(StrictModel):
    """One register entry of a profile or of a device's inline ``registers:`` list."""

    name: str | None = None
    function: Function | None = None
    address: int = Field(ge=0, le=MAX_ADDRESS)
    type: RegType
    word_order: Order | None = None
    byte_order: Order = "big"
    metric: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    repeat: RepeatSpec | None = None
    sentinels: list[int | float] = Field(default_factory=list)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in PROFILE_METRICS:
            raise ValueError(f"unknown metric {v!r}; profiles may use: {', '.join(sorted(PROFILE_METRICS))}")
        return v

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError("scale must be a finite, non-zero number")
        return v

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str | None) -> str | None:
        if v is not None and v not in UNITS:
            raise ValueError(f"unknown unit {v!r}; one of {', '.join(UNITS)}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_fit_metric(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        metric = info.data.get("metric")
        if metric is None:
            return v  # the metric error is already reported
        allowed = CATALOG[metric].labels
        for key, tmpl in v.items():
            if key not in allowed:
                raise ValueError(
                    f"label {key!r} is not a label of {metric} (allowed: {', '.join(allowed) or 'none'})"
                )
            try:
                tmpl.format(n=1)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"label {key!r}: bad template {tmpl!r} ({e}); only {{n}} is defined") from None
        return v

    @field_validator("sentinels", mode="before")
    @classmethod
    def _sentinels(cls, v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError("sentinels must be a list of raw values, e.g. [65535, nan]")
        return [_parse_sentinel(x) for x in v]

    @model_validator(mode="after")
    def _shape(self) -> RegisterSpec:
        if self.type == "string":
            raise ValueError("type 'string' cannot map to a metric; use it under info: (serial, firmware)")
        if self.function is not None:
            _check_shape(self.function, self.type, None)
        return self


class ModbusProfile(StrictModel):
    """A Modbus profile document (``drivers/profiles/*.yaml`` with ``driver: modbus``)."""

    driver: Literal["modbus"]
    name: str | None = None
    source: str = Field(min_length=1, description="the vendor document this map comes from")
    vendor: str = ""
    model: str = ""
    notes: str | None = None
    address_base: Literal[0, 1]
    word_order: Order
    function: Function | None = None
    info: InfoSpec | None = None
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _functions_stated(self) -> ModbusProfile:
        if self.function is None:
            missing = [i for i, r in enumerate(self.registers) if r.function is None]
            if missing:
                raise ValueError(
                    f"registers{missing[:5]} give no 'function' and the profile sets no default 'function'"
                )
        for i, r in enumerate(self.registers):
            fn = r.function or self.function or "holding"
            if fn in BIT_FUNCTIONS and r.type != "bool":
                raise ValueError(f"registers[{i}]: function {fn!r} reads single bits; its type must be 'bool'")
        return self


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One expanded register: where to read it and how to turn it into a reading."""

    function: str
    address: int  # 0-based wire address (bit address for coils/discrete inputs)
    width: int  # registers spanned (1 for bits)
    type: str
    word_order: str
    byte_order: str
    scale: float  # includes the unit factor
    offset: float
    metric: str
    kind: Kind
    labels: Labels
    sentinels: frozenset[float | int]
    origin: str  # e.g. "raritan-px-modbus registers[4] (n=12)", for error messages


@dataclass(frozen=True, slots=True)
class InfoField:
    """An identity register, already translated to a 0-based wire address."""

    key: str  # vendor | model | serial | firmware
    function: str
    address: int
    width: int
    type: str
    word_order: str
    byte_order: str


def expand_registers(
    specs: list[RegisterSpec],
    *,
    address_base: int,
    word_order: str,
    default_function: str | None,
    origin: str,
    max_repeat: int | None = None,
) -> list[FieldDef]:
    """Expand repeats and translate addresses to the wire; ProfileError names the bad entry."""
    out: list[FieldDef] = []
    for i, spec in enumerate(specs):
        where = f"{origin} registers[{i}]"
        function = spec.function or default_function
        if function is None:
            raise ProfileError(f"{where}: no 'function' given and no default")
        width = 1 if function in BIT_FUNCTIONS else TYPE_WIDTH[spec.type]
        scale = spec.scale * (UNITS[spec.unit] if spec.unit else 1.0)
        kind = CATALOG[spec.metric].kind
        sentinels = frozenset(s for s in spec.sentinels if not (isinstance(s, float) and math.isnan(s)))
        blocks: list[tuple[int | None, int]] = [(None, 0)]
        if spec.repeat is not None:
            count = min(spec.repeat.count, max_repeat or spec.repeat.count)
            blocks = [(spec.repeat.start + k, k * spec.repeat.stride) for k in range(count)]
        for n, delta in blocks:
            wire = spec.address - address_base + delta
            label = f"{where}" + (f" (n={n})" if n is not None else "")
            if wire < 0:
                raise ProfileError(
                    f"{label}: address {spec.address} is below the profile's address_base {address_base}"
                )
            if wire + width - 1 > MAX_ADDRESS:
                raise ProfileError(f"{label}: wire address {wire} (+{width}) is past {MAX_ADDRESS}")
            labels = make_labels({k: v.format(n=n) if n is not None else v for k, v in spec.labels.items()})
            out.append(
                FieldDef(
                    function=function,
                    address=wire,
                    width=width,
                    type=spec.type,
                    word_order=spec.word_order or word_order,
                    byte_order=spec.byte_order,
                    scale=scale,
                    offset=spec.offset,
                    metric=spec.metric,
                    kind=kind,
                    labels=labels,
                    sentinels=sentinels,
                    origin=label,
                )
            )
    check_duplicates(out)
    return out


def check_duplicates(fields: list[FieldDef]) -> None:
    """ProfileError if two fields would produce the same series (metric and labels)."""
    seen: dict[tuple[str, Labels], str] = {}
    for f in fields:
        key = (f.metric, f.labels)
        if key in seen:
            raise ProfileError(
                f"{f.origin}: {f.metric}{dict(f.labels)} is already produced by {seen[key]}; "
                "give the entries distinct labels"
            )
        seen[key] = f.origin


def expand_info(info: InfoSpec | None, *, address_base: int, word_order: str, origin: str) -> tuple[
    dict[str, str], list[InfoField]
]:
    """Split an info block into static strings and registers to read (0-based wire addresses)."""
    static: dict[str, str] = {}
    regs: list[InfoField] = []
    if info is None:
        return static, regs
    for key in ("vendor", "model", "serial", "firmware"):
        v = getattr(info, key)
        if v is None:
            continue
        if isinstance(v, str):
            static[key] = v
            continue
        wire = v.address - address_base
        width = v.count if v.type == "string" else TYPE_WIDTH[v.type]
        assert width is not None
        if wire < 0 or wire + width - 1 > MAX_ADDRESS:
            raise ProfileError(f"{origin} info.{key}: address {v.address} is outside the register space")
        regs.append(InfoField(key, v.function, wire, width, v.type, v.word_order or word_order, v.byte_order))
    return static, regs


@dataclass(frozen=True, slots=True)
class ExpandedProfile:
    """A profile ready for the driver and the simulator: flat fields plus identity."""

    name: str
    vendor: str
    model: str
    fields: tuple[FieldDef, ...]
    static_info: dict[str, str]
    info_fields: tuple[InfoField, ...]


def expand_profile(name: str, profile: ModbusProfile, max_repeat: int | None = None) -> ExpandedProfile:
    """Expand a validated profile document; ProfileError names the bad entry.

    ``max_repeat`` caps every ``repeat.count`` (a smaller model of the same family).
    """
    fields = expand_registers(
        profile.registers,
        address_base=profile.address_base,
        word_order=profile.word_order,
        default_function=profile.function,
        origin=f"profile {name!r}",
        max_repeat=max_repeat,
    )
    static, regs = expand_info(
        profile.info, address_base=profile.address_base, word_order=profile.word_order, origin=f"profile {name!r}"
    )
    return ExpandedProfile(
        name=name,
        vendor=static.pop("vendor", profile.vendor),
        model=static.pop("model", profile.model),
        fields=tuple(fields),
        static_info=static,
        info_fields=tuple(regs),
    )
