"""Lock conformance: the same lock behaviour, through the bridge, on every simulated protocol.

Lock and unlock with confirmation, state, events with method and slot, denials, door and
battery, and a lock that goes away and comes back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Harness, harness
from tests.protocols import PROTOCOLS, pins, sim_config

pytestmark = [
    pytest.mark.parametrize("protocol", PROTOCOLS),
    pytest.mark.usefixtures("protocol_stack"),
]


async def started(h: Harness) -> tuple[str, str]:
    await h.settle()
    first, second = h.lock_ids
    return first, second


async def test_lock_and_unlock_are_confirmed_and_reported(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        lock, other = await started(h)
        assert h.registry.get(lock).protocol == protocol
        untouched = h.registry.get(other).status.lock_state
        for action, state in (("unlock", "unlocked"), ("lock", "locked"), ("unlock", "unlocked")):
            data = await h.ok(f"lock/{action}", lock_id=lock)
            assert data["confirmed"] is True and data["lock_state"] == state
            assert h.registry.get(lock).status.lock_state.value == state
            event = await h.wait_event(f"lock.{action}ed", method="remote")
            assert event.lock_id == lock
            h.events.clear()
        assert h.registry.get(other).status.lock_state is untouched


async def test_keypad_entry_is_an_event_with_the_slot(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        lock, _ = await started(h)
        await h.sim.add_code(h.native(lock), 3, pins(protocol)[0])
        await h.sim.keypad_entry(h.native(lock), pins(protocol)[0])
        event = await h.wait_event("lock.unlocked", method="keypad")
        assert event.fields["slot"] == 3
        await h.wait_for(lambda: h.registry.get(lock).status.lock_state.value == "unlocked")


async def test_wrong_pin_is_denied(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        lock, _ = await started(h)
        await h.ok("lock/lock", lock_id=lock)
        await h.sim.add_code(h.native(lock), 1, pins(protocol)[0])
        await h.sim.keypad_entry(h.native(lock), pins(protocol)[1])
        event = await h.wait_event("lock.access_denied")
        assert event.fields["reason"] == "invalid_code"
        assert h.registry.get(lock).status.lock_state.value == "locked"
        assert "lock.unlocked" not in h.event_types()


async def test_manual_operation_door_and_battery(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        lock, _ = await started(h)
        native = h.native(lock)
        await h.sim.manual(native, lock=False)
        await h.wait_event("lock.unlocked", method="manual")
        await h.sim.manual(native, lock=True)
        await h.wait_event("lock.locked", method="manual")
        await h.sim.door(native, is_open=True)
        await h.wait_event("door.opened")
        await h.sim.door(native, is_open=False)
        await h.wait_event("door.closed")
        await h.sim.battery(native, 10)  # Nuki reports even percentages
        await h.wait_event("device.low_battery")
        status = h.registry.get(lock).status
        assert status.battery_level == 10 and status.battery_status is not None
        assert status.battery_status.value == "critical"


async def test_offline_lock_and_its_return(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        lock, other = await started(h)
        native = h.native(lock)
        await h.ok("lock/lock", lock_id=lock)
        await h.sim.add_code(native, 2, pins(protocol)[1])
        await h.sim.set_online(native, online=False)
        refused = await h.request("lock/unlock", lock_id=lock)
        assert refused["error"]["code"] == "lock_offline"
        await h.wait_online(lock, online=False)
        await h.wait_event("device.disconnected")
        # The other lock is unaffected.
        assert (await h.ok("lock/unlock", lock_id=other))["confirmed"] is True
        # Someone unlocks at the door meanwhile: the bridge cannot hear it.
        await h.sim.keypad_entry(native, pins(protocol)[1])
        assert h.registry.get(lock).status.lock_state.value == "locked"
        # Back on the air, the lock is online again with the state it has now.
        await h.sim.set_online(native, online=True)
        await h.wait_online(lock)
        await h.wait_event("device.connected")
        await h.wait_for(lambda: h.registry.get(lock).status.lock_state.value == "unlocked")
        assert (await h.ok("lock/lock", lock_id=lock))["confirmed"] is True
