"""The Zigbee driver: its pure mappings, and the real driver on zigpy against the simulated radio."""

# zigpy's integer types have unannotated constructors (as in pyproject's zigbee override).
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.closures import DoorLock
from zigpy.zcl.clusters.general import Basic, Ota

from bridge.config import ZigbeeConfig, ZigbeeSimulatorConfig
from bridge.driver import SimulatorControl
from bridge.errors import (
    DeviceTimeoutError,
    InvalidPayloadError,
    LockNotFoundError,
    LockOfflineError,
)
from bridge.model import (
    Capabilities,
    CodeRules,
    DriverEvent,
    EventType,
    LockIdentity,
    LockState,
    LockStatus,
    StatusUpdate,
)
from drivers.zigbee import mapping
from drivers.zigbee.driver import ZigbeeDriver
from simulators.zigbee.control import ieee_of
from simulators.zigbee.doorlock import LockData, LockSettings, SimDoorLock
from simulators.zigbee.radio import SimulatedRadio
from tests.services import TEST_PINS

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
# seed 3: lock n has the IEEE address 00:12:4b:00:03:<n as two bytes>:01.
LOCK_A = "zigbee-00124b0003000001"
LOCK_B = "zigbee-00124b0003000101"

# ZCL enumerations, spelled as numbers as they travel on the air.
KEYPAD, RF, MANUAL, RFID, INDETERMINATE = 0, 1, 2, 3, 0xFF
UNKNOWN_OR_MFG, LOCK, UNLOCK = 0, 1, 2
LOCK_FAIL_PIN, LOCK_FAIL_SCHEDULE, UNLOCK_FAIL_PIN, UNLOCK_FAIL_SCHEDULE = 3, 4, 5, 6
ONE_TOUCH_LOCK, KEY_LOCK, KEY_UNLOCK, AUTO_LOCK = 7, 8, 9, 10
SCHEDULE_LOCK, SCHEDULE_UNLOCK, MANUAL_LOCK, MANUAL_UNLOCK, NON_ACCESS_USER = 11, 12, 13, 14, 15
NO_USER = 0xFFFF


# Mapping: pure translations


@pytest.mark.parametrize(
    ("ieee", "expected"),
    [
        (t.EUI64.convert("00:12:4B:00:12:34:56:78"), "zigbee-00124b0012345678"),
        # On the air the address travels least significant byte first.
        (
            t.EUI64.deserialize(bytes.fromhex("78563412004b1200"))[0],
            "zigbee-00124b0012345678",
        ),
        (t.EUI64.convert("ff:ee:dd:cc:bb:aa:99:88"), "zigbee-ffeeddccbbaa9988"),
    ],
)
def test_native_id_is_protocol_and_sixteen_hex_digits(ieee: t.EUI64, expected: str) -> None:
    assert mapping.native_id(ieee) == expected
    assert ieee_of(expected) == ieee


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, LockState.LOCKED),
        (2, LockState.UNLOCKED),
        (0, LockState.JAMMED),  # Not_fully_locked
        (0xFF, LockState.UNKNOWN),  # Undefined
        (7, LockState.UNKNOWN),
        (None, LockState.UNKNOWN),
    ],
)
def test_lock_state(value: int | None, expected: LockState) -> None:
    assert mapping.lock_state(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, True),  # Open
        (1, False),  # Closed
        (3, True),  # Error_forced_open
        (2, None),  # Error_jammed
        (4, None),  # Error_unspecified
        (0xFF, None),  # Undefined
        (None, None),
    ],
)
def test_door_open(value: int | None, expected: bool | None) -> None:
    assert mapping.door_open(value) is expected


@pytest.mark.parametrize(
    ("half_percent", "expected"),
    [
        (200, 100),
        (170, 85),
        (1, 0),
        (0, 0),
        (254, 100),  # out of range: clamped
        (0xFF, None),  # unknown
        (None, None),
    ],
)
def test_battery_level(half_percent: int | None, expected: int | None) -> None:
    assert mapping.battery_level(half_percent) == expected


@pytest.mark.parametrize(
    ("source", "code", "user", "event_type", "fields"),
    [
        # Keypad: the slot is the bridge's (from 1); the ZCL user id counts from 0.
        (KEYPAD, UNLOCK, 4, EventType.LOCK_UNLOCKED, {"method": "keypad", "slot": 5}),
        (KEYPAD, UNLOCK, 0, EventType.LOCK_UNLOCKED, {"method": "keypad", "slot": 1}),
        (KEYPAD, LOCK, 2, EventType.LOCK_LOCKED, {"method": "keypad", "slot": 3}),
        (KEYPAD, UNLOCK, NO_USER, EventType.LOCK_UNLOCKED, {"method": "keypad"}),
        (KEYPAD, UNLOCK, 0xFF, EventType.LOCK_UNLOCKED, {"method": "keypad"}),
        # Manual and RF operations: no slot, even with a user id.
        (MANUAL, MANUAL_LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "manual"}),
        (MANUAL, MANUAL_UNLOCK, NO_USER, EventType.LOCK_UNLOCKED, {"method": "manual"}),
        (MANUAL, LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "manual"}),
        (MANUAL, KEY_UNLOCK, NO_USER, EventType.LOCK_UNLOCKED, {"method": "manual"}),
        (INDETERMINATE, KEY_LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "manual"}),
        (INDETERMINATE, ONE_TOUCH_LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "manual"}),
        (RF, LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "remote"}),
        (RF, UNLOCK, 3, EventType.LOCK_UNLOCKED, {"method": "remote"}),
        # The event code wins over the source where it says how the bolt moved.
        (INDETERMINATE, AUTO_LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "automatic"}),
        (KEYPAD, AUTO_LOCK, 2, EventType.LOCK_LOCKED, {"method": "automatic"}),
        (RF, SCHEDULE_LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "automatic"}),
        (RF, SCHEDULE_UNLOCK, NO_USER, EventType.LOCK_UNLOCKED, {"method": "automatic"}),
        # Sources without a method of their own.
        (INDETERMINATE, UNLOCK, NO_USER, EventType.LOCK_UNLOCKED, {"method": "unknown"}),
        (RFID, UNLOCK, 1, EventType.LOCK_UNLOCKED, {"method": "unknown"}),
        (9, LOCK, NO_USER, EventType.LOCK_LOCKED, {"method": "unknown"}),
        # Refusals.
        (
            KEYPAD,
            UNLOCK_FAIL_PIN,
            NO_USER,
            EventType.LOCK_ACCESS_DENIED,
            {"method": "keypad", "reason": "invalid_code"},
        ),
        (
            KEYPAD,
            LOCK_FAIL_PIN,
            NO_USER,
            EventType.LOCK_ACCESS_DENIED,
            {"method": "keypad", "reason": "invalid_code"},
        ),
        (
            KEYPAD,
            UNLOCK_FAIL_SCHEDULE,
            2,
            EventType.LOCK_ACCESS_DENIED,
            {"method": "keypad", "reason": "outside_schedule"},
        ),
        (
            RF,
            LOCK_FAIL_SCHEDULE,
            NO_USER,
            EventType.LOCK_ACCESS_DENIED,
            {"method": "remote", "reason": "outside_schedule"},
        ),
    ],
)
def test_operation_event(
    source: int, code: int, user: int, event_type: EventType, fields: dict[str, Any]
) -> None:
    assert mapping.operation_event(source, code, user) == DriverEvent(event_type, fields)


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (KEYPAD, UNKNOWN_OR_MFG),
        (KEYPAD, NON_ACCESS_USER),
        (RF, 0x7F),
        (INDETERMINATE, 0xFF),
    ],
)
def test_operation_event_without_a_lockbridge_event(source: int, code: int) -> None:
    assert mapping.operation_event(source, code, 1) is None


def test_capabilities_from_the_door_lock_attributes() -> None:
    caps = mapping.capabilities(10, 6, 10)
    assert caps == Capabilities(
        can_remotely_lock=True,
        can_remotely_unlock=True,
        has_keypad=True,
        can_program_access_codes=True,
        can_read_access_codes=True,
        supports_native_scheduling=False,
        slot_range=(1, 10),
        code_rules=CodeRules(min_length=6, max_length=10),
    )


@pytest.mark.parametrize(
    ("pin_users", "min_len", "max_len", "slot_range", "lengths"),
    [
        (None, None, None, (1, mapping.DEFAULT_SLOTS), (4, 8)),
        (0, 0, 0, (1, mapping.DEFAULT_SLOTS), (4, 8)),
        (5, None, 12, (1, 5), (4, 12)),
        (None, 6, None, (1, mapping.DEFAULT_SLOTS), (6, 8)),
        # A maximum below the minimum cannot be: the minimum wins.
        (5, 6, 4, (1, 5), (6, 6)),
        (None, 10, None, (1, mapping.DEFAULT_SLOTS), (10, 10)),
    ],
)
def test_capabilities_default_what_the_lock_does_not_report(
    pin_users: int | None,
    min_len: int | None,
    max_len: int | None,
    slot_range: tuple[int, int],
    lengths: tuple[int, int],
) -> None:
    caps = mapping.capabilities(pin_users, min_len, max_len)
    assert caps.slot_range == slot_range
    assert caps.code_rules is not None
    assert (caps.code_rules.min_length, caps.code_rules.max_length) == lengths
    assert caps.code_rules.characters == "0123456789"
    assert caps.has_keypad
    assert caps.can_read_access_codes


def test_capabilities_of_a_lock_that_does_not_send_pins() -> None:
    caps = mapping.capabilities(30, 4, 8, can_read_codes=False)
    assert caps.can_read_access_codes is False
    assert caps.can_program_access_codes is True


def test_identity() -> None:
    caps = mapping.capabilities(None, None, None)
    ieee = t.EUI64.convert("00:12:4b:00:12:34:56:78")
    assert mapping.identity(ieee, "Acme", "L1", caps) == LockIdentity(
        native_id="zigbee-00124b0012345678",
        protocol="zigbee",
        manufacturer="Acme",
        model="L1",
        capabilities=caps,
    )
    unnamed = mapping.identity(ieee, None, None, caps)
    assert (unnamed.manufacturer, unnamed.model) == (None, None)


# The driver on zigpy, against the simulated radio


class RecordingSink:
    """A `DriverSink` that keeps everything it is told, and each lock's resulting status."""

    def __init__(self) -> None:
        self.identities: dict[str, LockIdentity] = {}
        self.first_status: dict[str, StatusUpdate] = {}
        self.added = Counter[str]()
        self.current: dict[str, LockStatus] = {}
        self.updates: list[tuple[str, StatusUpdate]] = []
        self.events: list[tuple[str, DriverEvent]] = []
        self.slot_changes: list[tuple[str, int | None]] = []

    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None:
        self.identities[identity.native_id] = identity
        self.first_status[identity.native_id] = status
        self.added[identity.native_id] += 1
        self.current[identity.native_id] = status.apply(LockStatus(), NOW)

    def lock_status(self, native_id: str, update: StatusUpdate) -> None:
        assert native_id in self.current, f"status of {native_id} before it was added"
        self.updates.append((native_id, update))
        self.current[native_id] = update.apply(self.current[native_id], NOW)

    def lock_event(self, native_id: str, event: DriverEvent) -> None:
        self.events.append((native_id, event))

    def slot_changed(self, native_id: str, slot: int | None) -> None:
        self.slot_changes.append((native_id, slot))

    def events_of(self, native_id: str, since: int = 0) -> list[DriverEvent]:
        return [event for lock, event in self.events[since:] if lock == native_id]

    def updates_of(self, native_id: str, since: int = 0) -> list[StatusUpdate]:
        return [update for lock, update in self.updates[since:] if lock == native_id]

    async def new_events(self, native_id: str, since: int) -> list[DriverEvent]:
        """The lock's events after `since`, once there is one (and any that follow at once)."""
        await eventually(lambda: bool(self.events_of(native_id, since)), f"event of {native_id}")
        await quiet()
        return self.events_of(native_id, since)

    async def lock_state_becomes(self, native_id: str, state: LockState) -> None:
        await eventually(
            lambda: self.current[native_id].lock_state is state, f"{native_id} {state}"
        )


@dataclass
class Harness:
    driver: ZigbeeDriver
    sink: RecordingSink

    @property
    def sim(self) -> SimulatorControl:
        control = self.driver.simulator()
        assert control is not None
        return control

    @property
    def radio(self) -> SimulatedRadio:
        radio = self.driver._app
        assert isinstance(radio, SimulatedRadio)
        return radio

    def sim_lock(self, native_id: str) -> SimDoorLock:
        return self.radio.lock_by_ieee(ieee_of(native_id))


StartZigbee = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_zigbee(tmp_path: Path) -> AsyncIterator[StartZigbee]:
    """Start ZigbeeDriver on the simulated radio; every driver started is stopped afterwards."""
    drivers: list[ZigbeeDriver] = []

    async def start(*, command_timeout: float = 2, **simulator: Any) -> Harness:
        options: dict[str, Any] = {"locks": 2, "latency_ms": 1, "seed": 3, **simulator}
        config = ZigbeeConfig(
            enabled=True,
            radio="simulator",
            command_timeout=command_timeout,
            simulator=ZigbeeSimulatorConfig(**options),
        )
        sink = RecordingSink()
        driver = ZigbeeDriver(sink, config, tmp_path / "state")
        drivers.append(driver)
        await driver.start()
        return Harness(driver, sink)

    try:
        yield start
    finally:
        for driver in drivers:
            await driver.stop()


async def eventually(check: Callable[[], bool], what: str, timeout: float = 2.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within {timeout:g} s: {what}")


async def quiet(seconds: float = 0.05) -> None:
    """Let in-flight frames (reports, notifications) arrive; latency is 1 ms."""
    await asyncio.sleep(seconds)


async def test_start_reports_both_locks_with_identity_and_status(
    start_zigbee: StartZigbee,
) -> None:
    zb = await start_zigbee()
    sink = zb.sink
    assert set(sink.identities) == {LOCK_A, LOCK_B}
    assert sink.added == Counter({LOCK_A: 1, LOCK_B: 1})
    assert zb.driver.status() == {"state": "running", "radio": "simulator", "locks": 2}
    for native_id in (LOCK_A, LOCK_B):
        identity = sink.identities[native_id]
        # From the Basic cluster of the simulated lock.
        assert identity.protocol == "zigbee"
        assert (identity.manufacturer, identity.model) == ("lockbridge", "SimLock Z1")
        caps = identity.capabilities
        assert caps.slot_range == (1, 30)
        assert caps.code_rules is not None
        assert (caps.code_rules.min_length, caps.code_rules.max_length) == (4, 8)
        assert caps.has_keypad
        assert caps.can_read_access_codes
        assert caps.can_remotely_lock
        assert caps.can_remotely_unlock
        data = zb.sim_lock(native_id).data
        status = sink.first_status[native_id]
        assert status.online is True
        assert status.lock_state is mapping.lock_state(data.lock_state)
        assert status.lock_state in (LockState.LOCKED, LockState.UNLOCKED)
        assert status.door_open is False
        assert status.battery_level == data.battery


async def test_capabilities_follow_the_lock_attributes(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee(
        locks=1, slots=10, min_pin_length=6, max_pin_length=10, masked_codes=True
    )
    caps = zb.sink.identities[LOCK_A].capabilities
    assert caps.slot_range == (1, 10)
    assert caps.code_rules is not None
    assert (caps.code_rules.min_length, caps.code_rules.max_length) == (6, 10)
    # send_pin_ota is 0 on a lock that masks its codes.
    assert caps.can_read_access_codes is False


async def test_lock_and_unlock_confirm_and_report(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sink = zb.sink
    for command, state, event_type in (
        (zb.driver.unlock, LockState.UNLOCKED, EventType.LOCK_UNLOCKED),
        (zb.driver.lock, LockState.LOCKED, EventType.LOCK_LOCKED),
        (zb.driver.unlock, LockState.UNLOCKED, EventType.LOCK_UNLOCKED),
    ):
        since = len(sink.updates)
        events = len(sink.events)
        assert await command(LOCK_A) is True
        assert any(u.lock_state is state for u in sink.updates_of(LOCK_A, since))
        assert sink.current[LOCK_A].lock_state is state
        assert zb.sim_lock(LOCK_A).data.lock_state == (1 if state is LockState.LOCKED else 2)
        assert await sink.new_events(LOCK_A, events) == [
            DriverEvent(event_type, {"method": "remote"})
        ]
    # The other lock saw nothing of this.
    assert sink.updates_of(LOCK_B) == []
    assert sink.events_of(LOCK_B) == []


async def test_one_lock_command_is_exactly_one_frame(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim = zb.sim
    await quiet()
    before_a, before_b = sim.radio_operations(LOCK_A), sim.radio_operations(LOCK_B)
    events = len(zb.sink.events)
    assert await zb.driver.lock(LOCK_A)
    assert len(await zb.sink.new_events(LOCK_A, events)) == 1
    # lock_door only: nothing is read back, the lock's report and notification need no answer.
    assert sim.radio_operations(LOCK_A) - before_a == 1
    assert await zb.driver.unlock(LOCK_A)
    await quiet()
    assert sim.radio_operations(LOCK_A) - before_a == 2
    assert sim.radio_operations(LOCK_B) == before_b
    # What happens at the door costs no frame to the lock.
    await sim.keypad_entry(LOCK_A, TEST_PINS[2])
    await sim.door(LOCK_A, is_open=True)
    await quiet()
    assert sim.radio_operations(LOCK_A) - before_a == 2


async def test_keypad_entry_of_a_code_added_at_the_lock(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim, sink = zb.sim, zb.sink
    if sink.current[LOCK_A].lock_state is not LockState.LOCKED:
        assert await zb.driver.lock(LOCK_A)
    await sim.add_code(LOCK_A, 3, TEST_PINS[0])
    assert [s["slot"] for s in await sim.slots(LOCK_A)] == [3]
    await quiet()
    since, updates = len(sink.events), len(sink.updates)
    await sim.keypad_entry(LOCK_A, TEST_PINS[0])
    assert await sink.new_events(LOCK_A, since) == [
        DriverEvent(EventType.LOCK_UNLOCKED, {"method": "keypad", "slot": 3})
    ]
    await sink.lock_state_becomes(LOCK_A, LockState.UNLOCKED)
    assert any(u.lock_state is LockState.UNLOCKED for u in sink.updates_of(LOCK_A, updates))


async def test_wrong_pin_is_denied(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim, sink = zb.sim, zb.sink
    await sim.add_code(LOCK_A, 1, TEST_PINS[0])
    await quiet()
    state = sink.current[LOCK_A].lock_state
    since = len(sink.events)
    await sim.keypad_entry(LOCK_A, TEST_PINS[1])
    assert await sink.new_events(LOCK_A, since) == [
        DriverEvent(EventType.LOCK_ACCESS_DENIED, {"method": "keypad", "reason": "invalid_code"})
    ]
    assert sink.current[LOCK_A].lock_state is state


async def test_add_code_rejects_what_the_lock_refuses(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee(locks=1, slots=5)
    sim = zb.sim
    await sim.add_code(LOCK_A, 5, TEST_PINS[0])
    with pytest.raises(InvalidPayloadError):
        await sim.add_code(LOCK_A, 2, TEST_PINS[0])  # the same code in another slot
    with pytest.raises(InvalidPayloadError):
        await sim.add_code(LOCK_A, 6, TEST_PINS[1])  # no such slot
    with pytest.raises(InvalidPayloadError):
        await sim.add_code(LOCK_A, 1, "12")  # too short
    assert [s["slot"] for s in await sim.slots(LOCK_A)] == [5]
    with pytest.raises(LockNotFoundError):
        await sim.keypad_entry("zigbee-00124b00030000ff", TEST_PINS[0])


async def test_manual_operation(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim, sink = zb.sim, zb.sink
    for lock, state, event_type in (
        (False, LockState.UNLOCKED, EventType.LOCK_UNLOCKED),
        (True, LockState.LOCKED, EventType.LOCK_LOCKED),
    ):
        since = len(sink.events)
        await sim.manual(LOCK_B, lock=lock)
        assert await sink.new_events(LOCK_B, since) == [
            DriverEvent(event_type, {"method": "manual"})
        ]
        await sink.lock_state_becomes(LOCK_B, state)


async def test_door_and_battery_changes_are_reported(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim, sink = zb.sim, zb.sink
    await sim.door(LOCK_A, is_open=True)
    await eventually(lambda: sink.current[LOCK_A].door_open is True, "door open")
    await sim.door(LOCK_A, is_open=False)
    await eventually(lambda: sink.current[LOCK_A].door_open is False, "door closed")
    await sim.battery(LOCK_A, 40)
    await eventually(lambda: sink.current[LOCK_A].battery_level == 40, "battery at 40 %")
    await sim.battery(LOCK_A, 5)
    await eventually(lambda: sink.current[LOCK_A].battery_level == 5, "battery at 5 %")
    # None of this moved the bolt or touched the other lock.
    assert all(u.lock_state is None for u in sink.updates_of(LOCK_A))
    assert sink.updates_of(LOCK_B) == []


async def test_offline_lock_and_its_return(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee()
    sim, sink = zb.sim, zb.sink
    if sink.current[LOCK_A].lock_state is not LockState.LOCKED:
        assert await zb.driver.lock(LOCK_A)
    await sim.add_code(LOCK_A, 2, TEST_PINS[1])
    await quiet()

    await sim.set_online(LOCK_A, online=False)
    since = len(sink.updates)
    with pytest.raises(LockOfflineError):
        await zb.driver.lock(LOCK_A)
    assert sink.updates_of(LOCK_A, since) == [StatusUpdate(online=False)]
    assert sink.current[LOCK_A].online is False
    # The other lock is unaffected.
    assert await zb.driver.lock(LOCK_B)
    assert sink.current[LOCK_B].online is True

    # Someone unlocks at the door meanwhile: the bridge cannot hear it.
    events = len(sink.events)
    await sim.keypad_entry(LOCK_A, TEST_PINS[1])
    await quiet()
    assert sink.events_of(LOCK_A, events) == []
    assert sink.current[LOCK_A].lock_state is LockState.LOCKED

    # Back on the air, the lock announces itself; the driver reads what it missed.
    await sim.set_online(LOCK_A, online=True)
    await eventually(lambda: sink.current[LOCK_A].online is True, "online again")
    await sink.lock_state_becomes(LOCK_A, LockState.UNLOCKED)
    assert sink.added[LOCK_A] == 1
    assert await zb.driver.lock(LOCK_A)
    assert sink.current[LOCK_A].lock_state is LockState.LOCKED


async def test_restart_keeps_lock_ids_and_lock_state(start_zigbee: StartZigbee) -> None:
    first = await start_zigbee()
    initial_b = first.sink.current[LOCK_B].lock_state
    # Move lock A away from wherever it started.
    target = (
        LockState.UNLOCKED
        if first.sink.current[LOCK_A].lock_state is LockState.LOCKED
        else LockState.LOCKED
    )
    if target is LockState.LOCKED:
        assert await first.driver.lock(LOCK_A)
    else:
        assert await first.driver.unlock(LOCK_A)
    await first.sim.add_code(LOCK_A, 7, TEST_PINS[2])
    await first.sim.battery(LOCK_A, 55)
    await quiet()
    await first.driver.stop()

    second = await start_zigbee()
    assert set(second.sink.identities) == {LOCK_A, LOCK_B}
    assert second.sink.added == Counter({LOCK_A: 1, LOCK_B: 1})
    assert second.sink.identities == first.sink.identities
    assert second.sink.first_status[LOCK_A] == StatusUpdate(
        online=True, lock_state=target, door_open=False, battery_level=55
    )
    assert second.sink.first_status[LOCK_B].lock_state is initial_b
    # Known from the database: no interview, no binding, capabilities from the cache;
    # only the state and the battery are read again.
    await quiet()
    assert second.sim.radio_operations(LOCK_A) == 2
    # The code survived in the lock, and the driver hears the lock again.
    slots = await second.sim.slots(LOCK_A)
    assert [(s["slot"], s["code"] == TEST_PINS[2]) for s in slots] == [(7, True)]
    since = len(second.sink.events)
    await second.sim.keypad_entry(LOCK_A, TEST_PINS[2])
    assert await second.sink.new_events(LOCK_A, since) == [
        DriverEvent(EventType.LOCK_UNLOCKED, {"method": "keypad", "slot": 7})
    ]


async def test_slow_answer_times_out(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee(command_timeout=0.2)
    zb.radio.latency = 0.3  # a round trip now takes 0.45 s
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError) as raised:
        await zb.driver.unlock(LOCK_A)
    assert time.monotonic() - started < 0.4
    assert raised.value.lock_id == LOCK_A
    # Slow is not gone: the lock stays online and answers once the air is fast again.
    assert zb.sink.current[LOCK_A].online is True
    zb.radio.latency = 0.001
    assert await zb.driver.lock(LOCK_A)


async def test_stop_is_idempotent_and_leaves_no_simulator(start_zigbee: StartZigbee) -> None:
    zb = await start_zigbee(locks=1)
    await zb.driver.stop()
    await zb.driver.stop()
    assert zb.driver.status()["state"] == "stopped"
    assert zb.driver.simulator() is None
    with pytest.raises(LockOfflineError):
        await zb.driver.lock(LOCK_A)


# The simulated lock's frames, without zigpy in between

SIM_NWK = 0x1000
COORDINATOR = t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=t.NWK(0x0000))


def bare_lock() -> SimDoorLock:
    return SimDoorLock(
        t.EUI64.convert("00:12:4b:00:aa:00:00:01"),
        SIM_NWK,
        LockSettings(),
        LockData(),
        clock=datetime.now,
        send=lambda _packet: None,
        changed=lambda: None,
    )


def request(endpoint: int, cluster_id: int, frame: bytes, tsn: int) -> t.ZigbeePacket:
    return t.ZigbeePacket(
        src=COORDINATOR,
        src_ep=t.uint8_t(endpoint and 1),
        dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=t.NWK(SIM_NWK)),
        dst_ep=t.uint8_t(endpoint),
        tsn=t.uint8_t(tsn),
        profile_id=t.uint16_t(0x0104 if endpoint else 0x0000),
        cluster_id=t.uint16_t(cluster_id),
        data=t.SerializableBytes(frame),
    )


def read_attributes(
    cluster_id: int, attrid: int, direction: foundation.Direction, tsn: int
) -> t.ZigbeePacket:
    header = foundation.ZCLHeader.general(
        tsn=tsn, command_id=foundation.GeneralCommand.Read_Attributes, direction=direction
    )
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes].schema
    body = schema(attribute_ids=[t.uint16_t(attrid)]).serialize()
    return request(1, cluster_id, header.serialize() + body, tsn)


def answer(lock: SimDoorLock, packet: t.ZigbeePacket) -> t.ZigbeePacket:
    replies: list[t.ZigbeePacket] = []
    lock.receive(packet, replies.append)
    assert len(replies) == 1
    return replies[0]


@pytest.mark.parametrize(
    ("cluster_id", "attrid", "sent", "expected_direction", "value"),
    [
        # The OTA cluster is a client (output) cluster on the lock: the coordinator's OTA
        # server asks it, and the lock's answer travels client to server.
        (
            Ota.cluster_id,
            Ota.AttributeDefs.current_file_version.id,
            foundation.Direction.Server_to_Client,
            foundation.Direction.Client_to_Server,
            0x00010002,
        ),
        (
            Basic.cluster_id,
            Basic.AttributeDefs.model.id,
            foundation.Direction.Client_to_Server,
            foundation.Direction.Server_to_Client,
            "SimLock Z1",
        ),
        (
            DoorLock.cluster_id,
            DoorLock.AttributeDefs.num_of_pin_users_supported.id,
            foundation.Direction.Client_to_Server,
            foundation.Direction.Server_to_Client,
            30,
        ),
    ],
)
def test_read_attributes_reply_flips_direction_and_echoes_tsn(
    cluster_id: int,
    attrid: int,
    sent: foundation.Direction,
    expected_direction: foundation.Direction,
    value: Any,
) -> None:
    lock = bare_lock()
    reply = answer(lock, read_attributes(cluster_id, attrid, sent, tsn=0x5A))
    header, payload = foundation.ZCLHeader.deserialize(reply.data.serialize())
    assert header.frame_control.is_general
    assert header.command_id == foundation.GeneralCommand.Read_Attributes_rsp
    assert header.direction == expected_direction
    assert header.tsn == 0x5A
    assert reply.tsn == 0x5A
    assert int(reply.cluster_id) == cluster_id
    assert reply.dst == COORDINATOR
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
    response: Any
    response, rest = schema.deserialize(payload)
    assert rest == b""
    [record] = response.status_records
    assert record.attrid == attrid
    assert record.status == foundation.Status.SUCCESS
    assert record.value.value == value


def test_request_to_the_wrong_side_of_a_cluster_is_unsupported() -> None:
    """The lock has no OTA server: a client-to-server OTA frame is refused, the other way round."""
    lock = bare_lock()
    packet = read_attributes(
        Ota.cluster_id,
        Ota.AttributeDefs.current_file_version.id,
        foundation.Direction.Client_to_Server,
        tsn=0x21,
    )
    reply = answer(lock, packet)
    header, payload = foundation.ZCLHeader.deserialize(reply.data.serialize())
    assert header.command_id == foundation.GeneralCommand.Default_Response
    assert header.direction == foundation.Direction.Server_to_Client
    assert header.tsn == 0x21
    schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Default_Response].schema
    response: Any
    response, _ = schema.deserialize(payload)
    assert response.command_id == foundation.GeneralCommand.Read_Attributes
    assert response.status == foundation.Status.UNSUPPORTED_CLUSTER


def test_zdo_reply_echoes_tsn() -> None:
    lock = bare_lock()
    tsn = 0x33
    frame = t.uint8_t(tsn).serialize() + t.NWK(SIM_NWK).serialize()
    reply = answer(lock, request(0, zdo_t.ZDOCmd.Node_Desc_req, frame, tsn))
    assert reply.cluster_id == zdo_t.ZDOCmd.Node_Desc_rsp
    data = reply.data.serialize()
    assert data[0] == tsn
    _, schema = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Node_Desc_rsp]
    values, _ = t.deserialize(data[1:], schema)
    status, nwk, descriptor = values
    assert status == zdo_t.Status.SUCCESS
    assert nwk == SIM_NWK
    assert descriptor.logical_type == zdo_t.LogicalType.EndDevice
