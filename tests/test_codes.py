"""Code-slot conformance suite: the manager against a simulated lock, the device's truth checked.

Protocol-independent: each test runs on every simulated protocol in `PROTOCOLS`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.codes.clock import FakeClock
from tests.harness import START, Harness, harness, zigbee_config
from tests.services import TEST_PINS
from tests.zwave_support import zwave_config

PROTOCOLS = ["zigbee", "zwave"]
PIN_A, PIN_B, PIN_C = TEST_PINS

pytestmark = pytest.mark.parametrize("protocol", PROTOCOLS)


@pytest.fixture(autouse=True)
def _simulators(protocol: str, request: pytest.FixtureRequest) -> None:
    if protocol == "zwave":
        request.getfixturevalue("fresh_zwave")


def sim_config(protocol: str, **options: Any) -> dict[str, Any]:
    if protocol == "zwave":
        return zwave_config(**options)
    assert protocol == "zigbee"
    return zigbee_config(**options)


async def create(h: Harness, lock_id: str, pin: str, **fields: Any) -> dict[str, Any]:
    data = await h.ok("access_code/create", lock_id=lock_id, code=pin, **fields)
    code: dict[str, Any] = data["access_code"]
    assert code["status"] in ("unset", "setting")
    return code


async def test_ongoing_code_lifecycle(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A, name="cleaner")
        assert code["code"] == PIN_A
        await h.settle()
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["status"] == "set" and "code" not in stored
        slots = await h.true_slots(lock)
        assert [s["code"] for s in slots.values()] == [PIN_A]
        assert slots[stored["slot"]]["status"] == "enabled"
        revealed = await h.ok("access_code/get", access_code_id=code["access_code_id"], reveal=True)
        assert revealed["access_code"]["code"] == PIN_A
        listed = (await h.ok("access_code/list", lock_id=lock))["access_codes"]
        assert [c["access_code_id"] for c in listed] == [code["access_code_id"]]
        assert all("code" not in c for c in listed)

        await h.ok("access_code/delete", access_code_id=code["access_code_id"])
        await h.settle()
        assert await h.true_slots(lock) == {}
        assert h.event_types(code["access_code_id"]) == [
            "access_code.created",
            "access_code.set_on_device",
            "access_code.removed_from_device",
            "access_code.deleted",
        ]
        missing = await h.request("access_code/get", access_code_id=code["access_code_id"])
        assert missing["error"]["code"] == "access_code_not_found"


async def test_update_changes_the_code_on_the_lock(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A)
        await h.settle()
        await h.ok("access_code/update", access_code_id=code["access_code_id"], code=PIN_B)
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [PIN_B]
        assert "access_code.changed" in h.event_types(code["access_code_id"])


async def test_time_bound_code_scheduled_on_device(protocol: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        starts, ends = START + timedelta(hours=1), START + timedelta(hours=3)
        code = await create(h, lock, PIN_A, starts_at=starts.isoformat(), ends_at=ends.isoformat())
        assert code["type"] == "time_bound"
        await h.settle()
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["is_scheduled_on_device"] is True
        slot = (await h.true_slots(lock))[stored["slot"]]
        assert slot["user_type"] == "year_day_schedule_user"
        assert len(slot["schedules"]["year_day"]) == 1
        # The event follows the stored state; under load it may come a moment after settle.
        await h.wait_event("access_code.scheduled_on_device", access_code_id=code["access_code_id"])
        # The lock itself refuses it before its window, the bridge sends nothing at the start.
        native = h.native(lock)
        await h.sim.keypad_entry(native, PIN_A)
        frames = h.frames(lock)
        await clock.set(starts + timedelta(minutes=1))
        await h.settle()
        assert h.frames(lock) == frames
        await clock.set(ends + timedelta(seconds=1))
        await h.settle()
        assert await h.true_slots(lock) == {}
        assert h.event_types(code["access_code_id"])[-1] == "access_code.deleted"


async def test_recurring_code_scheduled_on_device(protocol: str, tmp_path: Path) -> None:
    clock = FakeClock(START)  # Tuesday 08:00 in Berlin
    window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A, schedule=window)
        await h.settle()
        slot = next(iter((await h.true_slots(lock)).values()))
        assert slot["user_type"] == "week_day_schedule_user"
        expected = {
            "zigbee": [[0b100, 10, 0, 12, 0]],  # ZCL DayMask: bit 2 is Tuesday
            "zwave": [  # Schedule Entry Lock: Sunday is 0
                {"weekday": 2, "startHour": 10, "startMinute": 0, "stopHour": 12, "stopMinute": 0}
            ],
        }
        assert slot["schedules"]["week_day"] == expected[protocol]
        assert code["type"] == "recurring"


async def test_bridge_schedules_windows_across_dst(protocol: str, tmp_path: Path) -> None:
    """Without native schedules the bridge sets and clears at the window's local boundaries."""
    clock = FakeClock(START)  # Tuesday 24 March 2026, 08:00 CET; DST starts Sunday 29 March
    window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    config = sim_config(protocol, week_day_schedules=0, year_day_schedules=0)
    async with harness(tmp_path, clock=clock, **config) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A, schedule=window)
        await h.settle()
        assert await h.true_slots(lock) == {}
        await clock.set(START + timedelta(hours=2))  # 10:00 CET
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [PIN_A]
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["is_scheduled_on_device"] is False and stored["status"] == "set"
        await clock.set(START + timedelta(hours=4))  # 12:00 CET
        await h.settle()
        assert await h.true_slots(lock) == {}
        # A week later the clocks have gone forward: 10:00 CEST is 08:00 UTC, not 09:00.
        next_week = START + timedelta(days=7)  # 07:00 UTC = 09:00 CEST
        await clock.set(next_week + timedelta(minutes=59))  # 09:59 CEST
        await h.settle()
        assert await h.true_slots(lock) == {}
        await clock.set(next_week + timedelta(hours=1))  # 10:00 CEST
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [PIN_A]
        await clock.set(next_week + timedelta(hours=3))  # 12:00 CEST
        await h.settle()
        assert await h.true_slots(lock) == {}


async def test_one_time_code_is_removed_after_use(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A, max_uses=1)
        await h.settle()
        await h.sim.keypad_entry(h.native(lock), PIN_A)
        unlocked = await h.wait_event("lock.unlocked", access_code_id=code["access_code_id"])
        assert unlocked.fields["method"] == "keypad"
        await h.wait_event("access_code.deleted", access_code_id=code["access_code_id"])
        assert await h.true_slots(lock) == {}
        assert h.event_types(code["access_code_id"])[-1] == "access_code.deleted"


async def test_duplicates_constraints_and_a_full_lock(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol, slots=3)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        await create(h, lock, PIN_A)
        duplicate = await h.request("access_code/create", lock_id=lock, code=PIN_A)
        assert duplicate["error"]["code"] == "duplicate_code"
        for bad in ("12", "123456789", "12ab"):
            refused = await h.request("access_code/create", lock_id=lock, code=bad)
            assert refused["error"]["code"] == "code_constraints_violated", bad
        await create(h, lock, PIN_B)
        await create(h, lock, PIN_C)
        full = await h.request("access_code/create", lock_id=lock, code="24681357")
        assert full["error"]["code"] == "no_free_slot"
        await h.settle()
        assert sorted(s["code"] for s in (await h.true_slots(lock)).values()) == sorted(TEST_PINS)


async def test_generate_code_fits_and_avoids_weak_and_existing(
    protocol: str, tmp_path: Path
) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        seen = set()
        for _ in range(30):
            data = await h.ok("access_code/generate_code", lock_id=lock, length=6)
            pin = data["code"]
            assert len(pin) == 6 and pin.isdigit()
            assert len(set(pin)) > 1 and pin not in ("123456", "654321")
            seen.add(pin)
        assert len(seen) > 25
        created = (await h.ok("access_code/create", lock_id=lock))["access_code"]
        assert 4 <= len(created["code"]) <= 8


async def test_unmanaged_codes_are_never_touched(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        native = h.native(lock)
        await h.sim.add_code(native, 1, PIN_C)  # programmed at the keypad, in slot 1
        await h.wait_event("access_code.unmanaged.detected", slot=1)
        await h.settle()
        found = (await h.ok("unmanaged_access_code/list", lock_id=lock))["unmanaged_access_codes"]
        assert [(u["slot"], u["code_known"]) for u in found] == [(1, True)]
        assert "code" not in found[0]
        assert "access_code.unmanaged.detected" in h.event_types()
        duplicate = await h.request("access_code/create", lock_id=lock, code=PIN_C)
        assert duplicate["error"]["code"] == "duplicate_code"
        first = await create(h, lock, PIN_A)
        second = await create(h, lock, PIN_B)
        await h.settle()
        slots = await h.true_slots(lock)
        assert slots[1]["code"] == PIN_C and len(slots) == 3
        for code in (first, second):
            await h.ok("access_code/delete", access_code_id=code["access_code_id"])
        await h.settle()
        assert {n: s["code"] for n, s in (await h.true_slots(lock)).items()} == {1: PIN_C}

        converted = await h.ok(
            "unmanaged_access_code/convert_to_managed",
            unmanaged_access_code_id=found[0]["unmanaged_access_code_id"],
            name="old",
        )
        assert converted["access_code"]["slot"] == 1
        assert (await h.ok("unmanaged_access_code/list", lock_id=lock))[
            "unmanaged_access_codes"
        ] == []
        await h.ok("access_code/delete", access_code_id=converted["access_code"]["access_code_id"])
        await h.settle()
        assert await h.true_slots(lock) == {}


async def test_code_changed_behind_the_bridge_is_reapplied(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, PIN_A)
        await h.settle()
        slot = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]["slot"]
        await h.sim.add_code(h.native(lock), slot, PIN_B)  # someone reprogrammed it at the lock
        await h.wait_event("access_code.modified_external", access_code_id=code["access_code_id"])
        await h.settle()
        assert (await h.true_slots(lock))[slot]["code"] == PIN_A


async def test_masked_lock_trusts_one_confirmed_write(protocol: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol, masked_codes=True)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        assert h.registry.get(lock).identity.capabilities.can_read_access_codes is False
        before = h.frames(lock)
        code = await create(h, lock, PIN_A)
        await h.settle()
        assert h.frames(lock) == before + 1, "exactly one write, no read-back"
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["status"] == "set"
        await clock.advance(timedelta(hours=1))
        await h.settle()
        assert h.frames(lock) == before + 1, "no set-read-set loop on a masked lock"


async def test_offline_lock_is_isolated_then_converges(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        away, present = h.lock_ids
        await h.sim.set_online(h.native(away), online=False)
        with pytest.raises(Exception, match="unreachable"):
            await h.driver.lock(h.native(away))
        group = await h.ok("access_code/create_multiple", lock_ids=[away, present], code=PIN_A)
        codes = {c["lock_id"]: c for c in group["access_codes"]}
        assert {c["common_code_key"] for c in codes.values()} == {group["common_code_key"]}
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(present)).values()] == [PIN_A]
        waiting = await h.ok("access_code/get", access_code_id=codes[away]["access_code_id"])
        assert [e["error_code"] for e in waiting["access_code"]["errors"]] == ["lock_offline"]
        plan = (await h.ok("access_code/plan", lock_id=away))["plans"][away]
        assert plan == [
            {"operation": "write", "slot": 1, "access_code_id": codes[away]["access_code_id"]}
        ]
        await h.sim.set_online(h.native(away), online=True)
        await h.wait_online(away)
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(away)).values()] == [PIN_A]
        done = await h.ok("access_code/get", access_code_id=codes[away]["access_code_id"])
        assert done["access_code"]["errors"] == [] and done["access_code"]["status"] == "set"


async def test_plan_matches_what_is_sent(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        await h.sim.set_online(h.native(lock), online=False)
        await h.request("lock/lock", lock_id=lock)  # the bridge notices the lock is away
        ids = [(await create(h, lock, pin))["access_code_id"] for pin in TEST_PINS]
        plan = (await h.ok("access_code/plan", lock_id=lock))["plans"][lock]
        assert [(p["operation"], p["access_code_id"]) for p in plan] == [("write", i) for i in ids]
        await h.sim.set_online(h.native(lock), online=True)
        await h.wait_online(lock)
        await h.settle()
        slots = await h.true_slots(lock)
        assert {p["slot"]: p["access_code_id"] for p in plan} == {
            stored["slot"]: stored["access_code_id"]
            for i in ids
            for stored in [(await h.ok("access_code/get", access_code_id=i))["access_code"]]
        }
        assert sorted(slots) == sorted(p["slot"] for p in plan)


async def test_radio_minimality(protocol: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        k = 5
        start = h.frames(lock)
        ids = [(await create(h, lock, f"{40000 + 1111 * i}"))["access_code_id"] for i in range(k)]
        await h.settle()
        # Lower bound on a readable lock: one write and one confirming read per code.
        assert h.frames(lock) - start == 2 * k
        start = h.frames(lock)
        await clock.advance(timedelta(hours=1))
        await h.settle()
        assert h.frames(lock) == start, "an idle hour costs no radio traffic"
        for access_code_id in ids:
            await h.ok("access_code/delete", access_code_id=access_code_id)
        await h.settle()
        assert h.frames(lock) - start == k
        ops = h.manager.radio_operations(lock)
        assert ops["write"] == k and ops["read"] == k and ops["clear"] == k


async def test_repeated_failures_are_reported_then_recovered(protocol: str, tmp_path: Path) -> None:
    async with harness(tmp_path, codes={"max_failures": 2}, **sim_config(protocol)) as h:
        await h.settle()
        lock, other = h.lock_ids
        h.sim.lose_frames(h.native(lock), 3)  # type: ignore[attr-defined]
        code = await create(h, lock, PIN_A)
        unaffected = await create(h, other, PIN_B)
        await h.settle(timeout=30)
        events = h.event_types(code["access_code_id"])
        assert "access_code.delay_in_setting_on_device" in events
        assert "access_code.failed_to_set_on_device" in events
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["status"] == "set" and stored["errors"] == []
        assert "access_code.failed_to_set_on_device" not in h.event_types(
            unaffected["access_code_id"]
        )


async def test_restart_keeps_codes_and_expires_first(protocol: str, tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        keep = await create(h, lock, PIN_A)
        short = await create(h, lock, PIN_B, ends_at=(START + timedelta(hours=1)).isoformat())
        await h.settle()
        assert len(await h.true_slots(lock)) == 2
    clock = FakeClock(START + timedelta(hours=2))
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [PIN_A]
        assert (await h.ok("access_code/get", access_code_id=keep["access_code_id"]))[
            "access_code"
        ]["status"] == "set"
        gone = await h.request("access_code/get", access_code_id=short["access_code_id"])
        assert gone["error"]["code"] == "access_code_not_found"
