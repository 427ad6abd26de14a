"""`lockbridge demo`: the bridge on simulated locks, with an embedded broker if none is given."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import tempfile
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bridge.broker import EmbeddedBroker
from bridge.config import (
    BleConfig,
    BleSimulatorConfig,
    CodesConfig,
    Config,
    MqttConfig,
    WebPassConfig,
    ZigbeeConfig,
    ZigbeeSimulatorConfig,
    ZWaveConfig,
    ZWaveSimulatorConfig,
)
from bridge.daemon import Bridge
from bridge.logs import setup_logging

log = logging.getLogger("lockbridge.demo")


def parse_broker(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise SystemExit(f"--broker {url}: expected mqtt://HOST:PORT")
    try:
        port = parts.port or 1883
    except ValueError:
        raise SystemExit(f"--broker {url}: the port must be a number from 1 to 65535") from None
    return parts.hostname, port


def zwave_locks(requested: int | None) -> int:
    """How many simulated Z-Wave locks the demo gets: the npm stack must be installed."""
    from simulators.zwave.stack import missing_packages  # noqa: PLC0415 - demo only

    reason = missing_packages()
    if reason is None:
        return 1 if requested is None else requested
    if requested:
        print(f"No simulated Z-Wave locks: {reason}.", flush=True)
    elif requested is None:
        print(f"(Simulated Z-Wave locks need the Z-Wave JS stack: {reason}.)", flush=True)
    return 0


def demo_config(args: argparse.Namespace, host: str, port: int, state_dir: Path) -> Config:
    zwave = getattr(args, "zwave_locks", 0)
    return Config(
        mqtt=MqttConfig(host=host, port=port, base_topic=args.base_topic),
        state_dir=state_dir,
        log_level=args.log_level,
        simulator_control=True,
        # Simulated locks have no battery to spare: read their slots at once, so codes
        # created right after start-up are on the keypad within a second.
        codes=CodesConfig(scan_delay=0),
        zigbee=ZigbeeConfig(
            enabled=args.zigbee > 0,
            radio="simulator",
            simulator=ZigbeeSimulatorConfig(locks=args.zigbee, seed=1),
        ),
        ble=BleConfig(
            enabled=args.ble > 0,
            backend="simulator",
            pair_in_pairing_mode=True,
            simulator=BleSimulatorConfig(locks=args.ble, seed=1),
        ),
        web_pass=WebPassConfig(enabled=True, port=0),
        zwave=ZWaveConfig(
            enabled=zwave > 0,
            simulator=ZWaveSimulatorConfig(enabled=True, locks=zwave),
        ),
    )


def instructions(bridge: Bridge, host: str, port: int, elapsed: float) -> str:
    base = bridge.config.mqtt.base_topic
    locks = bridge.registry.locks()
    lock_id = locks[0].lock_id if locks else "<lock_id>"
    server = f"-h {host} -p {port}"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()

    def pub(topic: str, payload: str) -> str:
        return f"  mosquitto_pub {server} -t {topic} -m {shlex.quote(payload)}"

    lines = [
        "",
        f"lockbridge demo is ready in {elapsed:.2f} s: broker mqtt://{host}:{port}, base topic '{base}'",
        "Locks: " + (", ".join(f"{lock.lock_id} ({lock.protocol})" for lock in locks) or "none"),
        "",
        "Watch everything:",
        f"  mosquitto_sub {server} -v -t '{base}/#'",
        "Lock and unlock:",
        pub(f"{base}/locks/{lock_id}/set", '{"action": "unlock"}'),
        pub(f"{base}/bridge/request/lock/lock", f'{{"lock_id": "{lock_id}", "transaction": "t1"}}'),
        "Ask the bridge:",
        pub(f"{base}/bridge/request/lock/list", "{}"),
        pub(f"{base}/bridge/request/event/list", f'{{"lock_id": "{lock_id}", "limit": 5}}'),
        pub(f"{base}/bridge/request/health_check", "{}"),
        "Keypad codes (then type 823469 on the keypad below):",
        pub(
            f"{base}/bridge/request/access_code/create",
            f'{{"lock_id": "{lock_id}", "name": "gardener", "code": "823469"}}',
        ),
        pub(
            f"{base}/bridge/request/access_code/create",
            f'{{"lock_id": "{lock_id}", "name": "Tuesdays", '
            '"schedule": [{"days": ["tue"], "start": "10:00", "end": "12:00"}]}',
        ),
        pub(f"{base}/bridge/request/access_code/list", f'{{"lock_id": "{lock_id}"}}'),
        pub(f"{base}/bridge/request/unmanaged_access_code/list", "{}"),
        "A web pass (open the url of the answer in a browser):",
        pub(
            f"{base}/bridge/request/web_pass/create",
            f'{{"lock_ids": ["{lock_id}"], "name": "Guest", "ends_at": "{tomorrow}"}}',
        ),
        "Play the person at the door (answers on {base}/simulator/response/<action>):".replace(
            "{base}", base
        ),
        pub(
            f"{base}/simulator/request/add_code",
            f'{{"lock_id": "{lock_id}", "slot": 20, "pin": "246813"}}',
        ),
        pub(
            f"{base}/simulator/request/keypad_entry", f'{{"lock_id": "{lock_id}", "pin": "823469"}}'
        ),
        pub(
            f"{base}/simulator/request/keypad_entry", f'{{"lock_id": "{lock_id}", "pin": "246813"}}'
        ),
        pub(f"{base}/simulator/request/keypad_entry", f'{{"lock_id": "{lock_id}", "pin": "0000"}}'),
        pub(f"{base}/simulator/request/manual_lock", f'{{"lock_id": "{lock_id}"}}'),
        pub(f"{base}/simulator/request/door", f'{{"lock_id": "{lock_id}", "open": true}}'),
        pub(f"{base}/simulator/request/battery", f'{{"lock_id": "{lock_id}", "level": 9}}'),
        pub(f"{base}/simulator/request/set_online", f'{{"lock_id": "{lock_id}", "online": false}}'),
        pub(f"{base}/simulator/request/slots", f'{{"lock_id": "{lock_id}"}}'),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    # The radio libraries' interview chatter would bury the instructions; --log-level DEBUG shows it.
    setup_logging(
        args.log_level, "text", library_level="DEBUG" if args.log_level == "DEBUG" else "WARNING"
    )
    with suppress(KeyboardInterrupt):
        asyncio.run(_demo(args))
    return 0


async def _demo(args: argparse.Namespace) -> None:
    args.zwave_locks = zwave_locks(getattr(args, "zwave", None))
    async with AsyncExitStack() as stack:
        if args.broker:
            host, port = parse_broker(args.broker)
        else:
            broker = await stack.enter_async_context(EmbeddedBroker())
            host, port = "127.0.0.1", broker.port
        state_dir = args.state_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="lockbridge-demo-"))
        )
        bridge = Bridge(demo_config(args, host, port, state_dir))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run(
            on_ready=lambda elapsed: print(instructions(bridge, host, port, elapsed), flush=True)
        )
