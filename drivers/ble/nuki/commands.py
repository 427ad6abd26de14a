"""Nuki commands over an open session, and what their answers mean in the lockbridge model."""

from __future__ import annotations

import struct
from typing import Any

from bridge.model import DriverEvent, EventType, LockState, Method, StatusUpdate
from drivers.ble.nuki import wire
from drivers.ble.nuki.const import (
    Command,
    Completion,
    DoorSensor,
    KeypadSource,
    LockAction,
    LogType,
    Trigger,
)
from drivers.ble.nuki.const import LockState as NukiLockState
from drivers.ble.nuki.session import Credentials, NukiSession

_STATES = frozenset({Command.KEYTURNER_STATES})
_COMPLETE = frozenset({Command.STATUS})
_LOCK_STATES = {
    NukiLockState.LOCKED: LockState.LOCKED,
    NukiLockState.UNLOCKING: LockState.UNLOCKING,
    NukiLockState.UNLOCKED: LockState.UNLOCKED,
    NukiLockState.LOCKING: LockState.LOCKING,
    NukiLockState.UNLATCHED: LockState.UNLOCKED,
    NukiLockState.UNLOCKED_LOCK_N_GO: LockState.UNLOCKED,
    NukiLockState.UNLATCHING: LockState.UNLOCKING,
    NukiLockState.MOTOR_BLOCKED: LockState.JAMMED,
}
_METHOD_BY_TRIGGER = {
    Trigger.SYSTEM: Method.REMOTE,
    Trigger.MANUAL: Method.MANUAL,
    Trigger.BUTTON: Method.MANUAL,
    Trigger.AUTOMATIC: Method.AUTOMATIC,
    Trigger.AUTO_LOCK: Method.AUTOMATIC,
}
CODE_PAGE = 100


def status_update(states: wire.KeyturnerStates) -> StatusUpdate:
    door = {DoorSensor.CLOSED: False, DoorSensor.OPENED: True}.get(states.door_sensor)  # type: ignore[call-overload]
    battery = states.battery_percent
    if states.battery_critical:
        # Nuki's own judgement outranks the percentage: show it as critical.
        battery = min(battery, 10)
    return StatusUpdate(
        online=True,
        lock_state=_LOCK_STATES.get(states.lock_state, LockState.UNKNOWN),  # type: ignore[call-overload]
        door_open=door,
        battery_level=battery,
    )


def log_event(entry: wire.LogEntry, slot_of_code: dict[int, int]) -> DriverEvent | None:
    """The event a log entry reports, or None for entries that are neither movements nor denials."""
    keypad_code = entry.kind == LogType.KEYPAD_ACTION and entry.trigger == KeypadSource.CODE
    if keypad_code and entry.completion == Completion.INVALID_CODE:
        return DriverEvent(
            EventType.LOCK_ACCESS_DENIED,
            {"method": Method.KEYPAD.value, "reason": "invalid_code"},
        )
    if entry.completion != Completion.SUCCESS:
        return None
    fields: dict[str, Any]
    if keypad_code:
        fields = {"method": Method.KEYPAD.value}
        if entry.code_id in slot_of_code:
            fields["slot"] = slot_of_code[entry.code_id]
    elif entry.kind == LogType.LOCK_ACTION:
        fields = {"method": _METHOD_BY_TRIGGER.get(entry.trigger, Method.UNKNOWN).value}  # type: ignore[call-overload]
    else:
        return None
    if entry.action == LockAction.LOCK:
        return DriverEvent(EventType.LOCK_LOCKED, fields)
    if entry.action in (LockAction.UNLOCK, LockAction.UNLATCH):
        return DriverEvent(EventType.LOCK_UNLOCKED, fields)
    return None


async def read_states(session: NukiSession, creds: Credentials) -> wire.KeyturnerStates:
    answers = await session.command(
        creds, Command.REQUEST_DATA, wire.request_data(Command.KEYTURNER_STATES), _STATES
    )
    return wire.KeyturnerStates.unpack(answers[-1][1])


async def lock_action(
    session: NukiSession, creds: Credentials, action: LockAction
) -> wire.KeyturnerStates | None:
    nonce = await session.challenge(creds)
    payload = struct.pack("<BIB", action, creds.app_id, 0) + nonce
    answers = await session.command(creds, Command.LOCK_ACTION, payload, _COMPLETE)
    states = [body for command, body in answers if command == Command.KEYTURNER_STATES]
    return wire.KeyturnerStates.unpack(states[-1]) if states else None


async def _secured(
    session: NukiSession,
    creds: Credentials,
    pin: int,
    command: Command,
    *,
    payload: bytes,
    until: frozenset[int],
) -> list[tuple[int, bytes]]:
    nonce = await session.challenge(creds)
    return await session.command(creds, command, wire.secured(payload, nonce, pin), until)


async def list_codes(session: NukiSession, creds: Credentials, pin: int) -> list[wire.KeypadCode]:
    """Every keypad code, a page of `CODE_PAGE` per request."""
    codes: list[wire.KeypadCode] = []
    while True:
        answers = await _secured(
            session,
            creds,
            pin,
            Command.REQUEST_KEYPAD_CODES,
            payload=struct.pack("<HH", len(codes), CODE_PAGE),
            until=_COMPLETE,
        )
        total = next(
            (
                struct.unpack("<H", body[:2])[0]
                for c, body in answers
                if c == Command.KEYPAD_CODE_COUNT
            ),
            0,
        )
        page = [wire.unpack_keypad_code(body) for c, body in answers if c == Command.KEYPAD_CODE]
        codes.extend(page)
        if not page or len(codes) >= total:
            return codes


async def add_code(
    session: NukiSession,
    creds: Credentials,
    pin: int,
    *,
    code: int,
    name: str,
    limit: wire.TimeLimit | None,
) -> int:
    answers = await _secured(
        session,
        creds,
        pin,
        Command.ADD_KEYPAD_CODE,
        payload=wire.add_code_payload(code, name, limit),
        until=frozenset({Command.KEYPAD_CODE_ID}),
    )
    return int(struct.unpack("<H", answers[-1][1][:2])[0])


async def update_code(
    session: NukiSession, creds: Credentials, pin: int, entry: wire.KeypadCode
) -> None:
    payload = wire.update_code_payload(
        entry.code_id, entry.code, entry.name, entry.enabled, entry.limit
    )
    await _secured(
        session, creds, pin, Command.UPDATE_KEYPAD_CODE, payload=payload, until=_COMPLETE
    )


async def remove_code(session: NukiSession, creds: Credentials, pin: int, code_id: int) -> None:
    await _secured(
        session,
        creds,
        pin,
        Command.REMOVE_KEYPAD_CODE,
        payload=struct.pack("<H", code_id),
        until=_COMPLETE,
    )


async def read_log(
    session: NukiSession, creds: Credentials, pin: int, *, after: int | None, count: int = 20
) -> list[wire.LogEntry]:
    """Entries newer than `after`, oldest first; with `after` None, just the newest one."""
    if after is None:
        return await _log_page(session, creds, pin, struct.pack("<IHBB", 0, 1, 1, 0))
    entries: list[wire.LogEntry] = []
    while True:
        start = max((e.index for e in entries), default=after) + 1
        page = await _log_page(session, creds, pin, struct.pack("<IHBB", start, count, 0, 0))
        entries.extend(page)
        if len(page) < count:
            return entries


async def _log_page(
    session: NukiSession, creds: Credentials, pin: int, payload: bytes
) -> list[wire.LogEntry]:
    answers = await _secured(
        session, creds, pin, Command.REQUEST_LOG_ENTRIES, payload=payload, until=_COMPLETE
    )
    return [wire.LogEntry.unpack(body) for command, body in answers if command == Command.LOG_ENTRY]
