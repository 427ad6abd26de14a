"""The simulator control API for simulated Nuki locks (SPEC §8).

Slots: Nuki numbers keypad codes itself, and the bridge's slots are the driver's mapping
onto those ids. The control API speaks in the bridge's slots, translated through the
driver's mapping, and shows each code's Nuki id beside it (`code_id`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.driver import SimulatorControl
from bridge.errors import InvalidPayloadError, LockNotFoundError
from drivers.ble.identity import address_of
from drivers.ble.nuki import wire
from drivers.ble.nuki.const import DoorSensor, LockAction, Trigger
from simulators.ble.air import SimulatedAir
from simulators.ble.lock import Refused
from simulators.ble.peripheral import NukiPeripheral

if TYPE_CHECKING:
    from drivers.ble.driver import BleDriver


class BleSimulatorControl(SimulatorControl):
    def __init__(self, air: SimulatedAir, driver: BleDriver) -> None:
        self.air = air
        self._driver = driver

    def peripheral(self, native_id: str) -> NukiPeripheral:
        try:
            return self.air.lock(address_of(native_id))
        except KeyError:
            raise LockNotFoundError(f"no simulated Nuki lock {native_id}") from None

    async def _changed(self, peripheral: NukiPeripheral) -> None:
        peripheral.lock.external_change()
        await peripheral.advertise()

    async def keypad_entry(self, native_id: str, pin: str) -> None:
        peripheral = self.peripheral(native_id)
        if peripheral.lock.keypad(pin):
            await peripheral.advertise()

    async def manual(self, native_id: str, *, lock: bool) -> None:
        peripheral = self.peripheral(native_id)
        action = LockAction.LOCK if lock else LockAction.UNLOCK
        peripheral.lock.move(action, Trigger.MANUAL, 0, "")
        await self._changed(peripheral)

    async def door(self, native_id: str, *, is_open: bool) -> None:
        peripheral = self.peripheral(native_id)
        peripheral.lock.data.door = DoorSensor.OPENED if is_open else DoorSensor.CLOSED
        await self._changed(peripheral)

    async def set_online(self, native_id: str, *, online: bool) -> None:
        await self.peripheral(native_id).set_online(online)

    async def battery(self, native_id: str, level: int) -> None:
        peripheral = self.peripheral(native_id)
        peripheral.lock.data.battery = level
        await self._changed(peripheral)

    async def add_code(self, native_id: str, slot: int, pin: str) -> None:
        """A code programmed with the Nuki app: it rewrites the code behind `slot`, if any,
        else it is stored under the code id `slot` (where free), which the bridge shows in
        that slot when the slot is free."""
        peripheral = self.peripheral(native_id)
        lock = peripheral.lock
        code_id = self._driver.book.code_id(native_id, slot)
        try:
            number = int(pin)
            if code_id is not None and code_id in lock.data.codes:
                old = lock.data.codes[code_id]
                lock.update_code(wire.KeypadCode(code_id, number, old.name, True, old.limit), 0)
            else:
                lock.add_code(number, "app", None, 0, code_id=slot)
        except (Refused, ValueError):
            raise InvalidPayloadError(
                f"slot {slot}: the lock refused the code (Nuki takes 6 digits 1-9, "
                "not starting with 12, each code once)"
            ) from None
        await self._changed(peripheral)

    def lose_frames(self, native_id: str, count: int) -> None:
        """Connection trouble on demand: the lock drops the next `count` connections mid-command."""
        self.peripheral(native_id).drop_next = count

    def lose_answers(self, native_id: str, count: int) -> None:
        """The lock carries out the next `count` commands, then drops the link unanswered."""
        self.peripheral(native_id).drop_answers = count

    async def slots(self, native_id: str) -> list[dict[str, Any]]:
        lock = self.peripheral(native_id).lock
        result = []
        for code in sorted(lock.data.codes.values(), key=lambda c: c.code_id):
            limit = code.limit
            result.append(
                {
                    "slot": self._driver.book.slot_of(native_id, code.code_id),
                    "code_id": code.code_id,
                    "status": "enabled" if code.enabled else "disabled",
                    "code": f"{code.code:06d}",
                    "time_limit": None
                    if limit is None
                    else {
                        "allowed_from": limit.allowed_from and limit.allowed_from.isoformat(),
                        "allowed_until": limit.allowed_until and limit.allowed_until.isoformat(),
                        "weekdays": wire.weekday_mask(limit.weekdays),
                        "from_minute": limit.from_minute,
                        "until_minute": limit.until_minute,
                    },
                }
            )
        return result

    def radio_operations(self, native_id: str) -> int:
        return self.peripheral(native_id).lock.operations
