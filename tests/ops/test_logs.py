"""One line per event, logfmt or JSON, journald priorities, and secrets that never reach the output."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logs import (
    EventFormatter,
    clear_secrets,
    get_logger,
    journal_stream_matches,
    log_event,
    register_secret,
    setup_logging,
)

TS = re.compile(r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("pymodbus", "pysnmp", "mqtt")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lvl in quiet.items():
        logging.getLogger(n).setLevel(lvl)
    logging.captureWarnings(False)
    clear_secrets()


def _lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_logfmt_event_with_fields() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    get_logger("agent.scheduler").info(
        "device_down", device="pdu-a", reason="timeout", error="no answer in 3s", n=3, up=False, x=None
    )
    (line,) = _lines(buf)
    assert TS.match(line)
    assert line.endswith(
        'level=info logger=agent.scheduler event=device_down device=pdu-a reason=timeout '
        'error="no answer in 3s" n=3 up=false x=null'
    )


def test_levels_and_threshold() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "warning", stream=buf, env={})
    log = get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert [re.search(r"level=(\w+)", ln).group(1) for ln in _lines(buf)] == [  # type: ignore[union-attr]
        "warning", "error", "critical"
    ]


def test_field_names_never_clash_with_the_envelope() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    get_logger("t").info("e", level="x", event="y", ts="z", msg="m", **{"bad key": 1})
    (line,) = _lines(buf)
    assert "level=info" in line and "f_level=x f_event=y f_ts=z msg=m bad_key=1" in line


def test_bind_and_percent_args_and_log_event() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "debug", stream=buf, env={})
    log = get_logger("agent.mqtt").bind(broker="b1")
    log.info("connected to %s:%d", "b1", 8883, tls=True)
    log_event(logging.getLogger("plain"), "warning", "spool_full", bytes=67108864)
    log_event(log, logging.ERROR, "publish_failed", topic="a/b")
    a, b, c = _lines(buf)
    assert 'event="connected to b1:8883" broker=b1 tls=true' in a
    assert "level=warning logger=plain event=spool_full bytes=67108864" in b
    assert "level=error logger=agent.mqtt event=publish_failed broker=b1 topic=a/b" in c


def test_exception_stays_on_one_line() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        get_logger("t").exception("poll_crashed", device="d")
    (line,) = _lines(buf)
    assert 'exc="Traceback (most recent call last):\\n' in line
    assert "RuntimeError: kaput" in line


def test_json_lines() -> None:
    buf = io.StringIO()
    setup_logging("json", "info", stream=buf, env={})
    get_logger("agent.http").info("listening", address="0.0.0.0:9847", port=9847, tls=False)
    (line,) = _lines(buf)
    doc = json.loads(line)
    assert doc.pop("ts").endswith("Z")
    assert doc == {
        "level": "info", "logger": "agent.http", "event": "listening",
        "address": "0.0.0.0:9847", "port": 9847, "tls": False,
    }


def test_journal_stream_detection_against_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    with path.open("w") as out:
        st = os.fstat(out.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_stream_matches(out, env)
        assert not journal_stream_matches(out, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not journal_stream_matches(out, {"JOURNAL_STREAM": "garbage"})
        assert not journal_stream_matches(out, {})
        assert not journal_stream_matches(io.StringIO(), env)  # no file behind it
        setup_logging("logfmt", "debug", stream=out, env=env)
        log = get_logger("agent.daemon")
        log.debug("d")
        log.info("started", devices=3)
        log.warning("w")
        log.error("e")
        log.critical("c")
    lines = path.read_text().splitlines()
    assert lines[1] == "<6>level=info logger=agent.daemon event=started devices=3"
    assert [ln[:3] for ln in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert not any("ts=" in ln for ln in lines)


def test_redirected_stdout_keeps_timestamps(tmp_path: Path) -> None:
    # Inherited JOURNAL_STREAM that names some other file: not the journal.
    other = tmp_path / "other"
    other.write_text("")
    st = os.stat(other)
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    get_logger("t").info("x")
    assert TS.match(_lines(buf)[0])


def test_secrets_are_redacted_everywhere() -> None:
    secret = 'pa ss"w\\rd'
    register_secret(secret + "\n")  # as read from a file, trailing newline and all
    register_secret("public-community")
    register_secret("")  # ignored, must not blank every line
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    log = get_logger("agent.config")
    log.info("loaded", password=secret, community="public-community")
    log.info(f"connecting with {secret}")
    logging.getLogger("aiomqtt-like").warning("auth failed for %s", secret)
    log.info("nested", opts={"password": secret})
    try:
        raise ValueError(f"bad key {secret}")
    except ValueError:
        log.exception("boom")
    setup_logging("json", "info", stream=buf, env={})
    log.info("loaded", password=secret, note=f"x{secret}y")
    out = buf.getvalue()
    escaped_forms = {secret, json.dumps(secret)[1:-1], secret.replace('"', '\\"'), "public-community"}
    for form in escaped_forms:
        assert form not in out
    assert out.count("***") >= 7
    assert len(out.splitlines()) == 6


def test_formatter_alone_redacts_too() -> None:
    register_secret("hunter2")
    rec = logging.LogRecord("n", logging.INFO, __file__, 1, "pw is hunter2", None, None)
    assert "hunter2" not in EventFormatter("logfmt").format(rec)


def test_noisy_libraries_are_quieted() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "debug", stream=buf, env={})
    logging.getLogger("pymodbus.logging").info("frame 01 03 00 00")
    logging.getLogger("pysnmp").debug("encoding")
    logging.getLogger("mqtt").info("received PUBACK")
    logging.getLogger("pymodbus.logging").warning("connection lost")
    assert [ln.split("event=")[1] for ln in _lines(buf)] == ['"connection lost"']


def test_setup_twice_replaces_the_handler() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    setup_logging("logfmt", "info", stream=buf, env={})
    get_logger("t").info("once")
    assert len(_lines(buf)) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="log format 'xml'"):
        setup_logging("xml", "info", stream=io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level 'loud'"):
        setup_logging("logfmt", "loud", stream=io.StringIO())


def test_percent_style_key_value_messages_become_fields() -> None:
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    log = logging.getLogger("rackpulse.scheduler")
    log.warning("device_down device=%s reason=%s error=%r", "pdu-b", "timeout", "no answer in 3s")
    log.info("started version=%s devices=%d", "0.1.0", 3)
    log.info("plain sentence with device=x inside")
    a, b, c = _lines(buf)
    assert a.endswith('event=device_down device=pdu-b reason=timeout error="no answer in 3s"')
    assert b.endswith("event=started version=0.1.0 devices=3")
    assert c.endswith('event="plain sentence with device=x inside"')
    setup_logging("json", "info", stream=buf, env={})
    log.warning("device_down device=%s error=%r", "pdu-b", "it's down")
    doc = json.loads(_lines(buf)[-1])
    assert (doc["event"], doc["device"], doc["error"]) == ("device_down", "pdu-b", "it's down")


def test_secret_in_repr_form_is_redacted() -> None:
    secret = "it's\\secret"
    register_secret(secret)
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    logging.getLogger("x").error("auth_failed key=%r", secret)
    logging.getLogger("x").error("auth_failed detail=%s", repr(secret))
    out = buf.getvalue()
    assert secret not in out and repr(secret)[1:-1] not in out and "secret" not in out
    assert out.count("***") == 2


def test_register_config_secrets_from_a_real_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import parse_config
    from agent.logs import register_config_secrets

    (tmp_path / "mqtt.pass").write_text("mqtt-pw-123\n")
    (tmp_path / "pdu.community").write_text("pdu-comm-456\n")
    (tmp_path / "tor.auth").write_text("tor-auth-789\n")
    monkeypatch.setenv("TOR_PRIV", "tor-priv-000")
    cfg = parse_config(f"""
site: dc1
rack: r42
mqtt: {{url: "mqtt://127.0.0.1:1883", username: u, password_file: {tmp_path}/mqtt.pass,
        ca_file: {tmp_path}/missing-ca.pem}}
devices:
  - {{name: pdu-b, driver: snmp, profile: apc-rpdu2, host: 127.0.0.1, community_file: {tmp_path}/pdu.community}}
  - name: tor-1
    driver: snmp
    profiles: [if-mib]
    host: 127.0.0.1
    version: 3
    v3: {{user: monitor, auth_protocol: SHA256, auth_key_file: {tmp_path}/tor.auth,
          priv_protocol: AES, priv_key_env: TOR_PRIV}}
  - {{name: pdu-a, driver: modbus, profile: raritan-px-modbus, host: 127.0.0.1}}
""")
    assert register_config_secrets(cfg.top, *cfg.devices) == 4
    buf = io.StringIO()
    setup_logging("logfmt", "info", stream=buf, env={})
    get_logger("t").info("dump", a="mqtt-pw-123", b="pdu-comm-456", c="tor-auth-789", d="tor-priv-000",
                         user="monitor")
    assert buf.getvalue().count("***") == 4 and "user=monitor" in buf.getvalue()
