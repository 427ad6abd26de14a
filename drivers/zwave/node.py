"""A lock node as zwave-js knows it: its capabilities from the interview, its state from values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from zwave_js_server.const import CommandClass, NodeStatus
from zwave_js_server.model.node import Node
from zwave_js_server.model.value import Value

from bridge.model import LockIdentity, StatusUpdate
from drivers.zwave import mapping
from drivers.zwave.codes import CodeSlots


def _value(node: Node, command_class: int, prop: str, key: int | str | None = None) -> Any:
    for value in node.values.values():
        if (
            value.command_class == command_class
            and value.endpoint in (0, None)
            and value.property_ == prop
            and (key is None or value.property_key == key)
        ):
            return value.value
    return None


def node_status(node: Node) -> bool:
    """Dead nodes are offline; alive, awake and asleep (a battery node between wake-ups) are not."""
    return node.status != NodeStatus.DEAD


def snapshot(node: Node) -> StatusUpdate:
    keypad_mode = _value(node, CommandClass.USER_CODE, "keypadMode")
    return StatusUpdate(
        online=node_status(node),
        lock_state=mapping.lock_state(_value(node, CommandClass.DOOR_LOCK, "currentMode")),
        door_open=mapping.door_open(_value(node, CommandClass.DOOR_LOCK, "doorStatus")),
        battery_level=mapping.battery_level(_value(node, CommandClass.BATTERY, "level")),
        keypad={"mode": keypad_mode} if isinstance(keypad_mode, int) else None,
    )


class LockNode:
    def __init__(self, native_id: str, node_id: int) -> None:
        self.native_id = native_id
        self.node_id = node_id
        self.node: Node | None = None
        self.codes: CodeSlots | None = None
        # Which server connection the lock was last adopted on.
        self.connection = 0
        self.probed = False
        self.announced = False
        self.bulk = False
        self.week_day_slots = 0
        self.year_day_slots = 0

    def _require(self) -> Node:
        assert self.node is not None
        return self.node

    def _versions(self) -> dict[int, int]:
        return {cc.id: cc.version for cc in self._require().command_classes}

    def slot_count(self) -> int | None:
        """The interview creates one userIdStatus value per slot the lock has."""
        node = self._require()
        if CommandClass.USER_CODE not in self._versions():
            return None
        slots = {
            value.property_key
            for value in node.values.values()
            if value.command_class == CommandClass.USER_CODE
            and value.property_ == "userIdStatus"
            and isinstance(value.property_key, int)
        }
        return max(slots) if slots else None

    async def probe(self, call: Callable[..., Awaitable[Any]]) -> None:
        """Ask what the interview keeps to itself: multi-code sets and schedule slots.

        Once per lock and driver run; a lock that cannot be asked is tried on its next adoption.
        """
        versions = self._versions()
        if versions.get(CommandClass.USER_CODE, 0) >= 2:
            caps = await call(CommandClass.USER_CODE, "getCapabilities", what="code capabilities")
            self.bulk = isinstance(caps, dict) and caps.get("supportsMultipleUserCodeSet") is True
        if CommandClass.SCHEDULE_ENTRY_LOCK in versions:
            slots = await call(
                CommandClass.SCHEDULE_ENTRY_LOCK, "getNumSlots", what="schedule slots"
            )
            if isinstance(slots, dict):
                self.week_day_slots = int(slots.get("numWeekDaySlots") or 0)
                self.year_day_slots = int(slots.get("numYearDaySlots") or 0)
        self.probed = True

    def schedule_slots(self) -> tuple[int, int]:
        return self.week_day_slots, self.year_day_slots

    def cached_codes_masked(self) -> bool:
        node = self._require()
        return any(
            mapping.is_masked(value.value)
            for value in node.values.values()
            if value.command_class == CommandClass.USER_CODE and value.property_ == "userCode"
        )

    def identity(self, max_code_length: int) -> LockIdentity:
        node = self._require()
        config = node.device_config
        manufacturer = (config.manufacturer if config else None) or (
            f"0x{node.manufacturer_id:04x}" if node.manufacturer_id is not None else None
        )
        model = (
            (config.label if config else None)
            or node.label
            or (f"0x{node.product_type or 0:04x}:0x{node.product_id or 0:04x}")
        )
        masked = self.cached_codes_masked() or (self.codes is not None and self.codes.masked)
        week, year = self.schedule_slots()
        caps = mapping.capabilities(
            self.slot_count(),
            can_read_codes=not masked,
            native_scheduling=week > 0 and year > 0,
            max_code_length=max_code_length,
        )
        return LockIdentity(
            native_id=self.native_id,
            protocol=mapping.PROTOCOL,
            manufacturer=manufacturer,
            model=model,
            capabilities=caps,
        )

    @staticmethod
    def value_update(value: Value) -> StatusUpdate | None:
        if value.command_class == CommandClass.DOOR_LOCK:
            if value.property_ == "currentMode":
                return StatusUpdate(online=True, lock_state=mapping.lock_state(value.value))
            if value.property_ == "doorStatus":
                door = mapping.door_open(value.value)
                return StatusUpdate(online=True, door_open=door) if door is not None else None
        if value.command_class == CommandClass.BATTERY and value.property_ == "level":
            level = mapping.battery_level(value.value)
            return StatusUpdate(online=True, battery_level=level) if level is not None else None
        return None
