"""PIN slots on the Zigbee Door Lock cluster: bridge slot N is ZCL user id N-1.

Time-bound codes become year-day schedules and recurring ones week-day schedules, with
the user type set to match, so the lock itself enforces them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import zigpy.types as t
from zigpy.zcl import Cluster, foundation
from zigpy.zcl.clusters.closures import UserStatus, UserType

from bridge.driver import NativeSchedule, SlotReading, SlotWrite
from bridge.errors import CodeSlotError

ZIGBEE_EPOCH = datetime(2000, 1, 1)
# set_pin_code_response status values of the ZCL Door Lock cluster.
_SET_PIN_REFUSALS = {
    0x01: "code_constraints_violated",
    0x02: "no_space_for_access_code_on_device",
    0x03: "duplicate_code_on_device",
}

Radio = Callable[[Awaitable[Any], str], Awaitable[Any]]


def user_id(slot: int) -> int:
    return slot - 1


def day_mask(weekdays: frozenset[int]) -> int:
    """ZCL DayMask: bit 0 is Sunday; lockbridge weekdays count from Monday = 0."""
    return sum(1 << ((day + 1) % 7) for day in weekdays)


def local_time(moment: datetime) -> int:
    return max(0, int((moment.replace(tzinfo=None) - ZIGBEE_EPOCH).total_seconds()))


def _status(response: Any) -> int:
    status = getattr(response, "status", None)
    return int(status) if status is not None else -1


async def write(cluster: Cluster, radio: Radio, request: SlotWrite) -> None:
    user = user_id(request.slot)
    schedule = request.schedule or NativeSchedule()
    if schedule.ranges:
        user_type = UserType.Year_Day_Schedule_User
    elif schedule.weekly:
        user_type = UserType.Week_Day_Schedule_User
    else:
        user_type = UserType.Unrestricted
    status = UserStatus.Enabled if request.enabled else UserStatus.Disabled
    response = await radio(
        cluster.set_pin_code(user, status, user_type, request.code),
        f"set code in slot {request.slot}",
    )
    result = _status(response)
    if result != foundation.Status.SUCCESS:
        reason = _SET_PIN_REFUSALS.get(result, "failed_to_set_on_device")
        raise CodeSlotError(
            f"slot {request.slot}: the lock refused the code ({reason})", reason=reason
        )
    for index, window in enumerate(schedule.weekly):
        end = min(window.end_minute, 24 * 60 - 1)
        response = await radio(
            cluster.set_week_day_schedule(
                index,
                user,
                day_mask(window.weekdays),
                window.start_minute // 60,
                window.start_minute % 60,
                end // 60,
                end % 60,
            ),
            f"set week-day schedule {index} of slot {request.slot}",
        )
        _require_success(response, request.slot, "week-day schedule")
    for index, (start, finish) in enumerate(schedule.ranges):
        response = await radio(
            cluster.set_year_day_schedule(
                index, user, t.LocalTime(local_time(start)), t.LocalTime(local_time(finish))
            ),
            f"set year-day schedule {index} of slot {request.slot}",
        )
        _require_success(response, request.slot, "year-day schedule")


def _require_success(response: Any, slot: int, what: str) -> None:
    if _status(response) != foundation.Status.SUCCESS:
        raise CodeSlotError(
            f"slot {slot}: the lock refused the {what}", reason="failed_to_set_on_device"
        )


async def read(cluster: Cluster, radio: Radio, slot: int) -> SlotReading:
    response = await radio(cluster.get_pin_code(user_id(slot)), f"read slot {slot}")
    status = int(getattr(response, "user_status", UserStatus.Available))
    if status not in (UserStatus.Enabled, UserStatus.Disabled):
        return SlotReading(slot=slot, occupied=False)
    code = str(getattr(response, "code", "") or "")
    return SlotReading(
        slot=slot,
        occupied=True,
        enabled=status == UserStatus.Enabled,
        code=code or None,
    )


async def clear(cluster: Cluster, radio: Radio, slot: int) -> None:
    response = await radio(cluster.clear_pin_code(user_id(slot)), f"clear slot {slot}")
    if _status(response) != foundation.Status.SUCCESS:
        raise CodeSlotError(
            f"slot {slot}: the lock did not clear it", reason="failed_to_remove_from_device"
        )
