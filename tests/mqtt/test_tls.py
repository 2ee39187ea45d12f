"""TLS to mosquitto with a CA the test makes: verified by default, client certs, wrong CA refused."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.mqtt_broker import MosquittoBroker, TlsFiles, start_mosquitto
from tests.mqtt.conftest import MakePublisher, require_binary, require_mosquitto
from tests.mqtt.tlsutil import Pki, make_ca, make_pki
from tests.mqtt.util import Collector, assert_complete, outcome


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[MosquittoBroker]:
    b = start_mosquitto(binary=require_mosquitto(), tls=TlsFiles(str(pki.server_cert), str(pki.server_key)))
    yield b
    b.stop()


def client_ctx(pki: Pki, client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if client_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


async def test_tls_with_the_right_ca(tls_broker: MosquittoBroker, pki: Pki, make_publisher: MakePublisher) -> None:
    assert tls_broker.url.startswith("mqtts://")
    async with Collector(tls_broker.port, "rackpulse/#", tls_context=client_ctx(pki)) as col:
        pub = await make_publisher(tls_broker.url, ca_file=str(pki.ca))
        for _ in range(3):
            pub.on_poll(outcome("pdu-a"))
        await col.wait_for(lambda c: c.count() == 3)
        assert_complete(col.seqs(), {"pdu-a": 3})


async def test_tls_client_certificate(pki: Pki, make_publisher: MakePublisher) -> None:
    files = TlsFiles(str(pki.server_cert), str(pki.server_key), cafile=str(pki.ca), require_certificate=True)
    broker = start_mosquitto(binary=require_mosquitto(), tls=files)
    try:
        async with Collector(broker.port, "rackpulse/#", tls_context=client_ctx(pki, client_cert=True)) as col:
            pub = await make_publisher(broker.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                                       key_file=str(pki.client_key))
            pub.on_poll(outcome("pdu-a"))
            await col.wait_for(lambda c: c.count() == 1)
    finally:
        broker.stop()


async def test_wrong_ca_is_refused_with_a_clear_error_and_retried(
    tls_broker: MosquittoBroker, tmp_path: Path, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rackpulse.mqtt")
    other_ca, _, _ = make_ca(tmp_path / "other", "some other CA")
    pub = await make_publisher(tls_broker.url, ca_file=str(other_ca))
    pub.on_poll(outcome("pdu-a"))
    for _ in range(60):
        failures = [r for r in caplog.records if "CERTIFICATE_VERIFY_FAILED" in r.getMessage()]
        if len(failures) >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(failures) >= 3, f"expected repeated CERTIFICATE_VERIFY_FAILED lines, got: {caplog.text}"
    assert "mqtt_connect_failed" in failures[0].getMessage()
    assert pub.stats()["mqtt_connected"] == 0
    assert pub.stats()["mqtt_spooled_messages"] == 1  # kept for when the CA is fixed


async def test_system_store_is_the_default_and_rejects_a_private_ca(
    tls_broker: MosquittoBroker, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rackpulse.mqtt")
    pub = await make_publisher(tls_broker.url)  # no ca_file: verify against the system store
    for _ in range(40):
        if "CERTIFICATE_VERIFY_FAILED" in caplog.text:
            break
        await asyncio.sleep(0.1)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert pub.stats()["mqtt_connected"] == 0


async def test_password_file_is_used_and_never_logged(
    tmp_path: Path, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Pa55"
    pwdb = tmp_path / "broker.passwd"
    tool = require_binary("mosquitto_passwd")
    subprocess.run([tool, "-c", "-b", str(pwdb), "rackpulse", secret], check=True)
    broker = start_mosquitto(binary=require_mosquitto(), extra=[f"password_file {pwdb}"])
    broker.stop()
    broker.anonymous = False  # the same broker, now requiring a login
    broker.start()
    try:
        good = tmp_path / "mqtt.pass"
        good.write_text(secret + "\n")
        async with Collector(broker.port, "rackpulse/#", username="rackpulse", password=secret) as col:
            pub = await make_publisher(broker.url, username="rackpulse", password_file=str(good))
            pub.on_poll(outcome("pdu-a"))
            await col.wait_for(lambda c: c.count() == 1)
            bad = tmp_path / "wrong.pass"
            bad.write_text("nope\n")
            refused = await make_publisher(broker.url, username="rackpulse", password_file=str(bad),
                                           client_id="rackpulse-other", state_dir=tmp_path / "other")
            for _ in range(40):
                if "mqtt_connect_failed" in caplog.text:
                    break
                await asyncio.sleep(0.1)
            assert "mqtt_connect_failed" in caplog.text
            assert refused.stats()["mqtt_connected"] == 0
        assert secret not in caplog.text and "nope" not in caplog.text
    finally:
        broker.stop()
