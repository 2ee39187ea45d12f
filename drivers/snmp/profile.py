"""The SNMP profile model: scalars and tables of OIDs mapped to canonical metrics.

A profile is data (``drivers/profiles/*.yaml`` with ``driver: snmp``). This module validates it
into typed objects; the driver evaluates them. Every metric must be in the catalog's
PROFILE_METRICS, so a typo is a ProfileError at load time rather than a silently missing series.

Value pipeline for one cell (see README.md):
raw -> ``sentinels`` (drop) -> ``enum`` -> counter unwrap (``bits``) -> ``scale_from`` factors ->
``scale`` and ``offset`` -> ``transform`` (e.g. mW -> dBm).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from drivers.catalog import CATALOG, PROFILE_METRICS
from drivers.config import StrictModel
from drivers.snmp.wire import Oid, parse_oid

INFO_FIELDS = ("vendor", "model", "serial", "firmware")


def _oid(v: Any) -> Any:
    if isinstance(v, str):
        try:
            oid = parse_oid(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0") from None
        if len(oid) < 2 or any(p < 0 for p in oid):
            raise ValueError(f"{v!r} is not a valid OID")
        return oid
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise ValueError(f"{v!r} is not an OID; quote it, e.g. '1.3.6.1.2.1.1.3.0'")
    return v


OidField = Annotated[tuple[int, ...], BeforeValidator(_oid)]


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, dict) else v


def _regex(v: str | None) -> str | None:
    if v is not None:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"bad regex {v!r}: {e}") from None
    return v


Part = int | str  # an index component, by 0-based position or by the table's index name


class Source(StrictModel):
    """Where the OIDs come from: the MIB, and a URL or document reference."""

    mib: str
    url: str | None = None
    ref: str | None = None
    notes: str | None = None


class InfoSpec(StrictModel):
    """One device-info field: a scalar OID to GET, or a static string; ``regex`` keeps group 1."""

    oid: OidField | None = None
    static: str | None = None
    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return _regex(v)

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        return {"static": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one(self) -> InfoSpec:
        if (self.oid is None) == (self.static is None):
            raise ValueError("give exactly one of 'oid' or 'static'")
        return self


class ScaleFrom(StrictModel):
    """A factor read from a sibling column of the same row (or, for scalars, another instance OID).

    kinds: ``pow10`` divides by 10^x (Raritan DecimalDigits); ``entity_sensor`` multiplies by
    10^(3*(x-9)) (ENTITY-SENSOR scale, 9 = units); ``entity_sensor_precision`` divides by 10^x.
    """

    column: OidField
    kind: Literal["pow10", "entity_sensor", "entity_sensor_precision"]
    join: list[Part] | None = None

    def factor(self, x: int) -> float:
        """The multiplier for raw sibling value ``x``."""
        if self.kind == "entity_sensor":
            return 10.0 ** (3 * (x - 9))
        return 10.0 ** (-x)


Transform = Literal["mw_to_dbm", "w_to_dbm"]


class ValueSpec(StrictModel):
    """How a raw value becomes a reading: shared by scalars, columns and fallbacks."""

    scale: float = 1.0
    offset: float = 0.0
    scale_from: Annotated[list[ScaleFrom], BeforeValidator(_listify)] = Field(default_factory=list)
    enum: dict[int, float] | None = None
    enum_default: float | None = None
    sentinels: list[int] = Field(default_factory=list)
    transform: Transform | None = None
    bits: Literal[32, 64] | None = None


class Fallback(ValueSpec):
    """A column read for rows whose primary column is missing (e.g. ifInOctets for ifHCInOctets)."""

    oid: OidField


class Match(StrictModel):
    """A condition on an already computed label: present (no regex) or matching ``regex``."""

    label: str
    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return _regex(v)


class Case(StrictModel):
    """One branch of a type filter: rows whose selector equals ``value`` map to ``metric``."""

    value: Annotated[list[int], BeforeValidator(lambda v: [v] if isinstance(v, int) else v)]
    match: Annotated[list[Match], BeforeValidator(_listify)] = Field(default_factory=list)
    metric: str
    scale: float | None = None
    offset: float | None = None
    transform: Transform | None = None


class TypeFilter(StrictModel):
    """Chooses the metric per row from a selector column (or index component); first case wins."""

    column: OidField | None = None
    index: Part | None = None
    join: list[Part] | None = None
    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _one(self) -> TypeFilter:
        if (self.column is None) == (self.index is None):
            raise ValueError("type_filter needs exactly one of 'column' or 'index'")
        return self


class ColumnSpec(ValueSpec):
    """A value column of a table: the column OID and its metric (or a type filter choosing it)."""

    oid: OidField
    metric: str | None = None
    type_filter: TypeFilter | None = None
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _one(self) -> ColumnSpec:
        if (self.metric is None) == (self.type_filter is None):
            raise ValueError("give exactly one of 'metric' or 'type_filter'")
        return self

    def metrics(self) -> list[str]:
        """Every metric this column can produce."""
        if self.type_filter:
            return [c.metric for c in self.type_filter.cases]
        return [self.metric] if self.metric else []


class LabelSpec(StrictModel):
    """A label of every row: a column joined by index, a template, or a static string.

    ``column`` is read at the row's index (or at the components listed in ``join``); ``fallback``
    is read where ``column`` has no value; ``regex`` keeps group 1 (the label is left off when
    it does not match); ``template`` formats ``{value}``, ``{index}``, ``{i0}``.. and index names.
    """

    column: OidField | None = None
    fallback: OidField | None = None
    join: list[Part] | None = None
    regex: str | None = None
    template: str | None = None
    static: str | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return _regex(v)

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        return {"template": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one(self) -> LabelSpec:
        if self.static is not None and (self.column or self.template or self.regex):
            raise ValueError("'static' stands alone")
        if self.static is None and self.column is None and self.template is None:
            raise ValueError("give 'column', 'template' or 'static'")
        if self.fallback and not self.column:
            raise ValueError("'fallback' needs 'column'")
        return self


class RowFilter(StrictModel):
    """Keep only rows whose ``column`` value is in ``in`` (and not in ``not_in``)."""

    column: OidField
    in_: list[int] | None = Field(default=None, alias="in")
    not_in: list[int] | None = None
    join: list[Part] | None = None

    def keeps(self, value: int | None) -> bool:
        """True when a row with selector ``value`` passes (a missing value fails ``in``)."""
        if self.in_ is not None and value not in self.in_:
            return False
        return not (self.not_in is not None and value in self.not_in)


class TableSpec(StrictModel):
    """A conceptual table: value columns and label columns sharing one index."""

    name: str
    index: list[str] | None = None
    columns: list[ColumnSpec] = Field(min_length=1)
    labels: dict[str, LabelSpec] = Field(default_factory=dict)
    filter: Annotated[list[RowFilter], BeforeValidator(_listify)] = Field(default_factory=list)

    def part(self, p: Part) -> int:
        """The position of index component ``p`` (a name from ``index`` or a position)."""
        if isinstance(p, int):
            return p
        if not self.index or p not in self.index:
            raise ValueError(f"index component {p!r} is not one of the table's index names {self.index}")
        return self.index.index(p)

    def template_fields(self) -> set[str]:
        """Names a label template of this table may use."""
        n = len(self.index) if self.index else 8
        return {"value", "index", *(f"i{k}" for k in range(n)), *(self.index or [])}


class ScalarSpec(ValueSpec):
    """A single instance OID (ending in .0 for true scalars) mapped to a metric with static labels."""

    oid: OidField
    metric: str
    labels: dict[str, str] = Field(default_factory=dict)


class SnmpProfile(StrictModel):
    """A whole SNMP device profile."""

    driver: Literal["snmp"]
    name: str
    description: str = ""
    source: Annotated[list[Source], BeforeValidator(_listify)] = Field(min_length=1)
    match: list[OidField] = Field(default_factory=list)
    info: dict[Literal["vendor", "model", "serial", "firmware"], InfoSpec] = Field(default_factory=dict)
    scalars: list[ScalarSpec] = Field(default_factory=list)
    tables: list[TableSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _semantics(self) -> SnmpProfile:
        problems = list(_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def matches(self, sys_object_id: Oid) -> bool:
        """True when ``sys_object_id`` starts with one of the ``match`` prefixes."""
        return any(sys_object_id[: len(p)] == p for p in self.match)


def _check_value(where: str, spec: ValueSpec, metric: str | None) -> Iterator[str]:
    if spec.transform and metric and not metric.endswith("_dbm"):
        yield f"{where}: transform {spec.transform} only fits *_dbm metrics, not {metric}"
    if spec.enum_default is not None and spec.enum is None:
        yield f"{where}: enum_default needs enum"
    if not math.isfinite(spec.scale) or spec.scale == 0:
        yield f"{where}: scale must be a finite non-zero number"


def _check_metric(where: str, metric: str) -> Iterator[str]:
    if metric not in PROFILE_METRICS:
        yield f"{where}: metric {metric!r} is not in the catalog (drivers/catalog.py)"


def _check_template(where: str, template: str, allowed: set[str]) -> Iterator[str]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        yield f"{where}: bad template {template!r}: {e}"
        return
    for f in fields:
        if f not in allowed:
            yield f"{where}: template field {{{f}}} is not one of {sorted(allowed)}"


def _check_parts(where: str, table: TableSpec, parts: list[Part] | None) -> Iterator[str]:
    for p in parts or []:
        try:
            table.part(p)
        except ValueError as e:
            yield f"{where}: {e}"


def scalar_problems(where: str, s: ScalarSpec) -> Iterator[str]:
    """Semantic problems of one scalar (unknown metric, labels the metric does not carry...)."""
    yield from _check_metric(where, s.metric)
    yield from _check_value(where, s, s.metric)
    if s.metric in CATALOG:
        allowed = set(CATALOG[s.metric].labels)
        for k in s.labels:
            if k not in allowed:
                yield f"{where}.labels: {s.metric} carries no label {k!r} (only {sorted(allowed)})"


def _problems(p: SnmpProfile) -> Iterator[str]:
    for i, s in enumerate(p.scalars):
        yield from scalar_problems(f"scalars[{i}]", s)
    for t_i, t in enumerate(p.tables):
        tw = f"tables[{t_i}] ({t.name})"
        metrics: set[str] = set()
        for c_i, c in enumerate(t.columns):
            cw = f"{tw}.columns[{c_i}]"
            for m in c.metrics():
                yield from _check_metric(cw, m)
                metrics.add(m)
            yield from _check_value(cw, c, c.metric)
            for sf in c.scale_from + (c.fallback.scale_from if c.fallback else []):
                yield from _check_parts(cw + ".scale_from", t, sf.join)
            if c.fallback:
                yield from _check_value(cw + ".fallback", c.fallback, c.metric)
            if c.type_filter:
                yield from _check_parts(cw + ".type_filter", t, c.type_filter.join)
                if c.type_filter.index is not None:
                    yield from _check_parts(cw + ".type_filter", t, [c.type_filter.index])
                for n, case in enumerate(c.type_filter.cases):
                    if case.transform and not case.metric.endswith("_dbm"):
                        yield f"{cw}.type_filter.cases[{n}]: transform only fits *_dbm metrics"
                    for cond in case.match:
                        if cond.label not in t.labels:
                            yield f"{cw}.type_filter.cases[{n}]: match names unknown label {cond.label!r}"
        carried = {lbl for m in metrics if m in CATALOG for lbl in CATALOG[m].labels}
        for name, spec in t.labels.items():
            lw = f"{tw}.labels.{name}"
            if name not in carried:
                yield f"{lw}: none of this table's metrics carries label {name!r}"
            if spec.template:
                yield from _check_template(lw, spec.template, t.template_fields())
            yield from _check_parts(lw, t, spec.join)
        for f_i, f in enumerate(t.filter):
            yield from _check_parts(f"{tw}.filter[{f_i}]", t, f.join)
