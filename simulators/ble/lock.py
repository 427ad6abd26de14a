"""The lock side of Nuki's Bluetooth protocol: pairing, encrypted commands, keypad and log.

Transport-free: `pairing` and `keyturner` take one written message and return the
messages to indicate back; the GATT peripheral (`peripheral.py`) carries them.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nacl.public import PrivateKey

from drivers.ble.nuki import wire
from drivers.ble.nuki.const import (
    Command,
    Completion,
    DoorSensor,
    ErrorCode,
    KeypadSource,
    LockAction,
    LockState,
    LogType,
    NukiState,
    Status,
    Trigger,
)


class Refused(Exception):
    def __init__(self, error: ErrorCode, command: int) -> None:
        super().__init__(f"{error.name} for command {command:#06x}")
        self.error = error
        self.command = command


@dataclass
class Authorization:
    auth_id: int
    key: bytes = field(repr=False)
    name: str
    id_type: int


@dataclass
class PairingRun:
    """One client's progress through the pairing steps."""

    client_public: bytes = b""
    key: bytes = field(default=b"", repr=False)
    nonce: bytes = b""
    client_nonce: bytes = b""
    auth_id: int = 0
    name: str = ""
    id_type: int = 0
    step: str = "start"


@dataclass
class NukiData:
    """What the lock keeps in its memory (persisted by the simulator)."""

    secret: bytes = field(repr=False)
    nuki_id: int
    security_pin: int = field(repr=False)
    lock_state: int = LockState.LOCKED
    door: int = DoorSensor.CLOSED
    battery: int = 90
    trigger: int = Trigger.SYSTEM
    last_action: int = LockAction.LOCK
    authorizations: dict[int, Authorization] = field(default_factory=dict)
    codes: dict[int, wire.KeypadCode] = field(default_factory=dict)
    log: list[wire.LogEntry] = field(default_factory=list)
    next_auth_id: int = 1
    next_code_id: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret.hex(),
            "nuki_id": self.nuki_id,
            "security_pin": self.security_pin,
            "lock_state": self.lock_state,
            "door": self.door,
            "battery": self.battery,
            "authorizations": [
                [a.auth_id, a.key.hex(), a.name, a.id_type] for a in self.authorizations.values()
            ],
            "codes": [_code_json(c) for c in self.codes.values()],
            "log": [entry.pack().hex() for entry in self.log],
            "next_auth_id": self.next_auth_id,
            "next_code_id": self.next_code_id,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NukiData:
        data = cls(bytes.fromhex(raw["secret"]), raw["nuki_id"], raw["security_pin"])
        data.lock_state, data.door, data.battery = raw["lock_state"], raw["door"], raw["battery"]
        for auth_id, key, name, id_type in raw["authorizations"]:
            data.authorizations[auth_id] = Authorization(auth_id, bytes.fromhex(key), name, id_type)
        for code in raw["codes"]:
            entry = wire.unpack_keypad_code(bytes.fromhex(code))
            data.codes[entry.code_id] = entry
        data.log = [wire.LogEntry.unpack(bytes.fromhex(entry)) for entry in raw["log"]]
        data.next_auth_id, data.next_code_id = raw["next_auth_id"], raw["next_code_id"]
        return data


def _code_json(entry: wire.KeypadCode) -> str:
    return wire.pack_keypad_code(entry).hex()


class SimNukiLock:
    """A Nuki Smart Lock with a keypad, as far as its Bluetooth API shows it."""

    def __init__(
        self,
        data: NukiData,
        *,
        max_codes: int,
        clock: Callable[[], datetime],
        changed: Callable[[], None],
    ) -> None:
        self.data = data
        self.max_codes = max_codes
        self.pairing_mode = False
        self.state_changed = False
        self.operations = 0
        self._clock = clock
        self._changed = changed
        self._public = bytes(PrivateKey(data.secret).public_key)
        self._runs: dict[object, PairingRun] = {}
        self._challenges: dict[object, bytes] = {}

    # Pairing service

    def pairing(self, conn: object, frame: bytes) -> list[bytes]:
        try:
            command, payload = wire.parse_plain(frame)
        except wire.WireError:
            return [wire.plain(Command.ERROR_REPORT, struct.pack("<BH", ErrorCode.BAD_CRC, 0))]
        try:
            return [wire.plain(c, p) for c, p in self._pair_step(conn, command, payload)]
        except Refused as refusal:
            self._runs.pop(conn, None)
            return [
                wire.plain(Command.ERROR_REPORT, struct.pack("<BH", refusal.error, refusal.command))
            ]

    def _pair_step(self, conn: object, command: int, payload: bytes) -> list[tuple[int, bytes]]:
        run = self._runs.setdefault(conn, PairingRun())
        if command == Command.REQUEST_DATA and payload[:2] == struct.pack("<H", Command.PUBLIC_KEY):
            if not self.pairing_mode:
                raise Refused(ErrorCode.P_NOT_PAIRING, command)
            run.step = "public_key"
            return [(Command.PUBLIC_KEY, self._public)]
        if command == Command.PUBLIC_KEY and run.step == "public_key" and len(payload) == 32:
            run.client_public = payload
            run.key = wire.shared_key(self.data.secret, payload)
            run.nonce = os.urandom(32)
            run.step = "authenticator"
            return [(Command.CHALLENGE, run.nonce)]
        if command == Command.AUTHORIZATION_AUTHENTICATOR and run.step == "authenticator":
            if not wire.authentic(run.key, payload, run.client_public, self._public, run.nonce):
                raise Refused(ErrorCode.P_BAD_AUTHENTICATOR, command)
            run.nonce = os.urandom(32)
            run.step = "data"
            return [(Command.CHALLENGE, run.nonce)]
        if command == Command.AUTHORIZATION_DATA and run.step == "data" and len(payload) == 101:
            mac, body = payload[:32], payload[32:]
            if not wire.authentic(run.key, mac, body, run.nonce):
                raise Refused(ErrorCode.P_BAD_AUTHENTICATOR, command)
            if len(self.data.authorizations) >= 100:
                raise Refused(ErrorCode.P_MAX_USER, command)
            run.id_type = body[0]
            run.name = wire.untext(body[5:37])
            run.client_nonce = body[37:69]
            run.auth_id = self.data.next_auth_id
            run.nonce = os.urandom(32)
            run.step = "confirm"
            ident = struct.pack("<I", run.auth_id) + uuid_of(self.data.nuki_id)
            mac = wire.authenticator(run.key, ident, run.nonce, run.client_nonce)
            return [(Command.AUTHORIZATION_ID, mac + ident + run.nonce)]
        if command == Command.AUTHORIZATION_ID_CONFIRMATION and run.step == "confirm":
            mac, ident = payload[:32], payload[32:36]
            if ident != struct.pack("<I", run.auth_id) or not wire.authentic(
                run.key, mac, ident, run.nonce
            ):
                raise Refused(ErrorCode.P_BAD_AUTHENTICATOR, command)
            self.data.authorizations[run.auth_id] = Authorization(
                run.auth_id, run.key, run.name, run.id_type
            )
            self.data.next_auth_id += 1
            self.pairing_mode = False
            self._runs.pop(conn, None)
            self._changed()
            return [(Command.STATUS, bytes([Status.COMPLETE]))]
        raise Refused(ErrorCode.P_BAD_PARAMETER, command)

    # Keyturner service: encrypted commands

    def keyturner(self, conn: object, frame: bytes) -> list[bytes]:
        try:
            auth = self.data.authorizations.get(wire.envelope_auth_id(frame))
        except wire.WireError:
            auth = None
        if auth is None:
            return [
                wire.plain(Command.ERROR_REPORT, struct.pack("<BH", ErrorCode.K_NOT_AUTHORIZED, 0))
            ]
        replies: list[tuple[int, bytes]]
        try:
            _, command, payload = wire.open_sealed(auth.key, frame)
        except wire.WireError:
            replies = [(Command.ERROR_REPORT, struct.pack("<BH", ErrorCode.K_NOT_AUTHORIZED, 0))]
        else:
            try:
                replies = self._command(conn, auth, command, payload)
            except Refused as refusal:
                replies = [
                    (Command.ERROR_REPORT, struct.pack("<BH", refusal.error, refusal.command))
                ]
            except (struct.error, wire.WireError, ValueError):
                replies = [
                    (Command.ERROR_REPORT, struct.pack("<BH", ErrorCode.BAD_LENGTH, command))
                ]
        return [wire.seal(auth.key, auth.auth_id, c, p, os.urandom(24)) for c, p in replies]

    def _command(
        self, conn: object, auth: Authorization, command: int, payload: bytes
    ) -> list[tuple[int, bytes]]:
        if command == Command.REQUEST_DATA:
            (wanted,) = struct.unpack("<H", payload[:2])
            if wanted == Command.CHALLENGE:
                nonce = os.urandom(32)
                self._challenges[conn] = nonce
                return [(Command.CHALLENGE, nonce)]
            if wanted == Command.KEYTURNER_STATES:
                self.operations += 1
                self.state_changed = False
                return [(Command.KEYTURNER_STATES, self.states().pack())]
            raise Refused(ErrorCode.K_BAD_PARAMETER, command)
        if command == Command.LOCK_ACTION:
            body, nonce = payload[:-32], payload[-32:]
            self._spend_challenge(conn, nonce, command)
            action = body[0]
            if action not in (LockAction.LOCK, LockAction.UNLOCK, LockAction.UNLATCH):
                raise Refused(ErrorCode.K_BAD_PARAMETER, command)
            self.operations += 1
            self.move(LockAction(action), Trigger.SYSTEM, auth.auth_id, auth.name)
            return [
                (Command.STATUS, bytes([Status.ACCEPTED])),
                (Command.KEYTURNER_STATES, self.states().pack()),
                (Command.STATUS, bytes([Status.COMPLETE])),
            ]
        body, nonce, pin = wire.split_secured(payload)
        self._spend_challenge(conn, nonce, command)
        if pin != self.data.security_pin:
            raise Refused(ErrorCode.K_BAD_PIN, command)
        self.operations += 1
        if command == Command.REQUEST_KEYPAD_CODES:
            offset, count = struct.unpack("<HH", body[:4])
            chosen = sorted(self.data.codes.values(), key=lambda c: c.code_id)[
                offset : offset + count
            ]
            return [
                (Command.KEYPAD_CODE_COUNT, struct.pack("<H", len(self.data.codes))),
                *((Command.KEYPAD_CODE, wire.pack_keypad_code(c)) for c in chosen),
                (Command.STATUS, bytes([Status.COMPLETE])),
            ]
        if command == Command.ADD_KEYPAD_CODE:
            code, name, limit = wire.parse_add_code(body)
            code_id = self.add_code(code, name, limit, command)
            return [(Command.KEYPAD_CODE_ID, struct.pack("<H", code_id))]
        if command == Command.UPDATE_KEYPAD_CODE:
            code_id, code, name, enabled, limit = wire.parse_update_code(body)
            self.update_code(wire.KeypadCode(code_id, code, name, enabled, limit), command)
            return [(Command.STATUS, bytes([Status.COMPLETE]))]
        if command == Command.REMOVE_KEYPAD_CODE:
            (code_id,) = struct.unpack("<H", body[:2])
            if self.data.codes.pop(code_id, None) is None:
                raise Refused(ErrorCode.K_BAD_PARAMETER, command)
            self._changed()
            return [(Command.STATUS, bytes([Status.COMPLETE]))]
        if command == Command.REQUEST_LOG_ENTRIES:
            start, count, descending, _total = struct.unpack("<IHBB", body[:8])
            entries = [e for e in self.data.log if e.index >= start]
            entries = (entries[::-1] if descending else entries)[:count]
            return [
                (Command.LOG_ENTRY_COUNT, struct.pack("<BHBB", 1, len(self.data.log), 1, 1)),
                *((Command.LOG_ENTRY, e.pack()) for e in entries),
                (Command.STATUS, bytes([Status.COMPLETE])),
            ]
        raise Refused(ErrorCode.K_BAD_PARAMETER, command)

    def _spend_challenge(self, conn: object, nonce: bytes, command: int) -> None:
        """A nonce works once, and only on the connection it was issued to."""
        issued = self._challenges.pop(conn, None)
        if issued is None or not secrets.compare_digest(issued, nonce):
            raise Refused(ErrorCode.K_BAD_NONCE, command)

    def forget(self, conn: object) -> None:
        self._runs.pop(conn, None)
        self._challenges.pop(conn, None)

    # The lock's own behaviour

    def states(self) -> wire.KeyturnerStates:
        return wire.KeyturnerStates(
            nuki_state=NukiState.PAIRING_MODE if self.pairing_mode else NukiState.DOOR_MODE,
            lock_state=self.data.lock_state,
            trigger=self.data.trigger,
            current_time=self._clock(),
            battery_critical=self.data.battery <= 15,
            battery_percent=self.data.battery,
            last_action=self.data.last_action,
            door_sensor=self.data.door,
        )

    def move(self, action: LockAction, trigger: Trigger, auth_id: int, name: str) -> None:
        self.data.lock_state = LockState.LOCKED if action == LockAction.LOCK else LockState.UNLOCKED
        self.data.last_action = action
        self.data.trigger = trigger
        self._log(
            wire.LogEntry(0, self._clock(), auth_id, name, LogType.LOCK_ACTION, action, trigger)
        )
        self._changed()

    def _log(self, entry: wire.LogEntry) -> None:
        index = self.data.log[-1].index + 1 if self.data.log else 1
        self.data.log.append(
            wire.LogEntry(
                index,
                entry.timestamp,
                entry.auth_id,
                entry.name,
                entry.kind,
                entry.action,
                entry.trigger,
                entry.completion,
                entry.code_id,
            )
        )
        del self.data.log[:-200]

    def keypad(self, pin: str) -> bool:
        """Someone typed a code on the keypad; True if the lock opened."""
        now = self._clock()
        match = next(
            (c for c in self.data.codes.values() if pin.isdigit() and c.code == int(pin)), None
        )
        if match is None or not match.enabled or (match.limit and not match.limit.permits(now)):
            self._log(
                wire.LogEntry(
                    0,
                    now,
                    0,
                    match.name if match else "",
                    LogType.KEYPAD_ACTION,
                    LockAction.UNLOCK,
                    KeypadSource.CODE,
                    Completion.INVALID_CODE,
                    match.code_id if match else 0,
                )
            )
            self.state_changed = True
            self._changed()
            return False
        self.data.codes[match.code_id] = wire.KeypadCode(
            match.code_id, match.code, match.name, match.enabled, match.limit, match.lock_count + 1
        )
        self.data.lock_state = LockState.UNLOCKED
        self.data.last_action = LockAction.UNLOCK
        self.data.trigger = Trigger.BUTTON
        self._log(
            wire.LogEntry(
                0,
                now,
                0,
                match.name,
                LogType.KEYPAD_ACTION,
                LockAction.UNLOCK,
                KeypadSource.CODE,
                Completion.SUCCESS,
                match.code_id,
            )
        )
        self.state_changed = True
        self._changed()
        return True

    def add_code(
        self,
        code: int,
        name: str,
        limit: wire.TimeLimit | None,
        command: int,
        *,
        code_id: int | None = None,
    ) -> int:
        """Store a new code under the next id (or, from the simulator control, a chosen one)."""
        check_code(code, command)
        if any(c.code == code for c in self.data.codes.values()):
            raise Refused(ErrorCode.K_CODE_ALREADY_EXISTS, command)
        if len(self.data.codes) >= self.max_codes:
            raise Refused(ErrorCode.K_TOO_MANY_ENTRIES, command)
        if code_id is None or code_id in self.data.codes:
            code_id = self.data.next_code_id
        self.data.next_code_id = max(self.data.next_code_id, code_id + 1)
        self.data.codes[code_id] = wire.KeypadCode(code_id, code, name, True, limit)
        self._changed()
        return code_id

    def update_code(self, entry: wire.KeypadCode, command: int) -> None:
        check_code(entry.code, command)
        if entry.code_id not in self.data.codes:
            raise Refused(ErrorCode.K_BAD_PARAMETER, command)
        if any(
            c.code == entry.code and c.code_id != entry.code_id for c in self.data.codes.values()
        ):
            raise Refused(ErrorCode.K_CODE_ALREADY_EXISTS, command)
        self.data.codes[entry.code_id] = entry
        self._changed()

    def external_change(self) -> None:
        """Something the bridge did not do changed the lock: raise the beacon's flag."""
        self.state_changed = True
        self._changed()


def check_code(code: int, command: int) -> None:
    digits = str(code)
    if len(digits) != 6 or "0" in digits or digits.startswith("12"):
        raise Refused(ErrorCode.K_CODE_INVALID, command)


def uuid_of(nuki_id: int) -> bytes:
    return b"NUKI" + struct.pack("<I", nuki_id) + bytes(8)


def new_lock_data(nuki_id: int, security_pin: int) -> NukiData:
    return NukiData(bytes(PrivateKey.generate()), nuki_id, security_pin)
