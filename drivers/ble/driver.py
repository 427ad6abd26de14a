"""The Bluetooth LE driver on bleak; its first lock family is Nuki.

Nuki locks are not kept connected: the driver listens to their advertisements (a beacon
whose last bit says "something changed"), and connects briefly for each command or to
fetch news, one connection per lock at a time, retrying with backoff. On real hardware
bleak's default backend (BlueZ) is used; with `backend: simulator` a bleak backend on a
simulated air space, so the code below is the same in both cases.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from bridge.codes.vault import Vault
from bridge.config import BleConfig
from bridge.driver import DriverSink, LockDriver, SimulatorControl, SlotReading, SlotWrite
from bridge.errors import LockbridgeError, LockOfflineError, TransientError
from bridge.model import Capabilities, DriverEvent, EventType, LockIdentity, Method, StatusUpdate
from drivers.ble.identity import native_id
from drivers.ble.nuki import commands
from drivers.ble.nuki.const import (
    APPLE_COMPANY_ID,
    BEACON_PREFIX,
    KEYTURNER_SERVICE,
    PAIRING_SERVICE,
    LockAction,
)
from drivers.ble.nuki.keypad import CODE_RULES, SlotBook
from drivers.ble.nuki.session import Credentials, NukiSession
from drivers.ble.slots import KeypadSlots

log = logging.getLogger(__name__)

PROTOCOL = "ble"
CREDENTIALS_FILE = "ble-credentials.json"
SLOTS_FILE = "ble-keypad.json"
SETTLE_TIMEOUT = 10.0
# A flagged beacon is still on the air for a moment after the news was fetched.
BEACON_QUIET = 0.5
MAX_REFRESH_PAUSE = 60.0
_BEACON_UUID = uuid.UUID(KEYTURNER_SERVICE).bytes

# bleak logs GATT traffic at DEBUG; keep encrypted payloads out of the journal.
if logging.getLogger("bleak").level in (logging.NOTSET, logging.DEBUG):
    logging.getLogger("bleak").setLevel(logging.INFO)


class BleDriver(LockDriver):
    protocol = PROTOCOL

    def __init__(self, sink: DriverSink, config: BleConfig, state_dir: Path) -> None:
        super().__init__(sink)
        self._config = config
        self._state_dir = state_dir
        self._pin = config.resolved_security_pin()
        self._creds: dict[str, Credentials] = {}  # by native id
        self.book = SlotBook(state_dir / SLOTS_FILE)
        self.keypad = KeypadSlots(self)
        self._mutex: dict[str, asyncio.Lock] = {}
        self._online: dict[str, bool] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._quiet_until: dict[str, float] = {}
        self._scanner: BleakScanner | None = None
        self._air: Any = None
        self._client_backend: type[BaseBleakClient] | None = None
        self._scanner_backend: type[BaseBleakScanner] | None = None
        self._vault: Vault | None = None
        self._state = "stopped"
        self._file_lock = threading.Lock()
        self._heard: dict[str, float] = {}
        self._devices: dict[str, BLEDevice] = {}  # by address, as last advertised
        self._absence: asyncio.Task[None] | None = None
        self._refresh_failures: dict[str, int] = {}

    # Lifecycle

    async def start(self) -> None:
        self._state = "starting"
        await self.prepare()
        for native in self._creds:
            self._spawn(self._adopt(native), f"ble-adopt-{native}")
        try:
            scanner = BleakScanner(
                self._advertised,
                backend=self._scanner_backend,
                bluez={"adapter": self._config.adapter},
            )
            await scanner.start()
        except (BleakError, OSError) as err:
            self._state = "failed"
            raise TransientError(f"Bluetooth adapter {self._config.adapter}: {err}") from err
        self._scanner = scanner
        self._absence = asyncio.get_running_loop().create_task(
            self._watch_absence(), name="ble-absence"
        )
        await self._settle()
        self._state = "running"

    async def prepare(self) -> None:
        """Load the stored credentials and bring up the simulated air space if configured."""
        await asyncio.to_thread(self._state_dir.mkdir, parents=True, exist_ok=True)
        self._vault = await asyncio.to_thread(Vault.open, self._state_dir)
        await asyncio.to_thread(self._load)
        if self._config.backend == "simulator":
            module = importlib.import_module("simulators.ble.air")
            options = {
                **self._config.simulator.model_dump(),
                "state_file": str(self._state_dir / "ble-simulator.json"),
            }
            self._air = module.SimulatedAir(options)
            await self._air.start()
            self._client_backend, self._scanner_backend = self._air.backends()

    async def _settle(self) -> None:
        """Wait (bounded) until known locks are read and simulated locks in pairing mode paired."""
        expected = self._air.in_pairing_mode() if self._air is not None else set()
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while True:
                    self._progress.clear()
                    known = {c.address for c in self._creds.values()}
                    waiting = self._config.pair_in_pairing_mode and not expected <= known
                    if all(t.done() for t in self._tasks) and not waiting:
                        return
                    await self._progress.wait()
        except TimeoutError:
            log.warning("BLE: some locks were not ready within %.0f s", SETTLE_TIMEOUT)

    async def stop(self) -> None:
        absence, self._absence = self._absence, None
        if absence is not None:
            absence.cancel()
            await asyncio.gather(absence, return_exceptions=True)
        await self._cancel_tasks()
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await scanner.stop()
            except BleakError as err:
                log.warning("BLE scanner stop: %s", err)
        air, self._air = self._air, None
        if air is not None:
            await air.stop()
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        return {"state": self._state, "backend": self._config.backend, "locks": len(self._creds)}

    def simulator(self) -> SimulatorControl | None:
        if self._air is None:
            return None
        from simulators.ble.control import BleSimulatorControl  # noqa: PLC0415

        return BleSimulatorControl(self._air, self)

    # Credentials, sealed with the state directory's key

    def _load(self) -> None:
        self.book.load()
        path = self._state_dir / CREDENTIALS_FILE
        if not path.exists() or self._vault is None:
            return
        for native, sealed in json.loads(path.read_text(encoding="utf-8")).items():
            raw = json.loads(self._vault.unseal(sealed, f"ble:{native}"))
            self._creds[native] = Credentials.from_json(raw)

    async def _save_credentials(self) -> None:
        assert self._vault is not None
        vault = self._vault
        sealed = {
            native: vault.seal(json.dumps(c.to_json()), f"ble:{native}")
            for native, c in self._creds.items()
        }
        await asyncio.to_thread(self._write_credentials, json.dumps(sealed))

    def _write_credentials(self, text: str) -> None:
        with self._file_lock:
            path = self._state_dir / CREDENTIALS_FILE
            temporary = path.with_suffix(".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)

    # Pairing

    async def pair(self, address: str) -> str:
        """Pair with the Nuki at `address`, which must be in pairing mode; its native id."""
        native = native_id(address)
        async with self._mutex.setdefault(native, asyncio.Lock()):
            async with self._session(address) as session:
                creds = await session.pair()
            self._creds[native] = creds
            await self._save_credentials()
        log.info("BLE: paired with Nuki %s as authorization %d", address, creds.auth_id)
        await self._adopt(native)
        return native

    async def wait_for_pairing_mode(self, address: str | None) -> str:
        """The address of the next lock seen in pairing mode (bounded by the caller)."""
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def seen(device: BLEDevice, adv: AdvertisementData) -> None:
            wanted = address is None or device.address.upper() == address.upper()
            if PAIRING_SERVICE in adv.service_uuids and wanted and not found.done():
                found.set_result(device.address.upper())

        scanner = BleakScanner(
            seen, backend=self._scanner_backend, bluez={"adapter": self._config.adapter}
        )
        await scanner.start()
        try:
            return await found
        finally:
            await scanner.stop()

    # Advertisements

    def _advertised(self, device: BLEDevice, adv: AdvertisementData) -> None:
        address = device.address.upper()
        native = native_id(address)
        self._devices[address] = device
        if PAIRING_SERVICE in adv.service_uuids:
            if native not in self._creds and self._config.pair_in_pairing_mode:
                self._once(native, self._pair_quietly(address), f"ble-pair-{native}")
            return
        beacon = adv.manufacturer_data.get(APPLE_COMPANY_ID, b"")
        if native not in self._creds or not beacon.startswith(BEACON_PREFIX + _BEACON_UUID):
            return
        self._heard[native] = time.monotonic()
        news = bool(beacon[-1] & 0x01) or not self._online.get(native, False)
        if news and time.monotonic() >= self._quiet_until.get(native, 0.0):
            self._once(native, self._refresh(native), f"ble-refresh-{native}")

    async def _watch_absence(self) -> None:
        """Locks that stopped advertising are out of reach: show them offline (no radio use)."""
        limit = self._config.offline_after
        while True:
            await asyncio.sleep(min(limit / 2, 30.0))
            now = time.monotonic()
            for native, online in list(self._online.items()):
                if online and now - self._heard.get(native, now) > limit:
                    log.info("BLE lock %s: no beacon for %.0f s", native, limit)
                    self._set_online(native, online=False)

    async def _pair_quietly(self, address: str) -> None:
        try:
            await self.pair(address)
        except LockbridgeError as err:
            log.info("BLE: pairing with %s failed: %s", address, err.message)

    async def _adopt(self, native: str) -> None:
        caps = Capabilities(
            has_keypad=True,
            can_program_access_codes=self._pin is not None,
            can_read_access_codes=self._pin is not None,
            supports_native_scheduling=True,
            slot_range=self.slot_range,
            code_rules=CODE_RULES,
        )
        self._sink.lock_added(
            LockIdentity(native, PROTOCOL, "Nuki", "Smart Lock", caps), StatusUpdate(online=False)
        )
        self._online[native] = False
        await self._refresh(native)

    async def _refresh(self, native: str) -> None:
        """Fetch what changed at the lock: its state, new log entries, and if nothing else
        explains the beacon, its keypad codes."""
        quiet = BEACON_QUIET
        try:
            await self.with_session(native, self.keypad.fetch_news, "refresh")
            self._refresh_failures.pop(native, None)
        except LockbridgeError as err:
            # A lock that advertises but cannot be reached is tried less and less often.
            failures = self._refresh_failures[native] = self._refresh_failures.get(native, 0) + 1
            quiet = min(MAX_REFRESH_PAUSE, BEACON_QUIET * 2**failures)
            log.info("BLE lock %s: refresh failed: %s", native, err.message)
        finally:
            self._quiet_until[native] = time.monotonic() + quiet

    # Commands

    async def lock(self, native_id: str) -> bool:
        return await self._operate(native_id, LockAction.LOCK)

    async def unlock(self, native_id: str) -> bool:
        return await self._operate(native_id, LockAction.UNLOCK)

    async def _operate(self, native: str, action: LockAction) -> bool:
        async def work(session: NukiSession, creds: Credentials) -> None:
            self.count_radio_operation(native)
            states = await commands.lock_action(session, creds, action)
            if states is not None:
                self._sink.lock_status(native, commands.status_update(states))

        await self.with_session(native, work, action.name.lower())
        event = EventType.LOCK_LOCKED if action == LockAction.LOCK else EventType.LOCK_UNLOCKED
        self._sink.lock_event(native, DriverEvent(event, {"method": Method.REMOTE.value}))
        return True

    async def write_slot(self, native_id: str, write: SlotWrite) -> None:
        await self.keypad.write(native_id, write)

    async def read_slot(self, native_id: str, slot: int) -> SlotReading:
        return await self.keypad.read(native_id, slot)

    async def clear_slot(self, native_id: str, slot: int) -> None:
        await self.keypad.clear(native_id, slot)

    @property
    def security_pin(self) -> int | None:
        return self._pin

    @property
    def sink(self) -> DriverSink:
        return self._sink

    @property
    def slot_range(self) -> tuple[int, int]:
        return (1, self._config.keypad_slots)

    def credentials(self, native: str) -> Credentials:
        creds = self._creds.get(native)
        if creds is None:
            raise LockOfflineError(f"BLE lock {native} is not paired", lock_id=native)
        return creds

    # Sessions: one per lock at a time, retried with backoff

    def _session(self, address: str) -> NukiSession:
        return NukiSession(
            address,
            backend=self._client_backend,
            timeout=self._config.command_timeout,
            connect_timeout=self._config.connect_timeout,
            device=self._devices.get(address),
            adapter=self._config.adapter,
        )

    async def with_session[T](
        self,
        native: str,
        work: Callable[[NukiSession, Credentials], Awaitable[T]],
        what: str,
    ) -> T:
        creds = self.credentials(native)
        async with self._mutex.setdefault(native, asyncio.Lock()):
            attempt = 0
            while True:
                try:
                    async with self._session(creds.address) as session:
                        result = await work(session, creds)
                except TransientError as err:
                    if attempt >= self._config.retries:
                        if isinstance(err, LockOfflineError):
                            self._set_online(native, online=False)
                        err.lock_id = native
                        raise
                    delay = self._config.retry_delay * (2**attempt) * (0.5 + random.random())
                    log.info(
                        "BLE lock %s: %s failed (%s); retrying in %.2f s",
                        native,
                        what,
                        err.message,
                        delay,
                    )
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                self._set_online(native, online=True)
                self._heard[native] = time.monotonic()
                return result

    def _set_online(self, native: str, *, online: bool) -> None:
        if self._online.get(native) == online:
            return
        self._online[native] = online
        self._sink.lock_status(native, StatusUpdate(online=online))

    def _once(self, native: str, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` unless a task for this lock is already running (then drop it)."""
        running = self._busy.get(native)
        if running is not None and not running.done():
            work.close()
            return
        self._busy[native] = self._spawn(work, name)
