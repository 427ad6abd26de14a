"""User Code CC slots and Schedule Entry Lock CC schedules, through zwave-js' CC APIs.

The CC APIs are used rather than `set_value`: setting a user code value makes zwave-js
schedule its own verification poll, while the bridge confirms writes itself with one
read-back (`get`), where the lock can be read at all. Bridge slot N is Z-Wave user id N.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from zwave_js_server.const import CommandClass

from bridge.driver import NativeSchedule, SlotReading, SlotWrite
from bridge.errors import CodeSlotError, DeviceTimeoutError
from drivers.zwave import mapping

# call(command class, API method, *args, what=...) -> the API's result (one round trip).
Call = Callable[..., Awaitable[Any]]


def zwave_weekday(weekday: int) -> int:
    """Schedule Entry Lock counts weekdays from Sunday = 0; lockbridge from Monday = 0."""
    return (weekday + 1) % 7


def _time_fields(prefix: str, moment: datetime) -> dict[str, int]:
    return {
        f"{prefix}Year": moment.year,
        f"{prefix}Month": moment.month,
        f"{prefix}Day": moment.day,
        f"{prefix}Hour": moment.hour,
        f"{prefix}Minute": moment.minute,
    }


def _entry(write: SlotWrite) -> dict[str, Any]:
    status = mapping.ENABLED if write.enabled else mapping.DISABLED
    return {"userId": write.slot, "userIdStatus": status, "userCode": write.code}


class ScheduleCapacity:
    def __init__(self, week_day_slots: int, year_day_slots: int) -> None:
        self.week_day_slots = week_day_slots
        self.year_day_slots = year_day_slots

    @property
    def native(self) -> bool:
        return self.week_day_slots > 0 and self.year_day_slots > 0


class CodeSlots:
    """One lock's code slots. `scheduled` remembers which slots carry schedules."""

    def __init__(self, call: Call, capacity: ScheduleCapacity, *, bulk: bool) -> None:
        self._call = call
        self.capacity = capacity
        self.bulk = bulk
        self.masked = False
        self._scheduled: dict[int, tuple[int, int]] = {}
        # Slots whose last write the lock refused as a duplicate (Access Control event 0x0F).
        self.refused: set[int] = set()

    async def write(self, write: SlotWrite) -> None:
        self.refused.discard(write.slot)
        await self._call(
            CommandClass.USER_CODE,
            "set",
            write.slot,
            _entry(write)["userIdStatus"],
            write.code,
            what=f"set code in slot {write.slot}",
        )
        await self._schedule(write.slot, write.schedule)

    async def write_many(self, writes: Sequence[SlotWrite]) -> None:
        """Several codes: one Extended User Code Set where the lock takes multiple codes."""
        if not self.bulk or len(writes) < 2 or any(w.schedule for w in writes):
            for write in writes:
                await self.write(write)
            return
        await self._call(
            CommandClass.USER_CODE,
            "setMany",
            [_entry(write) for write in writes],
            what=f"set codes in slots {', '.join(str(w.slot) for w in writes)}",
        )
        for write in writes:
            await self._schedule(write.slot, None)

    async def read(self, slot: int) -> SlotReading:
        result = await self._call(CommandClass.USER_CODE, "get", slot, what=f"read slot {slot}")
        if not isinstance(result, dict):
            raise DeviceTimeoutError(f"read slot {slot}: the lock did not answer")
        if slot in self.refused:
            # Without Supervision, a refused code shows only in this event: no write loop.
            self.refused.discard(slot)
            raise CodeSlotError(
                f"slot {slot}: the lock holds this code in another slot",
                reason="duplicate_code_on_device",
            )
        status = result.get("userIdStatus")
        if not mapping.slot_occupied(status):
            return SlotReading(slot=slot, occupied=False)
        code = result.get("userCode")
        if mapping.is_masked(code):
            self.masked = True
            code = None
        return SlotReading(
            slot=slot,
            occupied=True,
            enabled=status != mapping.DISABLED,
            code=str(code) if code else None,
        )

    async def clear(self, slot: int) -> None:
        await self._call(CommandClass.USER_CODE, "clear", slot, what=f"clear slot {slot}")
        await self._schedule(slot, None)

    async def _schedule(self, slot: int, schedule: NativeSchedule | None) -> None:
        """Place a code's schedule on the lock; drop the entries of an earlier one."""
        old_week, old_year = self._scheduled.pop(slot, (0, 0))
        week: list[dict[str, int]] = []
        year: list[dict[str, int]] = []
        if schedule is not None:
            for window in schedule.weekly:
                end = min(window.end_minute, 24 * 60 - 1)
                for day in sorted(window.weekdays):
                    week.append(
                        {
                            "weekday": zwave_weekday(day),
                            "startHour": window.start_minute // 60,
                            "startMinute": window.start_minute % 60,
                            "stopHour": end // 60,
                            "stopMinute": end % 60,
                        }
                    )
            for start, finish in schedule.ranges:
                year.append({**_time_fields("start", start), **_time_fields("stop", finish)})
        if len(week) > self.capacity.week_day_slots or len(year) > self.capacity.year_day_slots:
            raise CodeSlotError(
                f"slot {slot}: the lock has too few schedule slots for this schedule",
                reason="failed_to_set_on_device",
            )
        for index, entry in enumerate(week, start=1):
            await self._set_schedule("setWeekDaySchedule", slot, index, entry)
        for index, entry in enumerate(year, start=1):
            await self._set_schedule("setYearDaySchedule", slot, index, entry)
        for index in range(len(week) + 1, old_week + 1):
            await self._set_schedule("setWeekDaySchedule", slot, index, None)
        for index in range(len(year) + 1, old_year + 1):
            await self._set_schedule("setYearDaySchedule", slot, index, None)
        if week or year:
            await self._call(
                CommandClass.SCHEDULE_ENTRY_LOCK,
                "setEnabled",
                True,
                slot,
                what=f"enable the schedule of slot {slot}",
            )
            self._scheduled[slot] = (len(week), len(year))

    async def _set_schedule(
        self, method: str, slot: int, index: int, entry: dict[str, int] | None
    ) -> None:
        args: list[Any] = [{"userId": slot, "slotId": index}]
        if entry is not None:
            args.append(entry)
        await self._call(
            CommandClass.SCHEDULE_ENTRY_LOCK,
            method,
            *args,
            what=f"{method} {index} of slot {slot}",
        )
