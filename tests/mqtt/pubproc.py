"""A publisher in its own process, fed synthetic outcomes, for tests that ``kill -9`` it.

Usage: ``python -m tests.mqtt.pubproc '{"url": ..., "state_dir": ..., "devices": 5, "interval": 0.02}'``.
Prints ``started`` once running. Runs until killed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from agent.mqtt import MqttPublisher
from tests.mqtt.conftest import AGENT, RACK, SITE, mqtt_settings
from tests.mqtt.util import outcome


async def main(opts: dict[str, object]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    settings = mqtt_settings(str(opts["url"]))
    pub = MqttPublisher(SITE, RACK, AGENT, settings, str(opts["state_dir"]), backoff_min=0.2, backoff_max=1.0)
    task = asyncio.create_task(pub.run())
    devices = [f"pdu-{i}" for i in range(int(opts.get("devices", 5)))]  # type: ignore[call-overload]
    interval = float(opts.get("interval", 0.05))  # type: ignore[arg-type]
    print("started", flush=True)
    while not task.done():
        for d in devices:
            pub.on_poll(outcome(d, n_readings=10))
        await asyncio.sleep(interval)
    await task


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
