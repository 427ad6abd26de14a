"""Pure translations from Z-Wave (Door Lock, Notification, Battery, User Code CCs) to the model.

Door Lock modes are handled as raw numbers: zwave-js reports the inside/outside unsecured
modes as 0x10/0x11/0x20/0x21, which the Python library's `DoorLockMode` enum does not
know. Kept free of I/O so the protocol semantics can be tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.model import Capabilities, CodeRules, DriverEvent, EventType, LockState, Method

PROTOCOL = "zwave"

SECURED = 0xFF
UNSECURED = 0x00
UNKNOWN_MODE = 0xFE
# Unsecured, with timeout, inside handles unsecured (with timeout), outside ditto.
UNSECURED_MODES = frozenset({0x00, 0x01, 0x10, 0x11, 0x20, 0x21})

ACCESS_CONTROL = 0x06
HOME_SECURITY = 0x07

# User ID status (User Code CC).
AVAILABLE = 0x00
ENABLED = 0x01
DISABLED = 0x02
STATUS_NOT_AVAILABLE = 0xFE

# Access Control events that move the bolt: event -> (locked?, method).
_OPERATIONS: dict[int, tuple[bool, Method]] = {
    0x01: (True, Method.MANUAL),
    0x02: (False, Method.MANUAL),
    0x03: (True, Method.REMOTE),
    0x04: (False, Method.REMOTE),
    0x05: (True, Method.KEYPAD),
    0x06: (False, Method.KEYPAD),
    0x09: (True, Method.AUTOMATIC),
}
# Not fully locked (manual, RF, auto) and "lock jammed".
_JAMMED = frozenset({0x07, 0x08, 0x0A, 0x0B})
_DENIED = {
    0x10: "keypad_disabled",
    0x13: "invalid_code",  # user code entry exceeded the lock's limit of attempts
    0x14: "invalid_code",  # RF unlock with an invalid user code
    0x15: "invalid_code",  # RF lock with an invalid user code
}
_CODE_ADDED_OR_DELETED = frozenset({0x0D, 0x0E})
_ALL_CODES_DELETED = 0x0C
_DUPLICATE_CODE = 0x0F
_DOOR_OPEN, _DOOR_CLOSED = 0x16, 0x17
# Home Security: cover removed, invalid code, moved.
_TAMPER = frozenset({0x03, 0x04, 0x09})

DEFAULT_MIN_CODE_LENGTH = 4
CODE_CHARACTERS = "0123456789"


def native_id(home_id: int, node_id: int) -> str:
    """`zwave-`, the network's home id (8 hex digits) and the node id."""
    return f"{PROTOCOL}-{home_id:08x}-{node_id}"


def lock_state(mode: Any) -> LockState:
    if not isinstance(mode, int):
        return LockState.UNKNOWN
    if mode == SECURED:
        return LockState.LOCKED
    if mode in UNSECURED_MODES:
        return LockState.UNLOCKED
    return LockState.UNKNOWN


def door_open(status: Any) -> bool | None:
    if status == "open":
        return True
    if status == "closed":
        return False
    return None


def battery_level(level: Any) -> int | None:
    if not isinstance(level, int):
        return None
    return max(0, min(100, level))


@dataclass(frozen=True, slots=True)
class Notification:
    """What one Notification CC report means for the lock."""

    event: DriverEvent | None = None
    lock_state: LockState | None = None
    door_open: bool | None = None
    codes_changed: bool = False
    slot: int | None = None
    # The lock refused a new code in this slot because it holds the code in another.
    duplicate_in: int | None = None


def _user_id(parameters: Any) -> int | None:
    if isinstance(parameters, dict):
        user = parameters.get("userId")
        if isinstance(user, int) and user > 0:
            return user
    return None


def notification(kind: int, event: int, parameters: Any) -> Notification:
    """Translate an Access Control or Home Security notification."""
    if kind == HOME_SECURITY:
        if event in _TAMPER:
            return Notification(event=DriverEvent(EventType.DEVICE_TAMPERED, {}))
        return Notification()
    if kind != ACCESS_CONTROL:
        return Notification()
    user = _user_id(parameters)
    if event in _OPERATIONS:
        locked, method = _OPERATIONS[event]
        fields: dict[str, Any] = {"method": method.value}
        if method is Method.KEYPAD and user is not None:
            # Z-Wave user ids are the lock's code slots, counted from 1 like the bridge's.
            fields["slot"] = user
        event_type = EventType.LOCK_LOCKED if locked else EventType.LOCK_UNLOCKED
        state = LockState.LOCKED if locked else LockState.UNLOCKED
        return Notification(event=DriverEvent(event_type, fields), lock_state=state)
    if event in _JAMMED:
        return Notification(
            event=DriverEvent(EventType.LOCK_JAMMED, {}), lock_state=LockState.JAMMED
        )
    if event in _DENIED:
        denied = {"method": Method.KEYPAD.value, "reason": _DENIED[event]}
        if event in (0x14, 0x15):
            denied["method"] = Method.REMOTE.value
        return Notification(event=DriverEvent(EventType.LOCK_ACCESS_DENIED, denied))
    if event == _DUPLICATE_CODE:
        return Notification(duplicate_in=user)
    if event in _CODE_ADDED_OR_DELETED:
        return Notification(codes_changed=True, slot=user)
    if event == _ALL_CODES_DELETED:
        return Notification(codes_changed=True)
    if event in (_DOOR_OPEN, _DOOR_CLOSED):
        return Notification(door_open=event == _DOOR_OPEN)
    return Notification()


# zwave-js reports some notifications as states (Notification CC values), not as events:
# (notification type label, state variable) -> the states that mean something here.
_STATE_VALUES = {
    ("Access Control", "Lock state"): (ACCESS_CONTROL, _JAMMED),
    ("Home Security", "Cover status"): (HOME_SECURITY, _TAMPER),
}


def notification_state(label: Any, variable: Any, state: Any) -> Notification:
    """Translate a Notification CC state value (e.g. Access Control / Lock state = jammed)."""
    kind, meaningful = _STATE_VALUES.get((label, variable), (None, frozenset()))
    if kind is None or not isinstance(state, int) or state not in meaningful:
        return Notification()
    return notification(kind, state, None)


def slot_occupied(status: Any) -> bool:
    return isinstance(status, int) and status not in (AVAILABLE, STATUS_NOT_AVAILABLE)


def is_masked(code: Any) -> bool:
    """Write-only locks answer with the code's length in '*' (or in zero bytes)."""
    return isinstance(code, str) and bool(code) and set(code) <= {"*", "\x00"}


def capabilities(
    slots: int | None,
    *,
    can_read_codes: bool,
    native_scheduling: bool,
    max_code_length: int,
) -> Capabilities:
    has_codes = bool(slots)
    return Capabilities(
        can_remotely_lock=True,
        can_remotely_unlock=True,
        has_keypad=has_codes,
        can_program_access_codes=has_codes,
        can_read_access_codes=has_codes and can_read_codes,
        supports_native_scheduling=has_codes and native_scheduling,
        slot_range=(1, slots) if slots else None,
        code_rules=CodeRules(
            min_length=DEFAULT_MIN_CODE_LENGTH,
            max_length=max_code_length,
            characters=CODE_CHARACTERS,
        )
        if has_codes
        else None,
    )
