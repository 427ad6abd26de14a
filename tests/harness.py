"""The bridge's core in process, on a simulated radio, with an injectable clock.

The code conformance suite runs on it for every protocol: requests go through the
same `Api.handle` as MQTT requests do, and the simulator tells the device's truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.api import Api
from bridge.codes.api import CodeApi
from bridge.codes.clock import FakeClock
from bridge.codes.manager import CodeManager
from bridge.codes.vault import Vault
from bridge.config import (
    BleConfig,
    BleSimulatorConfig,
    Config,
    ZigbeeConfig,
    ZigbeeSimulatorConfig,
)
from bridge.daemon import DRIVERS, load_driver
from bridge.driver import LockDriver, SimulatorControl
from bridge.model import Event
from bridge.registry import LockRegistry
from bridge.store import Store

START = datetime.fromisoformat("2026-03-24T08:00:00+01:00")  # a Tuesday, before the DST change


def zigbee_config(**simulator: Any) -> dict[str, Any]:
    options = {"locks": 2, "latency_ms": 0, "seed": 11, **simulator}
    return {
        "zigbee": ZigbeeConfig(
            enabled=True,
            radio="simulator",
            command_timeout=2,
            simulator=ZigbeeSimulatorConfig(**options),
        )
    }


def ble_config(*, driver: dict[str, Any] | None = None, **simulator: Any) -> dict[str, Any]:
    """Simulated Nuki locks, paired on discovery; `driver` overrides BleConfig options."""
    options = {"locks": 2, "latency_ms": 0, "seed": 11, "timezone": "Europe/Berlin", **simulator}
    settings: dict[str, Any] = {
        "enabled": True,
        "backend": "simulator",
        "pair_in_pairing_mode": True,
        "keypad_slots": options.get("slots", 100),
        "command_timeout": 2,
        "connect_timeout": 1,
        "retries": 0,
        "retry_delay": 0.01,
        **(driver or {}),
    }
    return {
        "zigbee": ZigbeeConfig(enabled=False),
        "ble": BleConfig(**settings, simulator=BleSimulatorConfig(**options)),
    }


class Harness:
    def __init__(
        self,
        state_dir: Path,
        config: Config,
        clock: FakeClock,
        simulator: SimulatorControl | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.config = config
        self.clock = clock
        self.events: list[Event] = []
        # A simulator the driver does not own (e.g. a Z-Wave stack shared by a test session).
        self._simulator = simulator

    async def start(self) -> None:
        self.store = Store(self.state_dir / "lockbridge.db")
        await self.store.open()
        self.registry = LockRegistry(self.config.locks, clock=self.clock.now)
        vault = Vault.open(self.state_dir)
        self.manager = CodeManager(self.registry, self.store, vault, self.config, clock=self.clock)
        await self.manager.load()
        # One driver per harness: the first protocol the config enables.
        protocol = next(name for name in DRIVERS if getattr(self.config, name).enabled)
        self.driver: LockDriver = load_driver(protocol, self.registry, self.config)
        self.registry.attach(self.driver)
        self.api = Api(
            self.registry,
            self.store,
            command_timeout=5,
            config_summary={},
            is_connected=lambda: True,
            extra_commands=CodeApi(
                self.manager, expose_codes=self.config.mqtt.expose_codes
            ).commands(),
        )
        self._run = asyncio.create_task(self.manager.run(), name="harness-codes")
        await self.driver.start()
        sim = self._simulator or self.driver.simulator()
        assert sim is not None
        self.sim: SimulatorControl = sim

    async def stop(self) -> None:
        self._run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._run
        await self.manager.drain()
        await self.driver.stop()
        await self.store.close()

    @property
    def lock_ids(self) -> list[str]:
        return [lock.lock_id for lock in self.registry.locks()]

    async def request(self, command: str, **payload: Any) -> dict[str, Any]:
        return await self.api.handle(command, json.dumps(payload, default=str).encode())

    async def ok(self, command: str, **payload: Any) -> dict[str, Any]:
        response = await self.request(command, **payload)
        assert response["status"] == "ok", response
        data: dict[str, Any] = response["data"]
        return data

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every lock's plan is empty (or the lock cannot be worked on)."""
        async with asyncio.timeout(timeout):
            while True:
                busy = [
                    lock.lock_id
                    for lock in self.registry.locks()
                    if lock.status.online
                    and (
                        self.manager.plan_for(lock)
                        or (
                            self.manager.view(lock).can_read
                            and lock.lock_id not in self.manager.scanned
                        )
                        or self.manager.probes.get(lock.lock_id)
                    )
                ]
                if not busy:
                    break
                await asyncio.sleep(0.01)
        # Let the last confirmation's bookkeeping and events finish (the store writes in a
        # thread, so a loaded machine needs more than a few turns of the loop).
        for _ in range(20):
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        self.collect()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)

    async def wait_event(self, event_type: str, **fields: Any) -> Event:
        """The first event (already seen or coming) of this type with these fields."""

        def found() -> Event | None:
            return next(
                (
                    e
                    for e in self.collect()
                    if e.event_type == event_type
                    and all(e.fields.get(k) == v for k, v in fields.items())
                ),
                None,
            )

        await self.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def wait_online(self, lock_id: str, online: bool = True) -> None:
        await self.wait_for(lambda: self.registry.get(lock_id).status.online is online)

    def collect(self) -> list[Event]:
        _, events = self.registry.outbox.take()
        self.events.extend(events)
        return self.events

    def event_types(self, access_code_id: str | None = None) -> list[str]:
        self.collect()
        return [
            e.event_type
            for e in self.events
            if access_code_id is None or e.fields.get("access_code_id") == access_code_id
        ]

    def native(self, lock_id: str) -> str:
        return self.registry.native_id(lock_id)

    async def true_slots(self, lock_id: str) -> dict[int, dict[str, Any]]:
        return {slot["slot"]: slot for slot in await self.sim.slots(self.native(lock_id))}

    def frames(self, lock_id: str) -> int:
        return self.sim.radio_operations(self.native(lock_id))


@contextlib.asynccontextmanager
async def harness(
    state_dir: Path,
    *,
    clock: FakeClock | None = None,
    simulator: SimulatorControl | None = None,
    **config: Any,
) -> AsyncIterator[Harness]:
    settings = {"state_dir": state_dir, "timezone": "Europe/Berlin", **zigbee_config(), **config}
    settings["codes"] = {
        "scan_delay": 0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        **settings.get("codes", {}),
    }
    bench = Harness(
        state_dir, Config.model_validate(settings), clock or FakeClock(START), simulator
    )
    await bench.start()
    try:
        yield bench
    finally:
        await bench.stop()
