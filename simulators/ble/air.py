"""The simulated air space: Bumble's in-process LocalLink with Nuki locks and one central.

The locks' memory (keys, authorizations, keypad codes, log) persists in a JSON state
file, so a restarted bridge finds them as a real lock would be found.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from simulators.ble import backend
from simulators.ble.lock import NukiData, SimNukiLock, new_lock_data
from simulators.ble.peripheral import NukiPeripheral
from simulators.flash import Flash

log = logging.getLogger(__name__)

CENTRAL_ADDRESS = "C0:00:00:00:00:01"

# Bumble logs every HCI and ATT packet at DEBUG, encrypted Nuki payloads included.
for _name in ("bumble",):
    if logging.getLogger(_name).level in (logging.NOTSET, logging.DEBUG):
        logging.getLogger(_name).setLevel(logging.WARNING)


def lock_address(seed: int, index: int) -> str:
    return f"D4:{seed % 256:02X}:00:00:{index // 256:02X}:{index % 256:02X}"


class SimulatedAir:
    """Simulated Nuki locks and the central the bleak backend drives."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        controller = Controller(
            "lockbridge-central", link=self.link, public_address=CENTRAL_ADDRESS
        )
        self.central = Device(
            name="lockbridge",
            address=Address(CENTRAL_ADDRESS),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        self.connecting = asyncio.Lock()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.zone = ZoneInfo(str(options.get("timezone", "UTC")))
        self.locks: dict[str, NukiPeripheral] = {}
        path = options.get("state_file")
        self._flash = Flash(
            Path(path) if path else None,
            lambda: {address: p.lock.data.to_json() for address, p in self.locks.items()},
            "ble-sim",
        )
        self._started = False

    def backends(self) -> tuple[type[BaseBleakClient], type[BaseBleakScanner]]:
        return backend.backends(self)

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.zone).replace(tzinfo=None)

    def reachable(self, address: str) -> bool:
        peripheral = self.locks.get(address.upper())
        return peripheral is not None and peripheral.online

    async def start(self) -> None:
        if self._started:
            return
        saved = await self._flash.read()
        seed = int(self.options.get("seed") or 0)
        rng = random.Random(seed)
        pin = int(self.options.get("security_pin", 1234))
        latency = float(self.options.get("latency_ms", 0)) / 1000
        for index in range(int(self.options.get("locks", 1))):
            address = lock_address(seed, index)
            stored = saved.get(address)
            data = NukiData.from_json(stored) if stored else new_lock_data(rng.getrandbits(32), pin)
            if not stored:
                data.battery = rng.randint(60, 100)
            lock = SimNukiLock(
                data,
                max_codes=int(self.options.get("slots", 100)),
                clock=self.local_now,
                changed=self._flash.changed,
            )
            # A fresh lock waits in pairing mode, as if its button had been held.
            lock.pairing_mode = (
                bool(self.options.get("pairing_mode", True)) and not data.authorizations
            )
            self.locks[address] = NukiPeripheral(lock, address, self.link, latency)
        await self.central.power_on()
        for peripheral in self.locks.values():
            await peripheral.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for peripheral in self.locks.values():
            await peripheral.stop()
        if self.central.is_scanning:
            await self.central.stop_scanning()
        await self.central.power_off()
        await self._flash.close()

    def in_pairing_mode(self) -> set[str]:
        return {address for address, p in self.locks.items() if p.lock.pairing_mode}

    def lock(self, address: str) -> NukiPeripheral:
        return self.locks[address.upper()]
