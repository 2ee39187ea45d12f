"""The SNMP driver: GET the scalars, walk only the columns the profiles need, join and convert.

One poll is one GET (sysUpTime, scalars, and device info on the first poll) plus one multi-column
GETBULK walk of every column all the device's profiles need, deduplicated. Fallback columns
(ifInOctets for ifHCInOctets, ifDescr for ifName) are read only for rows the primary column lacks,
and a primary column that a device does not have at all is not asked for again until it reboots.

The driver never knows which wire engine is behind the session: it takes a session factory.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drivers.base import Driver, PollSettings
from drivers.catalog import CATALOG, Kind
from drivers.counters import CounterUnwrapper, uptime_went_backwards
from drivers.errors import DeviceError
from drivers.model import DeviceInfo, Labels, PollResult, Reading, make_labels
from drivers.snmp import wire
from drivers.snmp.config import SnmpDeviceConfig
from drivers.snmp.fastwire import fast_session
from drivers.snmp.profile import LabelSpec, Part, SnmpProfile, TableSpec, ValueSpec
from drivers.snmp.wire import Oid, SessionFactory, SnmpSession, SnmpTarget, VarBind, format_oid, parse_oid

log = logging.getLogger("rackpulse.snmp")

SYS_DESCR = parse_oid("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = parse_oid("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")

Index = tuple[int, ...]
Column = dict[Index, VarBind]

_NUMERIC = frozenset({wire.INTEGER, wire.COUNTER32, wire.GAUGE32, wire.TIMETICKS, wire.COUNTER64})
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def vb_text(vb: VarBind | None) -> str | None:
    """A varbind as label text: strings decoded (NULs and whitespace stripped), numbers as digits."""
    if vb is None or vb.tag in wire.EXCEPTIONS or vb.value is None:
        return None
    v = vb.value
    if isinstance(v, bytes):
        if vb.tag == wire.IP_ADDRESS and len(v) == 4:
            return ".".join(str(b) for b in v)
        return v.decode("utf-8", errors="replace").replace("\x00", "").strip()
    if isinstance(v, tuple):
        return format_oid(v)
    return str(v)


def vb_number(vb: VarBind | None) -> int | float | None:
    """A varbind's numeric value; numeric strings (some vendors) are parsed, anything else is None."""
    if vb is None:
        return None
    if vb.tag in _NUMERIC and isinstance(vb.value, int):
        return vb.value
    if vb.tag == wire.OCTET_STRING and isinstance(vb.value, bytes):
        text = vb.value.decode("ascii", errors="replace")
        if _NUMBER.match(text):
            return float(text)
    return None


def _join(idx: Index, positions: Sequence[int] | None) -> Index:
    if positions is None:
        return idx
    return tuple(idx[p] for p in positions if p < len(idx))


@dataclass(frozen=True)
class _Table:
    """A table spec with its index names resolved to positions, ready to evaluate."""

    profile: str
    spec: TableSpec
    label_pos: dict[str, list[int] | None] = field(default_factory=dict)

    def pos(self, parts: list[Part] | None) -> list[int] | None:
        return None if parts is None else [self.spec.part(p) for p in parts]


@dataclass
class _PollData:
    """What one poll read: GET answers by OID and walked columns by column OID."""

    scalars: dict[Oid, VarBind]
    columns: dict[Oid, Column]

    def cell(self, column: Oid, idx: Index) -> VarBind | None:
        vb = self.columns.get(column, {}).get(idx)
        return None if vb is None or vb.tag in wire.EXCEPTIONS else vb


class SnmpDriver(Driver):
    """Polls one SNMP device through its profiles (readings merged in profile order)."""

    config: SnmpDeviceConfig

    def __init__(
        self,
        config: SnmpDeviceConfig,
        settings: PollSettings,
        profiles: Sequence[SnmpProfile],
        target: SnmpTarget,
        session_factory: SessionFactory = fast_session,
    ) -> None:
        super().__init__(config, settings)
        self.profiles = list(profiles)
        self.target = target
        self.session_factory = session_factory
        self.session: SnmpSession | None = None
        self.unwrapper = CounterUnwrapper()
        self._tables = [_Table(p.name, t) for p in self.profiles for t in p.tables]
        self._scalars = [s for p in self.profiles for s in p.scalars]
        self._uptime: int | None = None
        self._info: DeviceInfo | None = None
        self._refresh_info = False
        self.sys_object_id: Oid | None = None
        self.sys_descr: str = ""
        # Primary columns (values or labels) this device lacks entirely; we read their fallback.
        self._absent: set[Oid] = set()
        # Label, scale and type columns (names, DecimalDigits, sensor types) change rarely.
        self._meta: dict[Oid, Column] | None = None
        self._meta_at = 0.0
        self._profile_names = ",".join(p.name for p in self.profiles)

    # -- planning ---------------------------------------------------------------------------

    def _fallbacks(self) -> dict[Oid, Oid]:
        """Primary column -> fallback column, for value and label columns."""
        out: dict[Oid, Oid] = {}
        for t in self._tables:
            for c in t.spec.columns:
                if c.fallback:
                    out[c.oid] = c.fallback.oid
            for lbl in t.spec.labels.values():
                if lbl.column and lbl.fallback:
                    out[lbl.column] = lbl.fallback
        return out

    def column_sets(self) -> tuple[list[Oid], list[Oid]]:
        """(value columns walked every poll, meta columns: labels, scales and types, cached)."""
        fb = self._fallbacks()
        value: list[Oid] = []
        meta: list[Oid] = []
        for t in self._tables:
            s = t.spec
            for c in s.columns:
                value.append(fb[c.oid] if c.oid in self._absent else c.oid)
                meta.extend(sf.column for sf in c.scale_from)
                if c.type_filter and c.type_filter.column:
                    meta.append(c.type_filter.column)
                if c.fallback and c.oid in self._absent:
                    meta.extend(sf.column for sf in c.fallback.scale_from)
            for lbl in s.labels.values():
                if lbl.column:
                    meta.append(fb[lbl.column] if lbl.column in self._absent else lbl.column)
            value.extend(f.column for f in s.filter)
        value = list(dict.fromkeys(value))
        return value, [c for c in dict.fromkeys(meta) if c not in value]

    def walk_columns(self, with_meta: bool = True) -> list[Oid]:
        """Every column a poll walks, deduplicated, in profile order (meta columns last)."""
        value, meta = self.column_sets()
        return value + meta if with_meta else value

    def get_oids(self, with_info: bool) -> list[Oid]:
        """The OIDs of the poll's GET: sysUpTime, scalars and (first poll) identity."""
        oids = [SYS_UPTIME]
        if with_info:
            oids += [SYS_DESCR, SYS_OBJECT_ID]
            oids += [i.oid for p in self.profiles for i in p.info.values() if i.oid]
        for s in self._scalars:
            oids.append(s.oid)
            oids.extend(sf.column for sf in s.scale_from)
        return list(dict.fromkeys(oids))

    # -- polling ----------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        """GET scalars, walk columns, convert; raises DeviceError on wire errors."""
        if self.session is None:
            self.session = self.session_factory(self.target)
        sess = self.session
        before = sess.requests
        with_info = self._info is None or self._refresh_info
        got = await sess.get(self.get_oids(with_info))
        scalars = {vb.oid: vb for vb in got}
        self._check_uptime(scalars.get(SYS_UPTIME))
        if with_info:
            self._learn_info(scalars)
            self._refresh_info = False
        data = _PollData(scalars, await self._walk(sess))
        now = time.time()
        readings: list[Reading] = []
        for t in self._tables:
            readings.extend(self._eval_table(t, data, now))
        readings.extend(self._eval_scalars(data, now))
        if not readings and not self._anything(data):
            raise DeviceError(
                "no_such_object",
                f"{self.name} ({self.target.host}:{self.target.port}) answers but has none of the OIDs of "
                f"profile(s) {self._profile_names or 'inline'} (sysObjectID "
                f"{format_oid(self.sys_object_id) if self.sys_object_id else 'unknown'})",
            )
        assert self._info is not None
        info = DeviceInfo(**{k: getattr(self._info, k) for k in ("vendor", "model", "serial", "firmware")},
                          profile=self._profile_names or "inline", driver="snmp")
        return PollResult(readings=readings, info=info, requests=sess.requests - before)

    async def close(self) -> None:
        """Drop the session; the next poll builds a new one."""
        if self.session is not None:
            s, self.session = self.session, None
            await s.close()

    def _anything(self, data: _PollData) -> bool:
        if any(data.columns.values()):
            return True
        return any(vb.tag not in wire.EXCEPTIONS for oid, vb in data.scalars.items()
                   if oid not in (SYS_UPTIME, SYS_DESCR, SYS_OBJECT_ID))

    def _check_uptime(self, vb: VarBind | None) -> None:
        up = vb.value if vb is not None and vb.tag == wire.TIMETICKS and isinstance(vb.value, int) else None
        if up is None:
            return
        ticks_a_day = 8_640_000
        wrapped = self._uptime is not None and self._uptime >= 2**32 - ticks_a_day and up < ticks_a_day
        if uptime_went_backwards(self._uptime, up) and not wrapped:  # TimeTicks wrap after 497 days
            log.info("device_restarted device=%s uptime_ticks=%d previous=%s", self.name, up, self._uptime)
            self.unwrapper.reset()
            self._absent.clear()
            self._meta = None
            self._refresh_info = True  # firmware may have changed; re-read identity next poll
        self._uptime = up

    def _learn_info(self, scalars: dict[Oid, VarBind]) -> None:
        oid = scalars.get(SYS_OBJECT_ID)
        self.sys_object_id = oid.value if oid is not None and isinstance(oid.value, tuple) else None
        self.sys_descr = vb_text(scalars.get(SYS_DESCR)) or ""
        info = DeviceInfo()
        for p in self.profiles:
            for key, spec in p.info.items():
                if getattr(info, key):
                    continue  # the first profile that knows a field wins
                value = spec.static if spec.static is not None else vb_text(scalars.get(spec.oid or ()))
                if value and spec.regex:
                    m = re.search(spec.regex, value)
                    value = (m.group(1) if m.groups() else m.group(0)) if m else None
                if value:
                    setattr(info, key, value[:128])
        if not info.model and self.sys_descr:
            # No profile knows the model: the first line of sysDescr is the best identity we have.
            info.model = self.sys_descr.splitlines()[0][:64]
        self._info = info

    async def _walk(self, sess: SnmpSession) -> dict[Oid, Column]:
        reps = self.config.max_repetitions
        value_cols, meta_cols = self.column_sets()
        refresh = self._meta is None or time.monotonic() - self._meta_at >= self.config.meta_refresh
        cols = value_cols + meta_cols if refresh else value_cols
        raw = await sess.walk(cols, reps) if cols else {}
        columns = {c: {vb.oid[len(c):]: vb for vb in vbs} for c, vbs in raw.items()}
        if not refresh:
            assert self._meta is not None
            columns.update(self._meta)
            if not self._meta_complete(columns):  # a new row (hot-plugged optic, new port): re-read
                refresh = True
                more = await sess.walk(meta_cols, reps) if meta_cols else {}
                columns.update({c: {vb.oid[len(c):]: vb for vb in vbs} for c, vbs in more.items()})
        fb = self._fallbacks()
        # A primary column the device does not have: read its fallback now and from now on.
        missing = [p for p in fb if p in columns and not columns[p] and fb[p] not in columns]
        if missing:
            self._absent.update(missing)
            more = await sess.walk([fb[p] for p in missing], reps)
            for c, vbs in more.items():
                columns[c] = {vb.oid[len(c):]: vb for vb in vbs}
        await self._fill_gaps(sess, columns, fb, labels=refresh)
        if refresh:
            keep = set(self.column_sets()[1])
            keep |= {fb[p] for t in self._tables for p in self._label_primaries(t.spec)}
            self._meta = {c: columns.get(c, {}) for c in keep}
            self._meta_at = time.monotonic()
        return columns

    def _meta_complete(self, columns: dict[Oid, Column]) -> bool:
        """True when every row has the cached scale, type and label cells it needs."""
        for t in self._tables:
            rows = self._rows(t, columns)
            for c in t.spec.columns:
                need = [(sf.column, t.pos(sf.join)) for sf in c.scale_from]
                if c.type_filter and c.type_filter.column:
                    need.append((c.type_filter.column, t.pos(c.type_filter.join)))
                for col, pos in need:
                    have = columns.get(col, {})
                    if any(_join(i, pos) not in have for i in rows):
                        return False
            for lbl in t.spec.labels.values():
                if lbl.column is None:
                    continue
                pos = t.pos(lbl.join)
                have = columns.get(lbl.column, {})
                alt = columns.get(lbl.fallback, {}) if lbl.fallback else {}
                if any(_join(i, pos) not in have and _join(i, pos) not in alt for i in rows):
                    return False
        return True

    async def _fill_gaps(self, sess: SnmpSession, columns: dict[Oid, Column], fb: dict[Oid, Oid],
                         labels: bool = True) -> None:
        """GET fallback cells for rows whose primary column is missing while the table has the row.

        Label fallbacks are cached with the other meta columns, so they are fetched on refreshes only.
        """
        want: list[Oid] = []
        for t in self._tables:
            rows = self._rows(t, columns)
            primaries = [c.oid for c in t.spec.columns if c.fallback]
            if labels:
                primaries += self._label_primaries(t.spec)
            for primary in primaries:
                if primary in self._absent or primary not in columns:
                    continue
                have = columns[primary]
                want.extend(fb[primary] + idx for idx in rows if idx not in have)
        if not want:
            return
        want = list(dict.fromkeys(want))
        for vb in await sess.get(want):
            if vb.tag in wire.EXCEPTIONS:
                continue
            for fallback in fb.values():
                if vb.oid[: len(fallback)] == fallback:
                    columns.setdefault(fallback, {})[vb.oid[len(fallback):]] = vb

    @staticmethod
    def _label_primaries(spec: TableSpec) -> list[Oid]:
        return [lbl.column for lbl in spec.labels.values() if lbl.column and lbl.fallback]

    def _rows(self, t: _Table, columns: dict[Oid, Column]) -> list[Index]:
        """The table's rows: every index seen in any of its value columns (primary or fallback)."""
        seen: dict[Index, None] = {}
        for c in t.spec.columns:
            for oid in (c.oid, c.fallback.oid if c.fallback else None):
                if oid is not None:
                    seen.update(dict.fromkeys(columns.get(oid, {})))
        if t.spec.index:
            n = len(t.spec.index)
            return [i for i in seen if len(i) == n]
        return list(seen)

    # -- evaluation -------------------------------------------------------------------------

    def _eval_table(self, t: _Table, data: _PollData, now: float) -> Iterable[Reading]:
        spec = t.spec
        names = spec.index or []
        filters = [(f, t.pos(f.join)) for f in spec.filter]
        for idx in self._rows(t, data.columns):
            if any(not f.keeps(_as_int(vb_number(data.cell(f.column, _join(idx, pos))))) for f, pos in filters):
                continue
            labels = self._labels(t, data, idx, names)
            row_labels: dict[tuple[str, ...], Labels] = {}
            for c in spec.columns:
                value_spec: ValueSpec = c
                column = c.oid
                vb = data.cell(c.oid, idx)
                if vb is None and c.fallback is not None:
                    vb, value_spec, column = data.cell(c.fallback.oid, idx), c.fallback, c.fallback.oid
                if vb is None:
                    continue
                metric, scale, offset, transform = c.metric, None, None, None
                if c.type_filter:
                    tf = c.type_filter
                    if tf.column is not None:
                        sel = _as_int(vb_number(data.cell(tf.column, _join(idx, t.pos(tf.join)))))
                    else:
                        assert tf.index is not None
                        k = spec.part(tf.index)
                        sel = idx[k] if k < len(idx) else None
                    metric = None
                    for case in tf.cases:
                        if sel in case.value and all(_matches(labels.get(m.label), m.regex) for m in case.match):
                            metric, scale, offset, transform = case.metric, case.scale, case.offset, case.transform
                            break
                if metric is None:
                    continue
                value = self._value(value_spec, vb, (column, idx), metric, data, idx, t,
                                    scale, offset, transform)
                if value is not None:
                    d = CATALOG[metric]
                    lt = row_labels.get(d.labels)
                    if lt is None:  # metrics of one row mostly share a label set: build it once
                        lt = row_labels[d.labels] = make_labels({k: v for k, v in labels.items() if k in d.labels})
                    yield Reading(self.name, metric, lt, value, d.kind, now)

    def _labels(self, t: _Table, data: _PollData, idx: Index, names: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        fields: dict[str, str] | None = None
        for name, spec in t.spec.labels.items():
            if spec.static is not None:
                out[name] = spec.static
                continue
            value: str | None = None
            if spec.column is not None:
                key = _join(idx, t.pos(spec.join))
                value = vb_text(data.cell(spec.column, key))
                if value is None and spec.fallback is not None:
                    value = vb_text(data.cell(spec.fallback, key))
                if value is None:
                    continue
            if spec.regex is not None:
                m = re.search(spec.regex, value or "")
                if not m:
                    continue
                value = m.group(1) if m.groups() else m.group(0)
            if spec.template is not None:
                if fields is None:
                    fields = {"index": ".".join(map(str, idx))}
                    fields.update({f"i{k}": str(v) for k, v in enumerate(idx)})
                    fields.update({n: str(idx[k]) for k, n in enumerate(names) if k < len(idx)})
                value = _format(spec, {**fields, "value": value or ""})
            if value:
                out[name] = value
        return out

    def _value(
        self,
        spec: ValueSpec,
        vb: VarBind,
        key: tuple[Oid, Index],
        metric: str,
        data: _PollData,
        idx: Index,
        t: _Table | None,
        case_scale: float | None = None,
        case_offset: float | None = None,
        case_transform: str | None = None,
    ) -> float | None:
        raw = vb_number(vb)
        if raw is None:
            return None
        if spec.sentinels and raw in spec.sentinels:
            return None
        value: float
        if spec.enum is not None:
            mapped = spec.enum.get(int(raw), spec.enum_default)
            if mapped is None:
                return None
            value = mapped
        elif CATALOG[metric].kind is Kind.COUNTER and isinstance(raw, int):
            bits = spec.bits or (32 if vb.tag == wire.COUNTER32 else 64)
            value = float(self.unwrapper.update(key, raw, bits))
        else:
            value = float(raw)
        for sf in spec.scale_from:
            if t is None:
                sib = data.scalars.get(sf.column)
                sib = None if sib is None or sib.tag in wire.EXCEPTIONS else sib
            else:
                sib = data.cell(sf.column, _join(idx, t.pos(sf.join)))
            x = _as_int(vb_number(sib))
            if x is None:
                return None  # without its scale the value would be off by powers of ten
            value *= sf.factor(x)
        value = value * (spec.scale if case_scale is None else case_scale * spec.scale)
        value += spec.offset if case_offset is None else case_offset
        transform = case_transform or spec.transform
        if transform is not None:
            watts_to_mw = 1000.0 if transform == "w_to_dbm" else 1.0
            if value <= 0:
                return None  # no light: dBm is undefined
            value = 10.0 * math.log10(value * watts_to_mw)
        return value if math.isfinite(value) else None

    def _eval_scalars(self, data: _PollData, now: float) -> Iterable[Reading]:
        for s in self._scalars:
            vb = data.scalars.get(s.oid)
            if vb is None or vb.tag in wire.EXCEPTIONS:
                continue
            value = self._value(s, vb, (s.oid, ()), s.metric, data, (), None)
            if value is not None:
                yield _reading(self.name, s.metric, s.labels, value, now)


def _as_int(v: int | float | None) -> int | None:
    return None if v is None else int(v)


def _matches(value: str | None, regex: str | None) -> bool:
    if value is None:
        return False
    return regex is None or re.search(regex, value) is not None


def _format(spec: LabelSpec, fields: dict[str, str]) -> str:
    assert spec.template is not None
    try:
        return spec.template.format(**fields)
    except (KeyError, IndexError):
        return ""  # an index shorter than the table declares; the label is left off


def _reading(device: str, metric: str, labels: dict[str, str], value: float, now: float) -> Reading:
    d = CATALOG[metric]
    allowed = d.labels
    return Reading(device, metric, make_labels({k: v for k, v in labels.items() if k in allowed}),
                   value, d.kind, now)

