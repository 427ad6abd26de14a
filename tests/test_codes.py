"""Code-slot conformance suite: the manager against a simulated lock, the device's truth checked.

Protocol-independent: each test runs on every simulated protocol in `PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.codes.clock import FakeClock
from bridge.driver import SlotWrite
from tests.harness import START, Harness, harness
from tests.protocols import PROTOCOLS, more_pins, pins, sim_config

pytestmark = [
    pytest.mark.parametrize("protocol", PROTOCOLS),
    pytest.mark.usefixtures("protocol_stack"),
]


def assert_date_range_on_device(
    protocol: str, slot: dict[str, Any], starts: datetime, ends: datetime
) -> None:
    if protocol == "ble":
        # Nuki time limits: allowed from/until dates, in the lock's local time.
        berlin = ZoneInfo("Europe/Berlin")
        local = [t.astimezone(berlin).replace(tzinfo=None).isoformat() for t in (starts, ends)]
        limit = slot["time_limit"]
        assert [limit["allowed_from"], limit["allowed_until"]] == local
        assert limit["weekdays"] == 0 and limit["from_minute"] == limit["until_minute"] == 0
        return
    assert slot["user_type"] == "year_day_schedule_user"
    assert len(slot["schedules"]["year_day"]) == 1


def assert_tuesday_window_on_device(protocol: str, slot: dict[str, Any]) -> None:
    if protocol == "ble":
        limit = slot["time_limit"]  # Nuki weekday bits: Monday is bit 6, Tuesday bit 5
        assert limit["weekdays"] == 0b0100000
        assert (limit["from_minute"], limit["until_minute"]) == (600, 720)
        assert limit["allowed_from"] is None and limit["allowed_until"] is None
        return
    assert slot["user_type"] == "week_day_schedule_user"
    expected = {
        "zigbee": [[0b100, 10, 0, 12, 0]],  # ZCL DayMask: bit 2 is Tuesday
        "zwave": [  # Schedule Entry Lock: Sunday is 0
            {"weekday": 2, "startHour": 10, "startMinute": 0, "stopHour": 12, "stopMinute": 0}
        ],
    }
    assert slot["schedules"]["week_day"] == expected[protocol]


async def create(h: Harness, lock_id: str, pin: str, **fields: Any) -> dict[str, Any]:
    data = await h.ok("access_code/create", lock_id=lock_id, code=pin, **fields)
    code: dict[str, Any] = data["access_code"]
    assert code["status"] in ("unset", "setting")
    return code


async def test_ongoing_code_lifecycle(protocol: str, tmp_path: Path) -> None:
    pin_a, _pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a, name="cleaner")
        assert code["code"] == pin_a
        await h.settle()
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["status"] == "set" and "code" not in stored
        slots = await h.true_slots(lock)
        assert [s["code"] for s in slots.values()] == [pin_a]
        assert slots[stored["slot"]]["status"] == "enabled"
        revealed = await h.ok("access_code/get", access_code_id=code["access_code_id"], reveal=True)
        assert revealed["access_code"]["code"] == pin_a
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
    pin_a, pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a)
        await h.settle()
        await h.ok("access_code/update", access_code_id=code["access_code_id"], code=pin_b)
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [pin_b]
        assert "access_code.changed" in h.event_types(code["access_code_id"])


async def test_time_bound_code_scheduled_on_device(protocol: str, tmp_path: Path) -> None:
    pin_a, _pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        starts, ends = START + timedelta(hours=1), START + timedelta(hours=3)
        code = await create(h, lock, pin_a, starts_at=starts.isoformat(), ends_at=ends.isoformat())
        assert code["type"] == "time_bound"
        await h.settle()
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["is_scheduled_on_device"] is True
        slot = (await h.true_slots(lock))[stored["slot"]]
        assert_date_range_on_device(protocol, slot, starts, ends)
        # The event follows the stored state; under load it may come a moment after settle.
        await h.wait_event("access_code.scheduled_on_device", access_code_id=code["access_code_id"])
        # The lock itself refuses it before its window, the bridge sends nothing at the start.
        native = h.native(lock)
        await h.sim.keypad_entry(native, pin_a)
        frames = h.frames(lock)
        await clock.set(starts + timedelta(minutes=1))
        await h.settle()
        assert h.frames(lock) == frames
        await clock.set(ends + timedelta(seconds=1))
        await h.settle()
        assert await h.true_slots(lock) == {}
        assert h.event_types(code["access_code_id"])[-1] == "access_code.deleted"


async def test_recurring_code_scheduled_on_device(protocol: str, tmp_path: Path) -> None:
    pin_a, _pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)  # Tuesday 08:00 in Berlin
    window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a, schedule=window)
        await h.settle()
        slot = next(iter((await h.true_slots(lock)).values()))
        assert_tuesday_window_on_device(protocol, slot)
        assert code["type"] == "recurring"


async def test_bridge_schedules_windows_across_dst(protocol: str, tmp_path: Path) -> None:
    """Without native schedules the bridge sets and clears at the window's local boundaries."""
    if protocol == "ble":
        pytest.skip("every Nuki keypad code can carry time limits: always scheduled on the lock")
    pin_a, _pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)  # Tuesday 24 March 2026, 08:00 CET; DST starts Sunday 29 March
    window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    config = sim_config(protocol, week_day_schedules=0, year_day_schedules=0)
    async with harness(tmp_path, clock=clock, **config) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a, schedule=window)
        await h.settle()
        assert await h.true_slots(lock) == {}
        await clock.set(START + timedelta(hours=2))  # 10:00 CET
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [pin_a]
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
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [pin_a]
        await clock.set(next_week + timedelta(hours=3))  # 12:00 CEST
        await h.settle()
        assert await h.true_slots(lock) == {}


async def test_a_codes_own_time_zone_sets_its_windows(protocol: str, tmp_path: Path) -> None:
    """A window in New York time on a Berlin lock: the bridge keeps it, in New York time."""
    clock = FakeClock(START)  # Tuesday 08:00 CET = 03:00 in New York (EDT since 8 March)
    window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    pin_a = pins(protocol)[0]
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a, schedule=window, timezone="America/New_York")
        await h.settle()
        await clock.set(START + timedelta(hours=2))  # 10:00 in Berlin, 05:00 in New York
        await h.settle()
        assert await h.true_slots(lock) == {}
        await clock.set(START + timedelta(hours=7))  # 10:00 in New York
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [pin_a]
        stored = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]
        assert stored["is_scheduled_on_device"] is False
        await clock.set(START + timedelta(hours=9))  # 12:00 in New York
        await h.settle()
        assert await h.true_slots(lock) == {}


async def test_one_time_code_is_removed_after_use(protocol: str, tmp_path: Path) -> None:
    pin_a, _pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a, max_uses=1)
        await h.settle()
        await h.sim.keypad_entry(h.native(lock), pin_a)
        unlocked = await h.wait_event("lock.unlocked", access_code_id=code["access_code_id"])
        assert unlocked.fields["method"] == "keypad"
        await h.wait_event("access_code.deleted", access_code_id=code["access_code_id"])
        assert await h.true_slots(lock) == {}
        assert h.event_types(code["access_code_id"])[-1] == "access_code.deleted"


async def test_duplicates_constraints_and_a_full_lock(protocol: str, tmp_path: Path) -> None:
    pin_a, pin_b, pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol, slots=3)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        await create(h, lock, pin_a)
        duplicate = await h.request("access_code/create", lock_id=lock, code=pin_a)
        assert duplicate["error"]["code"] == "duplicate_code"
        nuki_rules = ("123456", "102345") if protocol == "ble" else ()
        for bad in ("12", "123456789", "12ab", *nuki_rules):
            refused = await h.request("access_code/create", lock_id=lock, code=bad)
            assert refused["error"]["code"] == "code_constraints_violated", bad
        await create(h, lock, pin_b)
        await create(h, lock, pin_c)
        full = await h.request("access_code/create", lock_id=lock, code=more_pins(protocol, 1)[0])
        assert full["error"]["code"] == "no_free_slot"
        await h.settle()
        assert sorted(s["code"] for s in (await h.true_slots(lock)).values()) == sorted(
            pins(protocol)
        )


async def test_generate_code_fits_and_avoids_weak_and_existing(
    protocol: str, tmp_path: Path
) -> None:
    _pin_a, _pin_b, _pin_c = pins(protocol)
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


async def test_expose_codes_false_keeps_pins_out_of_every_response(
    protocol: str, tmp_path: Path
) -> None:
    pin_a = pins(protocol)[0]
    async with harness(tmp_path, mqtt={"expose_codes": False}, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        created = (await h.ok("access_code/create", lock_id=lock, code=pin_a))["access_code"]
        generated = await h.ok("access_code/create", lock_id=lock)
        revealed = await h.ok(
            "access_code/get", access_code_id=created["access_code_id"], reveal=True
        )
        proposal = await h.ok("access_code/generate_code", lock_id=lock)
        await h.settle()
        for shown in (created, generated["access_code"], revealed["access_code"], proposal):
            assert "code" not in shown and pin_a not in str(shown)
        assert proposal["length"] >= 4
        # The lock has both codes all the same.
        assert len(await h.true_slots(lock)) == 2


async def test_unmanaged_codes_are_never_touched(protocol: str, tmp_path: Path) -> None:
    pin_a, pin_b, pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        native = h.native(lock)
        await h.sim.add_code(native, 1, pin_c)  # programmed at the keypad, in slot 1
        await h.wait_event("access_code.unmanaged.detected", slot=1)
        await h.settle()
        found = (await h.ok("unmanaged_access_code/list", lock_id=lock))["unmanaged_access_codes"]
        assert [(u["slot"], u["code_known"]) for u in found] == [(1, True)]
        assert "code" not in found[0]
        assert "access_code.unmanaged.detected" in h.event_types()
        duplicate = await h.request("access_code/create", lock_id=lock, code=pin_c)
        assert duplicate["error"]["code"] == "duplicate_code"
        first = await create(h, lock, pin_a)
        second = await create(h, lock, pin_b)
        await h.settle()
        slots = await h.true_slots(lock)
        assert slots[1]["code"] == pin_c and len(slots) == 3
        for code in (first, second):
            await h.ok("access_code/delete", access_code_id=code["access_code_id"])
        await h.settle()
        assert {n: s["code"] for n, s in (await h.true_slots(lock)).items()} == {1: pin_c}

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
    pin_a, pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        code = await create(h, lock, pin_a)
        await h.settle()
        slot = (await h.ok("access_code/get", access_code_id=code["access_code_id"]))[
            "access_code"
        ]["slot"]
        await h.sim.add_code(h.native(lock), slot, pin_b)  # someone reprogrammed it at the lock
        await h.wait_event("access_code.modified_external", access_code_id=code["access_code_id"])
        await h.settle()
        assert (await h.true_slots(lock))[slot]["code"] == pin_a


async def test_masked_lock_trusts_one_confirmed_write(protocol: str, tmp_path: Path) -> None:
    if protocol == "ble":
        pytest.skip("Nuki locks always show their keypad codes to a paired bridge")
    pin_a, _pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol, masked_codes=True)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        assert h.registry.get(lock).identity.capabilities.can_read_access_codes is False
        before = h.frames(lock)
        code = await create(h, lock, pin_a)
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
    pin_a, _pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        away, present = h.lock_ids
        await h.sim.set_online(h.native(away), online=False)
        with pytest.raises(Exception, match="unreachable"):
            await h.driver.lock(h.native(away))
        group = await h.ok("access_code/create_multiple", lock_ids=[away, present], code=pin_a)
        codes = {c["lock_id"]: c for c in group["access_codes"]}
        assert {c["common_code_key"] for c in codes.values()} == {group["common_code_key"]}
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(present)).values()] == [pin_a]
        waiting = await h.ok("access_code/get", access_code_id=codes[away]["access_code_id"])
        assert [e["error_code"] for e in waiting["access_code"]["errors"]] == ["lock_offline"]
        plan = (await h.ok("access_code/plan", lock_id=away))["plans"][away]
        assert plan == [
            {"operation": "write", "slot": 1, "access_code_id": codes[away]["access_code_id"]}
        ]
        await h.sim.set_online(h.native(away), online=True)
        await h.wait_online(away)
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(away)).values()] == [pin_a]
        done = await h.ok("access_code/get", access_code_id=codes[away]["access_code_id"])
        assert done["access_code"]["errors"] == [] and done["access_code"]["status"] == "set"


async def test_waiting_writes_go_in_bulk_where_the_lock_takes_them(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        bulks: list[int] = []
        single_write = h.driver.write_slots

        async def write_slots(native_id: str, writes: Sequence[SlotWrite]) -> None:
            bulks.append(len(writes))
            await single_write(native_id, writes)

        monkeypatch.setattr(h.driver, "bulk_write_limit", lambda native_id: 4)
        monkeypatch.setattr(h.driver, "write_slots", write_slots)
        await h.sim.set_online(h.native(lock), online=False)
        await h.request("lock/lock", lock_id=lock)  # the bridge notices the lock is away
        wanted = more_pins(protocol, 6)
        for pin in wanted:
            await create(h, lock, pin)
        await h.sim.set_online(h.native(lock), online=True)
        await h.wait_online(lock)
        await h.settle()
        assert bulks == [4, 2]
        assert sorted(s["code"] for s in (await h.true_slots(lock)).values()) == sorted(wanted)
        ops = h.manager.radio_operations(lock)
        assert ops["bulk_write"] == 2 and "write" not in ops


async def test_plan_matches_what_is_sent(protocol: str, tmp_path: Path) -> None:
    _pin_a, _pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        await h.sim.set_online(h.native(lock), online=False)
        await h.request("lock/lock", lock_id=lock)  # the bridge notices the lock is away
        ids = [(await create(h, lock, pin))["access_code_id"] for pin in pins(protocol)]
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
    _pin_a, _pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        k = 5
        start = h.frames(lock)
        ids = [(await create(h, lock, pin))["access_code_id"] for pin in more_pins(protocol, k)]
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
    pin_a, pin_b, _pin_c = pins(protocol)
    async with harness(tmp_path, codes={"max_failures": 2}, **sim_config(protocol)) as h:
        await h.settle()
        lock, other = h.lock_ids
        h.sim.lose_frames(h.native(lock), 3)  # type: ignore[attr-defined]
        code = await create(h, lock, pin_a)
        unaffected = await create(h, other, pin_b)
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
    pin_a, pin_b, _pin_c = pins(protocol)
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        keep = await create(h, lock, pin_a)
        short = await create(h, lock, pin_b, ends_at=(START + timedelta(hours=1)).isoformat())
        await h.settle()
        assert len(await h.true_slots(lock)) == 2
    clock = FakeClock(START + timedelta(hours=2))
    async with harness(tmp_path, clock=clock, **sim_config(protocol)) as h:
        await h.settle()
        assert [s["code"] for s in (await h.true_slots(lock)).values()] == [pin_a]
        assert (await h.ok("access_code/get", access_code_id=keep["access_code_id"]))[
            "access_code"
        ]["status"] == "set"
        gone = await h.request("access_code/get", access_code_id=short["access_code_id"])
        assert gone["error"]["code"] == "access_code_not_found"
