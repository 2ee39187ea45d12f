"""``rackpulse demo``: a simulated rack, the agent, /metrics, the status page and MQTT in one process.

Needs nothing beyond the package: it uses mosquitto when one is on PATH and otherwise an embedded
amqtt broker (the ``demo`` extra), only for the demo.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from agent.simulate import rack_config, start_rack


async def _start_broker() -> tuple[Any, str, int]:
    from agent.mqtt_broker import EmbeddedBroker, start_demo_broker

    handle = await start_demo_broker()
    return handle, "embedded amqtt" if isinstance(handle, EmbeddedBroker) else "mosquitto", handle.port


async def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``rackpulse demo``; runs until Ctrl-C."""
    from agent.daemon import Daemon
    from agent.logs import setup_logging

    setup_logging("logfmt", "info")
    work = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="rackpulse-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = None
    mqtt_url = None
    try:
        broker, kind, mport = await _start_broker()
        mqtt_url = f"mqtt://127.0.0.1:{mport}"
    except Exception as e:  # the demo still shows Prometheus and the status page without MQTT
        print(f"demo: no MQTT broker could be started ({e}); continuing without MQTT")
        kind, mport = "none", 0
    rack = await start_rack(args.pdus, args.switches, snmp_pdus=2, port_base=0,
                            secrets_dir=work / "secrets")
    cfg = rack_config(rack, state_dir=str(work / "state"), listen=args.listen, mqtt_url=mqtt_url, interval="5s")
    cfg_path = work / "rackpulse.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    host, _, port = args.listen.rpartition(":")
    base = f"http://{host}:{port}"
    watch = (f"mosquitto_sub -h 127.0.0.1 -p {mport} -t 'rackpulse/#' -v" if shutil.which("mosquitto_sub")
             else f"python -m agent.mqtt_watch 127.0.0.1 {mport}")
    print(f"""
rackpulse demo: {len(rack.devices)} simulated devices ({args.pdus} Modbus PDUs, {args.switches} switch, 2 SNMP PDUs)
  status page   {base}/
  metrics       {base}/metrics
  devices JSON  {base}/api/devices
  readiness     {base}/readyz
  MQTT ({kind})  {mqtt_url or 'disabled'}
  watch MQTT    {watch if mqtt_url else '-'}
  config        {cfg_path}
Polls every 5 s; the first readings appear within a few seconds. Ctrl-C stops everything.
""", flush=True)
    try:
        return await Daemon(str(cfg_path)).run()
    finally:
        await rack.stop()
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.aclose()
