"""The bridge's view of every lock: what drivers report, under the user's lock ids."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from bridge.config import LockOverride
from bridge.driver import LockDriver
from bridge.errors import LockNotFoundError
from bridge.model import (
    BatteryStatus,
    DriverEvent,
    Event,
    EventType,
    Lock,
    LockIdentity,
    LockStatus,
    Method,
    StatusUpdate,
    utcnow,
)

log = logging.getLogger(__name__)


class CodeHooks(Protocol):
    """How the code-slot manager follows what locks do."""

    def lock_event_fields(
        self, lock_id: str, event_type: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Extra fields for a lock event (e.g. the access code behind a keypad slot)."""

    def slot_changed(self, lock_id: str, slot: int | None) -> None: ...

    def lock_online(self, lock_id: str, online: bool) -> None: ...

    def summary(self, lock_id: str) -> dict[str, Any]:
        """The lock's codes in short, for its retained state: never a PIN."""


@dataclasses.dataclass(slots=True)
class Outbox:
    """What changed since the publisher last looked: locks to re-publish and new events.

    Lock changes are coalesced (only the newest state matters); events are kept in order.
    """

    dirty_locks: set[str] = dataclasses.field(default_factory=set)
    events: list[Event] = dataclasses.field(default_factory=list)
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def take(self) -> tuple[set[str], list[Event]]:
        dirty, events = self.dirty_locks, self.events
        self.dirty_locks, self.events = set(), []
        self.wakeup.clear()
        return dirty, events


@dataclasses.dataclass(slots=True)
class Attribution:
    """Who is behind a remote operation the bridge is about to send (e.g. a web pass)."""

    event_type: str
    fields: dict[str, object]
    claimed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class LockRegistry:
    """Implements `DriverSink` for every driver and keeps the normalised `Lock`s."""

    def __init__(
        self,
        overrides: Mapping[str, LockOverride],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._overrides = overrides
        self._clock = clock
        self._locks: dict[str, Lock] = {}
        self._by_native: dict[str, str] = {}
        self._drivers: dict[str, LockDriver] = {}
        self.outbox = Outbox()
        self.codes: CodeHooks | None = None
        self._attributions: dict[str, Attribution] = {}

    def attach(self, driver: LockDriver) -> None:
        self._drivers[driver.protocol] = driver

    @property
    def drivers(self) -> Mapping[str, LockDriver]:
        return self._drivers

    def locks(self) -> list[Lock]:
        return sorted(self._locks.values(), key=lambda lock: lock.lock_id)

    def get(self, lock_id: str) -> Lock:
        try:
            return self._locks[lock_id]
        except KeyError:
            raise LockNotFoundError(f"no lock {lock_id!r}", lock_id=lock_id) from None

    def driver_for(self, lock: Lock) -> LockDriver:
        return self._drivers[lock.protocol]

    def native_id(self, lock_id: str) -> str:
        return self.get(lock_id).identity.native_id

    def state_json(self, lock: Lock) -> dict[str, Any]:
        """The lock's retained state: the model plus its codes in short."""
        state = lock.to_json()
        if self.codes is not None:
            state.update(self.codes.summary(lock.lock_id))
        return state

    def emit(self, lock_id: str, event_type: str, fields: Mapping[str, object]) -> None:
        self._emit(lock_id, event_type, fields)

    def touch(self, lock_id: str) -> None:
        """Re-publish the lock's state (its codes changed)."""
        self._mark(lock_id)

    def attribute(self, lock_id: str, event_type: str, fields: Mapping[str, object]) -> Attribution:
        """Credit the lock's next remote `event_type` to `fields` instead of `method: remote`.

        Drivers only see that a command came over the radio; the bridge knows who sent it.
        """
        attribution = Attribution(event_type, dict(fields))
        self._attributions[lock_id] = attribution
        return attribution

    def release(self, lock_id: str, attribution: Attribution, *, happened: bool) -> None:
        """Stop waiting for the driver's event; emit it here if the operation `happened` unseen."""
        if self._attributions.get(lock_id) is attribution:
            del self._attributions[lock_id]
        if happened and not attribution.claimed.is_set():
            attribution.claimed.set()
            self._emit(lock_id, attribution.event_type, attribution.fields)

    # DriverSink

    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None:
        override = self._overrides.get(identity.native_id, LockOverride())
        lock_id = override.alias or identity.native_id
        existing = self._locks.get(lock_id)
        if existing and existing.identity.native_id != identity.native_id:
            log.error(
                "lock %s (%s) takes the id of %s; ignoring it",
                lock_id,
                identity.native_id,
                existing.identity.native_id,
            )
            return
        base = existing.status if existing else LockStatus()
        lock = Lock(
            lock_id=lock_id,
            name=override.name or (existing.name if existing else lock_id),
            identity=identity,
            status=base,
        )
        self._locks[lock_id] = lock
        self._by_native[identity.native_id] = lock_id
        self._mark(lock_id)
        self.lock_status(identity.native_id, status)
        if self.codes is not None:
            self.codes.lock_online(lock_id, self._locks[lock_id].status.online)

    def lock_status(self, native_id: str, update: StatusUpdate) -> None:
        lock_id = self._by_native.get(native_id)
        if lock_id is None:
            log.warning("status for unknown lock %s ignored", native_id)
            return
        lock = self._locks[lock_id]
        old = lock.status
        new = update.apply(old, self._clock())
        if new == old:
            return
        self._locks[lock_id] = dataclasses.replace(lock, status=new)
        self._mark(lock_id)
        for event_type, fields in _implied_events(old, new):
            self._emit(lock_id, event_type, fields)
        if new.online != old.online and self.codes is not None:
            self.codes.lock_online(lock_id, new.online)

    def lock_event(self, native_id: str, event: DriverEvent) -> None:
        lock_id = self._by_native.get(native_id)
        if lock_id is None:
            log.warning("event %s for unknown lock %s ignored", event.event_type, native_id)
            return
        fields = dict(event.fields)
        pending = self._attributions.get(lock_id)
        if (
            pending is not None
            and pending.event_type == event.event_type.value
            and fields.get("method") in (Method.REMOTE, Method.UNKNOWN)
        ):
            del self._attributions[lock_id]
            fields.update(pending.fields)
            pending.claimed.set()
        if self.codes is not None:
            fields.update(self.codes.lock_event_fields(lock_id, event.event_type.value, fields))
        self._emit(lock_id, event.event_type.value, fields)

    def slot_changed(self, native_id: str, slot: int | None) -> None:
        lock_id = self._by_native.get(native_id)
        if lock_id is not None and self.codes is not None:
            self.codes.slot_changed(lock_id, slot)

    def _emit(self, lock_id: str, event_type: str, fields: Mapping[str, object]) -> None:
        self.outbox.events.append(Event.new(lock_id, event_type, dict(fields), self._clock()))
        self.outbox.wakeup.set()

    def _mark(self, lock_id: str) -> None:
        self.outbox.dirty_locks.add(lock_id)
        self.outbox.wakeup.set()


def _implied_events(old: LockStatus, new: LockStatus) -> list[tuple[str, dict[str, object]]]:
    """Events that a status change implies, whichever driver reported it.

    Lock/unlock events are left to drivers: only they know the method and the slot.
    """
    events: list[tuple[str, dict[str, object]]] = []
    if new.online != old.online:
        events.append(
            (EventType.DEVICE_CONNECTED if new.online else EventType.DEVICE_DISCONNECTED, {})
        )
    if new.door_open is not None and new.door_open != old.door_open and old.door_open is not None:
        events.append((EventType.DOOR_OPENED if new.door_open else EventType.DOOR_CLOSED, {}))
    if new.battery_status != old.battery_status and new.battery_status is not None:
        fields: dict[str, object] = {
            "battery_level": new.battery_level,
            "battery_status": new.battery_status.value,
        }
        if old.battery_status is not None:
            events.append((EventType.DEVICE_BATTERY_STATUS_CHANGED, fields))
        if new.battery_status in (BatteryStatus.LOW, BatteryStatus.CRITICAL):
            events.append((EventType.DEVICE_LOW_BATTERY, fields))
    return events
