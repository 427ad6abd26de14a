"""The model, the registry and the request API, in process with a scripted driver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.api import Api, parse_set_payload
from bridge.config import LockOverride
from bridge.driver import LockDriver
from bridge.errors import CommandExpiredError, InvalidPayloadError, LockOfflineError
from bridge.logs import redact
from bridge.model import (
    BatteryStatus,
    Capabilities,
    DriverEvent,
    EventType,
    LockIdentity,
    LockState,
    StatusUpdate,
)
from bridge.registry import LockRegistry
from bridge.store import Store

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


class ScriptedDriver(LockDriver):
    protocol = "zigbee"

    def __init__(self, registry: LockRegistry) -> None:
        super().__init__(registry)
        self.offline: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    async def start(self) -> None:
        for native in ("zigbee-01", "zigbee-02"):
            identity = LockIdentity(native, "zigbee", "Acme", "L1", Capabilities(has_keypad=True))
            self._sink.lock_added(identity, StatusUpdate(online=True, lock_state=LockState.LOCKED))

    async def stop(self) -> None:
        pass

    async def _operate(self, native_id: str, action: str, state: LockState) -> bool:
        self.calls.append((native_id, action))
        if native_id in self.offline:
            raise LockOfflineError("offline")
        self._sink.lock_status(native_id, StatusUpdate(lock_state=state))
        return True

    async def lock(self, native_id: str) -> bool:
        return await self._operate(native_id, "lock", LockState.LOCKED)

    async def unlock(self, native_id: str) -> bool:
        return await self._operate(native_id, "unlock", LockState.UNLOCKED)

    def status(self) -> dict[str, Any]:
        return {"state": "running"}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Api, LockRegistry, ScriptedDriver, Store]]:
    registry = LockRegistry(
        {"zigbee-02": LockOverride(alias="back_door", name="Back door")}, clock=lambda: NOW
    )
    driver = ScriptedDriver(registry)
    registry.attach(driver)
    await driver.start()
    store = Store(tmp_path / "db.sqlite")
    await store.open()
    api = Api(registry, store, command_timeout=1, config_summary={}, is_connected=lambda: True)
    yield api, registry, driver, store
    await store.close()


async def call(api: Api, command: str, payload: Any) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await api.handle(command, raw)


def test_battery_status_thresholds() -> None:
    assert BatteryStatus.from_level(5) is BatteryStatus.CRITICAL
    assert BatteryStatus.from_level(20) is BatteryStatus.LOW
    assert BatteryStatus.from_level(60) is BatteryStatus.GOOD
    assert BatteryStatus.from_level(95) is BatteryStatus.FULL


async def test_aliases_names_and_state(
    setup: tuple[Api, LockRegistry, ScriptedDriver, Store],
) -> None:
    api, registry, _, _ = setup
    assert [lock.lock_id for lock in registry.locks()] == ["back_door", "zigbee-01"]
    lock = registry.get("back_door").to_json()
    assert lock["name"] == "Back door"
    assert lock["lock_state"] == "locked" and lock["online"] is True
    assert lock["last_seen"] == NOW.isoformat()
    listed = await call(api, "lock/list", {})
    assert [entry["lock_id"] for entry in listed["data"]["locks"]] == ["back_door", "zigbee-01"]


async def test_lock_unlock_transaction_and_errors(
    setup: tuple[Api, LockRegistry, ScriptedDriver, Store],
) -> None:
    api, _, driver, _ = setup
    response = await call(api, "lock/unlock", {"lock_id": "back_door", "transaction": 7})
    assert response == {
        "status": "ok",
        "data": {
            "lock_id": "back_door",
            "action": "unlock",
            "confirmed": True,
            "lock_state": "unlocked",
        },
        "transaction": 7,
    }
    assert driver.calls == [("zigbee-02", "unlock")]
    driver.offline.add("zigbee-01")
    response = await call(api, "lock/lock", {"lock_id": "zigbee-01", "transaction": "a"})
    assert response["status"] == "error"
    assert response["error"] == {
        "code": "lock_offline",
        "message": "offline",
        "lock_id": "zigbee-01",
    }
    assert response["transaction"] == "a"
    expired = (NOW - timedelta(days=1)).isoformat()
    response = await call(api, "lock/unlock", {"lock_id": "zigbee-01", "expires_at": expired})
    assert response["error"]["code"] == "command_expired"
    assert (await call(api, "lock/get", {"lock_id": "zigbee-9"}))["error"][
        "code"
    ] == "lock_not_found"
    assert (await call(api, "lock/get", b"{"))["error"]["code"] == "invalid_payload"
    assert (await call(api, "x", {}))["error"]["code"] == "unknown_command"
    assert (await call(api, "permit_join", {"protocol": "zigbee"}))["error"][
        "code"
    ] == "unsupported"
    assert len(driver.calls) == 2


async def test_events_from_driver_and_status(
    setup: tuple[Api, LockRegistry, ScriptedDriver, Store],
) -> None:
    api, registry, _, store = setup
    registry.outbox.take()
    registry.lock_status("zigbee-01", StatusUpdate(door_open=False, battery_level=80))
    registry.lock_status("zigbee-01", StatusUpdate(door_open=True))
    registry.lock_status("zigbee-01", StatusUpdate(battery_level=9))
    registry.lock_status("zigbee-01", StatusUpdate(online=False))
    registry.lock_event(
        "zigbee-01", DriverEvent(EventType.LOCK_UNLOCKED, {"method": "keypad", "slot": 4})
    )
    registry.lock_event("unknown", DriverEvent(EventType.LOCK_JAMMED))
    dirty, events = registry.outbox.take()
    assert dirty == {"zigbee-01"}
    assert [e.event_type for e in events] == [
        "door.opened",
        "device.battery_status_changed",
        "device.low_battery",
        "device.disconnected",
        "lock.unlocked",
    ]
    await store.add_events(events)
    listed = await call(
        api, "event/list", {"lock_id": "zigbee-01", "event_types": ["lock.unlocked"]}
    )
    assert [(e["method"], e["slot"]) for e in listed["data"]["events"]] == [("keypad", 4)]
    newest_first = await call(api, "event/list", {"limit": 2})
    assert [e["event_type"] for e in newest_first["data"]["events"]] == [
        "lock.unlocked",
        "device.disconnected",
    ]
    assert registry.get("zigbee-01").status.last_seen == NOW


def test_set_payloads() -> None:
    assert parse_set_payload(b"LOCK").action == "lock"
    assert parse_set_payload(b" unlock\n").action == "unlock"
    assert parse_set_payload(b'{"action": "unlock"}').action == "unlock"
    for bad in (b"OPEN", b"{}", b'{"action": "open"}', b"[]", b'{"action": "lock", "x": 1}'):
        with pytest.raises(InvalidPayloadError):
            parse_set_payload(bad)
    with pytest.raises(CommandExpiredError):
        parse_set_payload(b'{"action": "unlock", "expires_at": "2000-01-01T00:00:00+00:00"}')


def test_redaction() -> None:
    assert redact('{"code": "1234", "slot": 2}') == '{"code": "***", "slot": 2}'
    assert redact("pin=9876 token: abc") == "pin=*** token: ***"
    assert redact("slot 3 set") == "slot 3 set"
