"""Nuki's Bluetooth message formats: CRC-CCITT framing, the secretbox envelope, and payloads.

Pure functions and frozen dataclasses, no I/O. The simulated lock speaks the same formats,
so their correctness is pinned by known-answer tests (CRC check value, HSalsa20 key
derivation, byte layouts) rather than by the two sides agreeing with each other.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from datetime import datetime

from nacl import bindings
from nacl.exceptions import CryptoError

from drivers.ble.nuki.const import Command

NONCE_SIZE = 24
KEY_SIZE = 32
CHALLENGE_SIZE = 32
_HEADER = struct.Struct("<24sIH")


class WireError(ValueError):
    """A message that is malformed, fails its CRC or does not decrypt."""


def crc16(data: bytes) -> int:
    """CRC-CCITT (polynomial 0x1021, initial 0xFFFF, not reflected), as Nuki uses."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16(body))


def _check_crc(frame: bytes) -> bytes:
    if len(frame) < 4:
        raise WireError("message too short")
    body, (crc,) = frame[:-2], struct.unpack("<H", frame[-2:])
    if crc16(body) != crc:
        raise WireError("bad CRC")
    return body


def plain(command: int, payload: bytes = b"") -> bytes:
    """An unencrypted message (pairing service)."""
    return _with_crc(struct.pack("<H", command) + payload)


def parse_plain(frame: bytes) -> tuple[int, bytes]:
    body = _check_crc(frame)
    return struct.unpack("<H", body[:2])[0], body[2:]


# Keys and authenticators


def shared_key(own_secret: bytes, peer_public: bytes) -> bytes:
    """Curve25519 Diffie-Hellman, then HSalsa20 over the result (NaCl's crypto_box_beforenm)."""
    return bytes(bindings.crypto_box_beforenm(peer_public, own_secret))


def authenticator(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def authentic(key: bytes, received: bytes, *parts: bytes) -> bool:
    return hmac.compare_digest(received, authenticator(key, *parts))


# Encrypted messages (keyturner service, user-specific data input/output)


def seal(key: bytes, auth_id: int, command: int, payload: bytes, nonce: bytes) -> bytes:
    inner = _with_crc(struct.pack("<IH", auth_id, command) + payload)
    box = bytes(bindings.crypto_secretbox(inner, nonce, key))
    return _HEADER.pack(nonce, auth_id, len(box)) + box


def envelope_auth_id(frame: bytes) -> int:
    """The authorization id in an encrypted message's clear header."""
    if len(frame) < _HEADER.size:
        raise WireError("message too short")
    return int(_HEADER.unpack(frame[: _HEADER.size])[1])


def open_sealed(key: bytes, frame: bytes) -> tuple[int, int, bytes]:
    """(auth id, command, payload) of an encrypted message; WireError if it was tampered with."""
    if len(frame) < _HEADER.size:
        raise WireError("message too short")
    nonce, auth_id, length = _HEADER.unpack(frame[: _HEADER.size])
    box = frame[_HEADER.size :]
    if len(box) != length:
        raise WireError("length does not match")
    try:
        inner = bytes(bindings.crypto_secretbox_open(box, nonce, key))
    except CryptoError as err:
        raise WireError("does not decrypt") from err
    body = _check_crc(inner)
    inner_id, command = struct.unpack("<IH", body[:6])
    if inner_id != auth_id:
        raise WireError("authorization ids differ")
    return auth_id, command, body[6:]


# Payload pieces

_DATETIME = struct.Struct("<HBBBBB")


def pack_datetime(moment: datetime | None) -> bytes:
    if moment is None:
        return bytes(_DATETIME.size)
    return _DATETIME.pack(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
    )


def unpack_datetime(raw: bytes) -> datetime | None:
    year, month, day, hour, minute, second = _DATETIME.unpack(raw)
    if year == 0:
        return None
    return datetime(year, month, day, hour, minute, second)


def weekday_mask(weekdays: frozenset[int]) -> int:
    """Nuki's weekday bits: bit 6 is Monday ... bit 0 Sunday; lockbridge counts Monday = 0."""
    return sum(1 << (6 - day) for day in weekdays)


def mask_weekdays(mask: int) -> frozenset[int]:
    return frozenset(day for day in range(7) if mask & (1 << (6 - day)))


def text(value: str, size: int) -> bytes:
    return value.encode()[:size].ljust(size, b"\0")


def untext(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A keypad code's time limits: dates, weekdays (empty: every day), daily times in minutes."""

    allowed_from: datetime | None = None
    allowed_until: datetime | None = None
    weekdays: frozenset[int] = frozenset()
    from_minute: int = 0
    until_minute: int = 0  # 0 with from_minute 0: all day

    def permits(self, moment: datetime) -> bool:
        """Whether the code works at this lock-local moment."""
        if self.allowed_from is not None and moment < self.allowed_from:
            return False
        if self.allowed_until is not None and moment >= self.allowed_until:
            return False
        if self.weekdays and moment.weekday() not in self.weekdays:
            return False
        if self.from_minute or self.until_minute:
            minute = moment.hour * 60 + moment.minute
            return self.from_minute <= minute < self.until_minute
        return True


_LIMIT = struct.Struct("<B7s7sBBBBB")


def pack_limit(limit: TimeLimit | None) -> bytes:
    if limit is None:
        return bytes(_LIMIT.size)
    return _LIMIT.pack(
        1,
        pack_datetime(limit.allowed_from),
        pack_datetime(limit.allowed_until),
        weekday_mask(limit.weekdays),
        limit.from_minute // 60,
        limit.from_minute % 60,
        limit.until_minute // 60,
        limit.until_minute % 60,
    )


def unpack_limit(raw: bytes) -> TimeLimit | None:
    limited, start, end, mask, fh, fm, uh, um = _LIMIT.unpack(raw)
    if not limited:
        return None
    return TimeLimit(
        unpack_datetime(start),
        unpack_datetime(end),
        mask_weekdays(mask),
        fh * 60 + fm,
        uh * 60 + um,
    )


@dataclass(frozen=True, slots=True)
class KeypadCode:
    code_id: int
    code: int = field(repr=False)
    name: str
    enabled: bool
    limit: TimeLimit | None = None
    lock_count: int = 0


_CODE_HEAD = struct.Struct("<HI20sB7s7sH")


def pack_keypad_code(entry: KeypadCode) -> bytes:
    return _CODE_HEAD.pack(
        entry.code_id,
        entry.code,
        text(entry.name, 20),
        int(entry.enabled),
        bytes(7),
        bytes(7),
        entry.lock_count,
    ) + pack_limit(entry.limit)


def unpack_keypad_code(raw: bytes) -> KeypadCode:
    if len(raw) != _CODE_HEAD.size + _LIMIT.size:
        raise WireError("keypad code entry has the wrong length")
    code_id, code, name, enabled, _, _, count = _CODE_HEAD.unpack(raw[: _CODE_HEAD.size])
    return KeypadCode(
        code_id, code, untext(name), bool(enabled), unpack_limit(raw[_CODE_HEAD.size :]), count
    )


def add_code_payload(code: int, name: str, limit: TimeLimit | None) -> bytes:
    return struct.pack("<I20s", code, text(name, 20)) + pack_limit(limit)


def update_code_payload(
    code_id: int, code: int, name: str, enabled: bool, limit: TimeLimit | None
) -> bytes:
    return struct.pack("<HI20sB", code_id, code, text(name, 20), int(enabled)) + pack_limit(limit)


def parse_add_code(raw: bytes) -> tuple[int, str, TimeLimit | None]:
    code, name = struct.unpack("<I20s", raw[:24])
    return code, untext(name), unpack_limit(raw[24 : 24 + _LIMIT.size])


def parse_update_code(raw: bytes) -> tuple[int, int, str, bool, TimeLimit | None]:
    code_id, code, name, enabled = struct.unpack("<HI20sB", raw[:27])
    return code_id, code, untext(name), bool(enabled), unpack_limit(raw[27 : 27 + _LIMIT.size])


LIMIT_SIZE = _LIMIT.size
SECURED_TAIL = CHALLENGE_SIZE + 2  # nonce and the security PIN end every admin command


def secured(payload: bytes, nonce: bytes, security_pin: int) -> bytes:
    return payload + nonce + struct.pack("<H", security_pin)


def split_secured(payload: bytes) -> tuple[bytes, bytes, int]:
    if len(payload) < SECURED_TAIL:
        raise WireError("missing nonce and security PIN")
    body, nonce, pin = payload[:-SECURED_TAIL], payload[-SECURED_TAIL:-2], payload[-2:]
    return body, nonce, struct.unpack("<H", pin)[0]


# Keyturner states

_STATES = struct.Struct("<BBB7shBBBBBBBHB")


@dataclass(frozen=True, slots=True)
class KeyturnerStates:
    nuki_state: int
    lock_state: int
    trigger: int
    current_time: datetime | None
    battery_critical: bool
    battery_percent: int
    last_action: int
    door_sensor: int

    def pack(self) -> bytes:
        battery = (self.battery_percent // 2) << 2 | int(self.battery_critical)
        return _STATES.pack(
            self.nuki_state,
            self.lock_state,
            self.trigger,
            pack_datetime(self.current_time),
            0,
            battery,
            0,
            0,
            self.last_action,
            self.trigger,
            0,
            self.door_sensor,
            0,
            0,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> KeyturnerStates:
        # Newer firmware appends fields; the documented prefix is what matters here.
        if len(raw) < _STATES.size:
            raise WireError("keyturner states too short")
        fields = _STATES.unpack(raw[: _STATES.size])
        battery = fields[5]
        return cls(
            nuki_state=fields[0],
            lock_state=fields[1],
            trigger=fields[2],
            current_time=unpack_datetime(fields[3]),
            battery_critical=bool(battery & 0x01),
            battery_percent=min(100, (battery >> 2) * 2),
            last_action=fields[8],
            door_sensor=fields[11],
        )


# Log entries

_LOG = struct.Struct("<I7sI32sB5s")


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    timestamp: datetime | None
    auth_id: int
    name: str
    kind: int
    action: int = 0
    trigger: int = 0  # lock actions: what moved it; keypad actions: the source
    completion: int = 0
    code_id: int = 0

    def pack(self) -> bytes:
        if self.kind == 0x05:
            data = struct.pack("<BBBH", self.action, self.trigger, self.completion, self.code_id)
        else:
            data = struct.pack("<BBBBx", self.action, self.trigger, 0, self.completion)
        return _LOG.pack(
            self.index,
            pack_datetime(self.timestamp),
            self.auth_id,
            text(self.name, 32),
            self.kind,
            data,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> LogEntry:
        if len(raw) < _LOG.size:
            raise WireError("log entry too short")
        index, stamp, auth_id, name, kind, data = _LOG.unpack(raw[: _LOG.size])
        if kind == 0x05:
            action, source, completion, code_id = struct.unpack("<BBBH", data)
            return cls(
                index,
                unpack_datetime(stamp),
                auth_id,
                untext(name),
                kind,
                action,
                source,
                completion,
                code_id,
            )
        action, trigger, _, completion = struct.unpack("<BBBBx", data)
        return cls(
            index, unpack_datetime(stamp), auth_id, untext(name), kind, action, trigger, completion
        )


def request_data(command: Command) -> bytes:
    return struct.pack("<H", command)
