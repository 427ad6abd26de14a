"""The `lockbridge` command: run, check-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bridge import __version__
from bridge.config import Config, load_config
from bridge.daemon import Bridge, state_dir_ok
from bridge.errors import ConfigError
from bridge.logs import setup_logging

log = logging.getLogger("lockbridge")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lockbridge", description="Smart-lock bridge to MQTT")
    parser.add_argument("--version", action="version", version=f"lockbridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the bridge daemon")
    run.add_argument("--config", "-c", type=Path, required=True, help="YAML configuration file")

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)

    demo = commands.add_parser("demo", help="run the bridge on simulated locks")
    demo.add_argument("--broker", help="mqtt://HOST:PORT of an existing broker (default: embedded)")
    demo.add_argument(
        "--state-dir", type=Path, help="where to keep state (default: a temporary folder)"
    )
    demo.add_argument("--zigbee", type=int, default=1, metavar="N", help="simulated Zigbee locks")
    demo.add_argument(
        "--zwave",
        type=int,
        default=None,
        metavar="N",
        help="simulated Z-Wave locks on the real Z-Wave JS stack (default: 1 when installed)",
    )
    demo.add_argument("--ble", type=int, default=1, metavar="N", help="simulated Nuki (BLE) locks")
    demo.add_argument("--base-topic", default="lockbridge", help="MQTT base topic")
    demo.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    ble = commands.add_parser("ble", help="Bluetooth LE locks")
    ble_commands = ble.add_subparsers(dest="ble_command", required=True)
    pair = ble_commands.add_parser("pair", help="pair with a Nuki lock in pairing mode")
    pair.add_argument("--config", "-c", type=Path, required=True, help="YAML configuration file")
    pair.add_argument("--address", help="the lock's Bluetooth address (default: the first seen)")
    pair.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the lock")

    args = parser.parse_args(argv)
    if args.command == "ble":
        # Loaded by name: the core never imports a radio library.
        ble_cli = importlib.import_module("drivers.ble.cli")
        result: int = ble_cli.pair_command(args.config, args.address, args.timeout)
        return result
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "run":
        return run_daemon(args.config)
    from bridge.demo import run_demo  # noqa: PLC0415 - the demo pulls in simulators only when asked

    return run_demo(args)


def check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as err:
        print(err.message, file=sys.stderr)
        return 2
    drivers = ", ".join(config.summary()["drivers"]) or "none"
    print(f"{path}: OK (drivers: {drivers}; base topic: {config.mqtt.base_topic})")
    return 0


def run_daemon(path: Path) -> int:
    try:
        config = load_config(path)
        config.mqtt.resolved_password()
    except ConfigError as err:
        print(err.message, file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format, journald="JOURNAL_STREAM" in os.environ)
    if problem := state_dir_ok(config.state_dir):
        log.error("%s", problem)
        return 2
    return serve(config)


def serve(config: Config, on_ready: Callable[[Bridge, float], None] | None = None) -> int:
    async def main() -> None:
        bridge = Bridge(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run(on_ready=(lambda elapsed: on_ready(bridge, elapsed)) if on_ready else None)

    try:
        asyncio.run(main())
    except ConfigError as err:
        log.error("%s", err.message)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
