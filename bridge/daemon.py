"""The daemon: drivers, lock registry, store and MQTT wired together under one TaskGroup."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from bridge import sdnotify
from bridge.api import Api
from bridge.codes.api import CodeApi
from bridge.codes.manager import CodeManager
from bridge.codes.vault import Vault
from bridge.config import Config
from bridge.driver import LockDriver
from bridge.mqtt import MqttLink, quiet_stale_socket_errors
from bridge.registry import LockRegistry
from bridge.simcontrol import SimulatorApi
from bridge.store import Store
from bridge.util import backoff_delay
from bridge.webpass.api import WebPassApi
from bridge.webpass.http import WebPassServer
from bridge.webpass.manager import WebPassManager

log = logging.getLogger(__name__)

# Drivers are loaded by name so that the core never imports a radio library.
DRIVERS = {
    "zigbee": "drivers.zigbee:ZigbeeDriver",
    "zwave": "drivers.zwave:ZWaveDriver",
    "ble": "drivers.ble:BleDriver",
}

SHUTDOWN_STEP_TIMEOUT = 3.0


def load_driver(name: str, registry: LockRegistry, config: Config) -> LockDriver:
    module_name, class_name = DRIVERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    driver: LockDriver = cls(registry, getattr(config, name), config.state_dir)
    return driver


class Bridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.state_dir / "lockbridge.db", event_history=config.event_history)
        self.registry = LockRegistry(config.locks)
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.link: MqttLink | None = None
        self.web: WebPassServer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, on_ready: Callable[[float], None] | None = None) -> None:
        started = time.monotonic()
        quiet_stale_socket_errors(asyncio.get_running_loop())
        config = self.config
        await self.store.open()
        try:
            vault = await asyncio.to_thread(Vault.open, config.state_dir)
            codes = CodeManager(self.registry, self.store, vault, config)
            await codes.load()
            passes = WebPassManager(self.registry, self.store, config.web_pass)
            await passes.load()
            drivers = [
                load_driver(name, self.registry, config)
                for name in DRIVERS
                if getattr(config, name).enabled
            ]
            for driver in drivers:
                self.registry.attach(driver)
            api = Api(
                self.registry,
                self.store,
                command_timeout=config.command_timeout,
                config_summary=config.summary(),
                is_connected=lambda: self.link is not None and self.link.connected,
                extra_commands={
                    **CodeApi(codes, expose_codes=config.mqtt.expose_codes).commands(),
                    **WebPassApi(passes).commands(),
                },
            )
            simulator = SimulatorApi(self.registry).handle if config.simulator_control else None
            self.link = link = MqttLink(
                config.mqtt,
                self.registry,
                api,
                homeassistant=config.homeassistant,
                simulator=simulator,
            )
            async with asyncio.TaskGroup() as group:
                mqtt_task = group.create_task(link.run(), name="mqtt")
                codes_task = group.create_task(codes.run(), name="codes")
                pump = group.create_task(self._pump(link), name="outbox-pump")
                await asyncio.gather(*(self._start_driver(driver) for driver in drivers))
                await self._start_web(passes, api)
                link.set_ready()
                await link.wait_connected()
                elapsed = time.monotonic() - started
                log.info("ready in %.2f s with %d locks", elapsed, len(self.registry.locks()))
                sdnotify.notify("READY=1")
                self.ready.set()
                if on_ready:
                    on_ready(elapsed)
                watchdog = group.create_task(self._watchdog(), name="watchdog")
                await self._stopping.wait()
                log.info("stopping")
                sdnotify.notify("STOPPING=1")
                await self._bounded(self._stop_web(), "stopping web passes")
                watchdog.cancel()
                codes_task.cancel()
                await self._bounded(codes.drain(), "saving access codes")
                for driver in drivers:
                    await self._bounded(driver.stop(), f"stopping driver {driver.protocol}")
                await self._bounded(self._flush(link), "flushing events")
                pump.cancel()
                link.stop()
                await self._bounded(asyncio.shield(mqtt_task), "publishing offline")
                mqtt_task.cancel()
        finally:
            await self._stop_web()
            await self.store.close()
        log.info("stopped")

    async def _start_web(self, passes: WebPassManager, api: Api) -> None:
        if self.config.web_pass.enabled:
            self.web = WebPassServer(passes, api.actuate, ZoneInfo(self.config.timezone))
            await self.web.start()

    async def _stop_web(self) -> None:
        if self.web is not None:
            await self.web.stop()

    async def _start_driver(self, driver: LockDriver) -> None:
        attempt = 0
        while True:
            try:
                await driver.start()
                return
            except Exception as err:
                delay = backoff_delay(attempt, 60.0, base=1.0)
                attempt += 1
                log.error(
                    "driver %s failed to start: %s; retrying in %.1f s", driver.protocol, err, delay
                )
                await driver.stop()
                if attempt >= 5:
                    raise
                await asyncio.sleep(delay)

    async def _pump(self, link: MqttLink) -> None:
        """Persist what the drivers report, then hand it to MQTT."""
        outbox = self.registry.outbox
        while True:
            await outbox.wakeup.wait()
            await self._drain(link)

    async def _drain(self, link: MqttLink) -> None:
        dirty, events = self.registry.outbox.take()
        if events:
            await self.store.add_events(events)
        for lock_id in dirty:
            lock = self.registry.get(lock_id)
            await self.store.save_lock(
                lock.lock_id, lock.identity.native_id, lock.protocol, lock.to_json()
            )
        link.publish_later(dirty, events)

    async def _flush(self, link: MqttLink) -> None:
        await self._drain(link)
        await link.flushed()

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        if interval is None:
            return
        while True:
            # Pinged from the event loop itself, so a blocked or dead loop stops the pings.
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    @staticmethod
    async def _bounded(work: Awaitable[object], what: str) -> None:
        try:
            async with asyncio.timeout(SHUTDOWN_STEP_TIMEOUT):
                await work
        except TimeoutError:
            log.warning("%s took longer than %.0f s; going on", what, SHUTDOWN_STEP_TIMEOUT)


def state_dir_ok(path: Path) -> str | None:
    """A reason the state directory cannot be used, or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create state directory {path}: {err.strerror}"
    probe = path / ".write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        return f"state directory {path} is not writable: {err.strerror}"
    return None
