"""Pure translations from Zigbee Door Lock cluster values to the lockbridge model.

Kept free of I/O so the protocol semantics can be tested without a radio.
"""

from __future__ import annotations

from typing import Any

import zigpy.types as t
from zigpy.zcl.clusters.closures import DoorState, OperationEvent, OperationEventSource
from zigpy.zcl.clusters.closures import LockState as ZclLockState

from bridge.model import (
    Capabilities,
    CodeRules,
    DriverEvent,
    EventType,
    LockIdentity,
    LockState,
    Method,
)

PROTOCOL = "zigbee"

_LOCKED_EVENTS = frozenset(
    {
        OperationEvent.Lock,
        OperationEvent.OnTouchLock,
        OperationEvent.KeyLock,
        OperationEvent.AutoLock,
        OperationEvent.ScheduleLock,
        OperationEvent.Manual_Lock,
    }
)
_UNLOCKED_EVENTS = frozenset(
    {
        OperationEvent.Unlock,
        OperationEvent.KeyUnlock,
        OperationEvent.ScheduleUnlock,
        OperationEvent.Manual_Unlock,
    }
)
_DENIED_REASONS = {
    OperationEvent.LockFailureInvalidPINorID: "invalid_code",
    OperationEvent.UnlockFailureInvalidPINorID: "invalid_code",
    OperationEvent.LockFailureInvalidSchedule: "outside_schedule",
    OperationEvent.UnlockFailureInvalidSchedule: "outside_schedule",
}
# Some event codes say how the bolt moved whatever source the lock reports.
_METHOD_BY_EVENT = {
    OperationEvent.OnTouchLock: Method.MANUAL,
    OperationEvent.KeyLock: Method.MANUAL,
    OperationEvent.KeyUnlock: Method.MANUAL,
    OperationEvent.Manual_Lock: Method.MANUAL,
    OperationEvent.Manual_Unlock: Method.MANUAL,
    OperationEvent.AutoLock: Method.AUTOMATIC,
    OperationEvent.ScheduleLock: Method.AUTOMATIC,
    OperationEvent.ScheduleUnlock: Method.AUTOMATIC,
}
_METHOD_BY_SOURCE = {
    OperationEventSource.Keypad: Method.KEYPAD,
    OperationEventSource.RF: Method.REMOTE,
    OperationEventSource.Manual: Method.MANUAL,
}
# ZCL "no user" markers: a keypad event without a known slot.
NO_USER = 0xFFFF
_NO_USER = frozenset({NO_USER, 0xFF})

BATTERY_UNKNOWN = 0xFF
DEFAULT_SLOTS = 30


def native_id(ieee: t.EUI64) -> str:
    """`zigbee-` and the IEEE address as 16 hex digits, most significant first."""
    return f"{PROTOCOL}-{str(ieee).replace(':', '').lower()}"


def lock_state(value: int | None) -> LockState:
    if value is None:
        return LockState.UNKNOWN
    match value:
        case ZclLockState.Locked:
            return LockState.LOCKED
        case ZclLockState.Unlocked:
            return LockState.UNLOCKED
        case ZclLockState.Not_fully_locked:
            return LockState.JAMMED
    return LockState.UNKNOWN


def door_open(value: int | None) -> bool | None:
    """True/False for an open/closed door; None when the sensor cannot tell."""
    if value in (DoorState.Open, DoorState.Error_forced_open):
        return True
    if value == DoorState.Closed:
        return False
    return None


def battery_level(half_percent: int | None) -> int | None:
    """battery_percentage_remaining counts half percents (0..200); 0xFF is unknown."""
    if half_percent is None or half_percent == BATTERY_UNKNOWN:
        return None
    return max(0, min(100, round(half_percent / 2)))


def operation_event(source: int, code: int, user_id: int) -> DriverEvent | None:
    """The event for an operation_event_notification, or None for codes without one."""
    try:
        event = OperationEvent(code)
    except ValueError:
        return None
    try:
        src = OperationEventSource(source)
    except ValueError:
        src = OperationEventSource.Indeterminate
    method = _METHOD_BY_EVENT.get(event) or _METHOD_BY_SOURCE.get(src, Method.UNKNOWN)
    fields: dict[str, Any] = {"method": method.value}
    if event in _DENIED_REASONS:
        fields["reason"] = _DENIED_REASONS[event]
        return DriverEvent(EventType.LOCK_ACCESS_DENIED, fields)
    if event in _LOCKED_EVENTS:
        event_type = EventType.LOCK_LOCKED
    elif event in _UNLOCKED_EVENTS:
        event_type = EventType.LOCK_UNLOCKED
    else:
        return None
    if method is Method.KEYPAD and user_id not in _NO_USER:
        # Bridge slots count from 1; ZCL user ids from 0.
        fields["slot"] = int(user_id) + 1
    return DriverEvent(event_type, fields)


def capabilities(
    pin_users: int | None,
    min_pin_len: int | None,
    max_pin_len: int | None,
    *,
    can_read_codes: bool = True,
    week_day_schedules: int | None = None,
    year_day_schedules: int | None = None,
) -> Capabilities:
    """Capabilities of a keypad lock from its Door Lock attributes (None: not reported)."""
    slots = pin_users if pin_users else DEFAULT_SLOTS
    rules = CodeRules()
    low = min_pin_len if min_pin_len else rules.min_length
    high = max_pin_len if max_pin_len else rules.max_length
    return Capabilities(
        can_remotely_lock=True,
        can_remotely_unlock=True,
        has_keypad=True,
        can_program_access_codes=True,
        can_read_access_codes=can_read_codes,
        supports_native_scheduling=bool(week_day_schedules) and bool(year_day_schedules),
        slot_range=(1, slots),
        code_rules=CodeRules(min_length=low, max_length=max(low, high)),
    )


def identity(
    ieee: t.EUI64,
    manufacturer: str | None,
    model: str | None,
    caps: Capabilities,
) -> LockIdentity:
    return LockIdentity(
        native_id=native_id(ieee),
        protocol=PROTOCOL,
        manufacturer=manufacturer,
        model=model,
        capabilities=caps,
    )
