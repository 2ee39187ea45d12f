"""Structured logging on stdout: one line per event, logfmt or JSON, journald-aware, secrets redacted.

Call sites log events with fields::

    log = get_logger(__name__)
    log.info("device_down", device="pdu-a", reason="timeout")
    # ts=2026-11-30T05:00:00.123Z level=info logger=agent.scheduler event=device_down device=pdu-a ...

A plain ``logging`` call whose message reads ``"event key=value ..."`` is split the same way, so
``log.warning("device_down device=%s", name)`` also yields ``event=device_down device=...``.

Under systemd (``JOURNAL_STREAM`` names our stdout) the timestamp is left out, since journald
stamps every line itself, and each line starts with a syslog priority such as ``<4>`` so
``journalctl -p warning`` works. Every value registered with :func:`register_secret` is
replaced by ``***`` in every line, whatever logger or library produced it.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

LogFormat = Literal["logfmt", "json"]

REDACTED = "***"

# Libraries that log per packet or per reconnect attempt at INFO/DEBUG.
NOISY_LOGGERS: tuple[str, ...] = (
    "pymodbus",
    "pysnmp",
    "mqtt",  # aiomqtt's default logger name
    "aiomqtt",
    "paho",
    "amqtt",
    "transitions",
    "websockets",
)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# syslog priorities journald understands as a line prefix (sd-daemon(3)).
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

_RESERVED = frozenset({"ts", "level", "logger", "event", "exc"})
# "device_down device=pdu-a reason='timeout'": an event name then key=value pairs, as older
# call sites write them with %-formatting; such messages are split into real fields.
_KV = r"""[A-Za-z_][A-Za-z0-9_.]*=(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]\S*|)"""
_EVENT_KV = re.compile(rf"^([A-Za-z_][A-Za-z0-9_.:-]*)((?: {_KV})+)$")
_ONE_KV = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S*)")
_FIELDS_ATTR = "rackpulse_fields"
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_NEEDS_QUOTES = re.compile(r'[\s="\\]')


# ---------------------------------------------------------------------------- secrets


class _SecretRegistry:
    """Known secret values and one compiled pattern that finds any of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            # Longest first, so a secret that contains another is hidden whole.
            alts = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in alts))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


_SECRETS = _SecretRegistry()


def register_secret(value: str | bytes | None) -> None:
    """Never log ``value``: every later log line shows ``***`` in its place.

    Call this for every password, community and key right after the config is loaded. Empty
    values are ignored. Each line of a multi-line secret is registered too.
    """
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    for part in {text, text.strip(), *text.splitlines()}:
        if part.strip():
            # Also the spellings a message gets from %r, JSON or logfmt quoting.
            for form in {part, repr(part)[1:-1], json.dumps(part)[1:-1], part.replace('"', '\\"')}:
                _SECRETS.add(form)


_SECRET_STEMS = ("password", "community", "key", "secret", "token")


def _secret_sources(model: object, seen: set[int]) -> Iterable[tuple[str | None, str | None, str]]:
    """(file, env, what) for every ``<stem>_file``/``<stem>_env`` secret in a model tree."""
    if id(model) in seen:
        return
    seen.add(id(model))
    fields = getattr(type(model), "model_fields", None)
    if isinstance(model, list | tuple):
        for item in model:
            yield from _secret_sources(item, seen)
        return
    if not fields:
        return
    names = set(fields)
    stems = {n.rsplit("_", 1)[0] for n in names if n.endswith(("_file", "_env"))}
    for stem in stems:
        if any(word in stem for word in _SECRET_STEMS):
            yield getattr(model, f"{stem}_file", None), getattr(model, f"{stem}_env", None), stem
    for n in names:
        yield from _secret_sources(getattr(model, n, None), seen)


def register_config_secrets(*models: object) -> int:
    """Register every secret a config names (password, community, key files and variables).

    Pass the validated config models (e.g. ``cfg.top`` and ``*cfg.devices``). Unreadable
    secrets are skipped: the config loader reports those. Returns how many were registered.
    """
    from drivers.config import read_secret  # the same reader the drivers use

    count = 0
    seen: set[int] = set()
    for model in models:
        for file, env, what in _secret_sources(model, seen):
            if not file and not env:
                continue
            try:
                value = read_secret(file, env, what)
            except ValueError:
                continue
            if value:
                register_secret(value)
                count += 1
    return count


def clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    _SECRETS.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    return _SECRETS.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites each record so no registered secret survives: message, fields and traceback.

    It runs before formatting, so secrets are hidden before JSON or logfmt escaping could
    change how they are spelled.
    """

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self._exc_formatter = formatter or logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not raise at the call site
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        fields = getattr(record, _FIELDS_ATTR, None)
        if fields:
            setattr(record, _FIELDS_ATTR, {k: _redact_value(v) for k, v in fields.items()})
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_value(v: object) -> object:
    if v is None or isinstance(v, bool | int | float):
        return v
    return redact(v if isinstance(v, str) else str(v))


# ---------------------------------------------------------------------------- formatting


def split_message(message: str) -> tuple[str, dict[str, object]]:
    """``"event k=v k2='x y'"`` -> ``("event", {"k": "v", "k2": "x y"})``; other text is left whole."""
    m = _EVENT_KV.match(message)
    if not m:
        return message, {}
    fields: dict[str, object] = {}
    for key, raw in _ONE_KV.findall(m.group(2)):
        value: object = raw
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw[1:-1]
        fields[key] = value
    return m.group(1), fields


def _timestamp(t: float) -> str:
    ms = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def _level_name(levelno: int) -> str:
    name = logging.getLevelName(levelno)
    return name.lower() if isinstance(name, str) else str(levelno)


def _priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return _PRIORITY[logging.DEBUG]


def _logfmt_value(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    if s == "" or _NEEDS_QUOTES.search(s):
        s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        s = s.replace("\t", "\\t")
        return f'"{s}"'
    return s


def _json_value(v: object) -> object:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


class EventFormatter(logging.Formatter):
    """Renders a record as one logfmt or JSON line.

    ``journal`` leaves out the timestamp and prefixes the syslog priority (``<6>``).
    """

    def __init__(self, fmt: LogFormat = "logfmt", journal: bool = False) -> None:
        super().__init__()
        if fmt not in ("logfmt", "json"):
            raise ValueError(f"log format {fmt!r} is not one of 'logfmt', 'json'")
        self.fmt: LogFormat = fmt
        self.journal = journal

    def pairs(self, record: logging.LogRecord) -> list[tuple[str, object]]:
        """The ordered key/value pairs of one record."""
        out: list[tuple[str, object]] = []
        if not self.journal:
            out.append(("ts", _timestamp(record.created)))
        out.append(("level", _level_name(record.levelno)))
        out.append(("logger", record.name))
        event, inline = split_message(record.getMessage())
        out.append(("event", event))
        fields: Mapping[str, object] = {**inline, **(getattr(record, _FIELDS_ATTR, None) or {})}
        for k, v in fields.items():
            key = _KEY_BAD.sub("_", k) or "_"
            out.append((f"f_{key}" if key in _RESERVED else key, v))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out.append(("exc", record.exc_text))
        if record.stack_info:
            out.append(("stack", record.stack_info))
        return out

    def format(self, record: logging.LogRecord) -> str:
        pairs = self.pairs(record)
        if self.fmt == "json":
            line = json.dumps({k: _json_value(v) for k, v in pairs}, ensure_ascii=False)
        else:
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs)
        # Whatever slipped through the filter (e.g. a formatter used on its own) is caught here.
        line = redact(line)
        if self.journal:
            line = f"<{_priority(record.levelno)}>{line}"
        return line


# ---------------------------------------------------------------------------- call-site API


class EventLogger:
    """A logger whose calls take an event name plus keyword fields.

    ``log.warning("poll_failed", device="pdu-a", reason="timeout")``. ``%``-style arguments and
    the keywords ``exc_info``, ``stack_info`` and ``stacklevel`` work as in :mod:`logging`; any
    other keyword (even ``level`` or ``msg``) is a field.
    """

    _STD = ("exc_info", "stack_info", "stacklevel")

    def __init__(self, logger: logging.Logger, bound: Mapping[str, object] | None = None) -> None:
        self.logger = logger
        self.bound: dict[str, object] = dict(bound or {})

    def bind(self, **fields: object) -> EventLogger:
        """A child logger that adds ``fields`` to every event (e.g. ``device=``)."""
        return EventLogger(self.logger, {**self.bound, **fields})

    def isEnabledFor(self, level: int) -> bool:
        """Whether an event at ``level`` would be emitted."""
        return self.logger.isEnabledFor(level)

    def log(self, level: int, event: str, /, *args: object, **fields: Any) -> None:
        """Log ``event`` at ``level`` with ``fields``."""
        if not self.logger.isEnabledFor(level):
            return
        std = {k: fields.pop(k) for k in self._STD if k in fields}
        stacklevel = int(std.pop("stacklevel", 1)) + 2  # skip log() and the level method
        self.logger.log(
            level,
            event,
            *args,
            exc_info=std.get("exc_info"),
            stack_info=bool(std.get("stack_info", False)),
            stacklevel=stacklevel,
            extra={_FIELDS_ATTR: {**self.bound, **fields}},
        )

    def debug(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at DEBUG."""
        self.log(logging.DEBUG, event, *args, **fields)

    def info(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at INFO."""
        self.log(logging.INFO, event, *args, **fields)

    def warning(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at WARNING."""
        self.log(logging.WARNING, event, *args, **fields)

    def error(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at ERROR."""
        self.log(logging.ERROR, event, *args, **fields)

    def critical(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at CRITICAL."""
        self.log(logging.CRITICAL, event, *args, **fields)

    def exception(self, event: str, /, *args: object, **fields: Any) -> None:
        """Log at ERROR with the current exception's traceback."""
        fields.setdefault("exc_info", True)
        self.log(logging.ERROR, event, *args, **fields)


def get_logger(name: str, **bound: object) -> EventLogger:
    """An :class:`EventLogger` for ``name``, optionally with fields bound to every event."""
    return EventLogger(logging.getLogger(name), bound)


def log_event(
    logger: logging.Logger | EventLogger, level: int | str, event: str, /, **fields: object
) -> None:
    """Log ``event`` with ``fields`` at ``level`` (a logging level or 'debug'/'info'/...)."""
    lvl = _LEVELS[level.lower()] if isinstance(level, str) else level
    if isinstance(logger, EventLogger):
        logger.log(lvl, event, **fields)
    else:
        logger.log(lvl, event, extra={_FIELDS_ATTR: dict(fields)}, stacklevel=2)


# ---------------------------------------------------------------------------- setup


def journal_stream_matches(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True if ``JOURNAL_STREAM`` (``dev:inode``) names the file behind ``stream``.

    systemd sets it for services whose stdout/stderr is connected to journald; a redirected
    stdout (``rackpulse run > file``) inherits the variable but no longer matches.
    """
    raw = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = raw.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


_HANDLER_MARK = "_rackpulse_handler"


def setup_logging(
    fmt: LogFormat = "logfmt",
    level: int | str = "info",
    *,
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    journal: bool | None = None,
    quiet: Iterable[str] = NOISY_LOGGERS,
    quiet_level: int = logging.WARNING,
) -> logging.Handler:
    """Route all logging to one line per event on ``stream`` (stdout); return the handler.

    ``journal=None`` detects journald from ``JOURNAL_STREAM``. Calling it again (on reload)
    replaces the previous rackpulse handler instead of adding a second one.
    """
    out = sys.stdout if stream is None else stream
    lvl = _LEVELS.get(level.lower()) if isinstance(level, str) else level
    if lvl is None:
        raise ValueError(f"log level {level!r} is not one of {sorted(_LEVELS)}")
    use_journal = journal_stream_matches(out, env) if journal is None else journal
    formatter = EventFormatter(fmt, journal=use_journal)
    handler = logging.StreamHandler(out)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter(formatter))

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in quiet:
        logging.getLogger(name).setLevel(max(quiet_level, lvl))
    if lvl > logging.DEBUG:
        # pymodbus warns on every failed connect; the driver already turns each failure into a
        # DeviceError, which the scheduler logs once per state change.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    return handler
