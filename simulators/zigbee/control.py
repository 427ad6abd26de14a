"""The simulator control API for simulated Zigbee locks (SPEC §8)."""

from __future__ import annotations

from typing import Any

import zigpy.types as t
from zigpy.zcl import foundation

from bridge.driver import SimulatorControl
from bridge.errors import InvalidPayloadError, LockNotFoundError
from simulators.zigbee.doorlock import PIN_DUPLICATE, PIN_MEMORY_FULL, SimDoorLock
from simulators.zigbee.radio import SimulatedRadio


def ieee_of(native_id: str) -> t.EUI64:
    digits = native_id.removeprefix("zigbee-")
    return t.EUI64.convert(":".join(digits[i : i + 2] for i in range(0, len(digits), 2)))


class ZigbeeSimulatorControl(SimulatorControl):
    def __init__(self, radio: SimulatedRadio) -> None:
        self._radio = radio

    def _lock(self, native_id: str) -> SimDoorLock:
        try:
            return self._radio.lock_by_ieee(ieee_of(native_id))
        except (KeyError, ValueError):
            raise LockNotFoundError(f"no simulated Zigbee lock {native_id}") from None

    async def keypad_entry(self, native_id: str, pin: str) -> None:
        self._lock(native_id).keypad_entry(pin)

    async def manual(self, native_id: str, *, lock: bool) -> None:
        self._lock(native_id).manual(lock=lock)

    async def door(self, native_id: str, *, is_open: bool) -> None:
        self._lock(native_id).door(is_open=is_open)

    async def set_online(self, native_id: str, *, online: bool) -> None:
        self._radio.set_online(self._lock(native_id).ieee, online=online)

    async def battery(self, native_id: str, level: int) -> None:
        self._lock(native_id).set_battery(level)

    async def add_code(self, native_id: str, slot: int, pin: str) -> None:
        # The control API counts slots as the bridge does (from 1); ZCL user ids count from 0.
        status = self._lock(native_id).add_code_at_keypad(slot - 1, pin)
        if status == PIN_DUPLICATE:
            raise InvalidPayloadError(
                f"slot {slot}: the lock already has this code in another slot"
            )
        if status == PIN_MEMORY_FULL:
            raise InvalidPayloadError(f"slot {slot}: the lock has no such slot")
        if status != foundation.Status.SUCCESS:
            raise InvalidPayloadError(
                f"slot {slot}: the lock refused the code (length or characters)"
            )

    def lose_frames(self, native_id: str, count: int) -> None:
        """Radio trouble on demand: the next `count` frames to the lock get no answer."""
        self._radio.lose_frames(self._lock(native_id).ieee, count)

    async def slots(self, native_id: str) -> list[dict[str, Any]]:
        return [{**slot, "slot": slot["slot"] + 1} for slot in self._lock(native_id).true_slots()]

    def radio_operations(self, native_id: str) -> int:
        return self._lock(native_id).frames_received
