"""The protocol-independent lock model (SPEC §3) and event model (SPEC §6).

Plain frozen dataclasses: drivers build them, the core keeps and publishes them.
Nothing here knows which radio a lock uses.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class LockState(enum.StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    LOCKING = "locking"
    UNLOCKING = "unlocking"
    JAMMED = "jammed"
    UNKNOWN = "unknown"


class BatteryStatus(enum.StrEnum):
    CRITICAL = "critical"
    LOW = "low"
    GOOD = "good"
    FULL = "full"

    @classmethod
    def from_level(cls, level: int) -> BatteryStatus:
        if level <= 10:
            return cls.CRITICAL
        if level <= 25:
            return cls.LOW
        if level < 90:
            return cls.GOOD
        return cls.FULL


class Method(enum.StrEnum):
    """How a lock was operated (the `method` field of lock events)."""

    KEYPAD = "keypad"
    MANUAL = "manual"
    REMOTE = "remote"
    AUTOMATIC = "automatic"
    WEB_PASS = "web_pass"  # noqa: S105 - a method name, not a secret
    UNKNOWN = "unknown"


class EventType(enum.StrEnum):
    LOCK_LOCKED = "lock.locked"
    LOCK_UNLOCKED = "lock.unlocked"
    LOCK_JAMMED = "lock.jammed"
    LOCK_ACCESS_DENIED = "lock.access_denied"
    DOOR_OPENED = "door.opened"
    DOOR_CLOSED = "door.closed"
    DEVICE_CONNECTED = "device.connected"
    DEVICE_DISCONNECTED = "device.disconnected"
    DEVICE_LOW_BATTERY = "device.low_battery"
    DEVICE_BATTERY_STATUS_CHANGED = "device.battery_status_changed"
    DEVICE_TAMPERED = "device.tampered"


@dataclass(frozen=True, slots=True)
class CodeRules:
    """What a lock accepts as a keypad code."""

    min_length: int = 4
    max_length: int = 8
    characters: str = "0123456789"
    forbidden_prefixes: tuple[str, ...] = ()
    same_length_for_all: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    can_remotely_lock: bool = True
    can_remotely_unlock: bool = True
    has_keypad: bool = False
    can_program_access_codes: bool = False
    can_read_access_codes: bool = False
    supports_native_scheduling: bool = False
    slot_range: tuple[int, int] | None = None
    code_rules: CodeRules | None = None


@dataclass(frozen=True, slots=True)
class LockIdentity:
    """What a driver knows of a lock before its state: fixed for the lock's lifetime."""

    native_id: str
    protocol: str
    manufacturer: str | None
    model: str | None
    capabilities: Capabilities


@dataclass(frozen=True, slots=True)
class LockStatus:
    """The changing part of a lock's state, as last reported by its driver."""

    online: bool = False
    lock_state: LockState = LockState.UNKNOWN
    door_open: bool | None = None
    battery_level: int | None = None
    battery_status: BatteryStatus | None = None
    keypad: dict[str, Any] | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A partial update of a lock's status; fields left as None are unchanged."""

    online: bool | None = None
    lock_state: LockState | None = None
    door_open: bool | None = None
    battery_level: int | None = None
    keypad: dict[str, Any] | None = None

    def apply(self, status: LockStatus, now: datetime) -> LockStatus:
        changes: dict[str, Any] = {"last_seen": now}
        for name in ("online", "lock_state", "door_open", "battery_level", "keypad"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        if self.battery_level is not None:
            changes["battery_status"] = BatteryStatus.from_level(self.battery_level)
        if self.online is False:
            changes["last_seen"] = status.last_seen
        return dataclasses.replace(status, **changes)


@dataclass(frozen=True, slots=True)
class Lock:
    lock_id: str
    name: str
    identity: LockIdentity
    status: LockStatus = field(default_factory=LockStatus)

    @property
    def protocol(self) -> str:
        return self.identity.protocol

    def to_json(self) -> dict[str, Any]:
        caps = self.identity.capabilities
        return {
            "lock_id": self.lock_id,
            "name": self.name,
            "protocol": self.identity.protocol,
            "manufacturer": self.identity.manufacturer,
            "model": self.identity.model,
            "online": self.status.online,
            "lock_state": self.status.lock_state.value,
            "door_open": self.status.door_open,
            "battery_level": self.status.battery_level,
            "battery_status": self.status.battery_status and self.status.battery_status.value,
            "keypad": self.status.keypad,
            "last_seen": _iso(self.status.last_seen),
            "capabilities": _jsonable(dataclasses.asdict(caps)),
        }


@dataclass(frozen=True, slots=True)
class DriverEvent:
    """An event as a driver reports it: a type and its type-specific fields."""

    event_type: EventType
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: str
    occurred_at: datetime
    lock_id: str
    fields: dict[str, Any]

    @classmethod
    def new(cls, lock_id: str, event_type: str, fields: dict[str, Any], now: datetime) -> Event:
        return cls(uuid.uuid4().hex, event_type, now, lock_id, dict(fields))

    def to_json(self) -> dict[str, Any]:
        return {
            **_jsonable(self.fields),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "occurred_at": _iso(self.occurred_at),
            "lock_id": self.lock_id,
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
