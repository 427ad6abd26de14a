"""When a code should work: windows in local wall-clock time, correct across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from bridge.codes.model import WEEKDAYS, AccessCode, Window, minute_of
from bridge.driver import NativeSchedule, WeeklyWindow


def _weekdays(window: Window) -> frozenset[int]:
    return frozenset(WEEKDAYS.index(day) for day in window.days)


def in_window(code: AccessCode, now: datetime, tz: tzinfo) -> bool:
    """True while the code should open the door (bounds and weekly windows alike)."""
    if code.starts_at is not None and now < code.starts_at:
        return False
    if code.ends_at is not None and now >= code.ends_at:
        return False
    if code.type != "recurring" or not code.schedule:
        return True
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    return any(
        local.weekday() in _weekdays(window)
        and minute_of(window.start) <= minute < minute_of(window.end)
        for window in code.schedule
    )


def expired(code: AccessCode, now: datetime) -> bool:
    return code.ends_at is not None and now >= code.ends_at


def _local_instant(day: date, minute: int, tz: tzinfo) -> datetime:
    """The instant a local wall-clock minute happens.

    A time that DST skips lands just after the gap, and a repeated time means its first
    occurrence (fold=0), so a window is never lost nor run twice.
    """
    naive = datetime.combine(day, time(0)) + timedelta(minutes=minute)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def next_boundary(code: AccessCode, now: datetime, tz: tzinfo) -> datetime | None:
    """The next instant after `now` at which `in_window` or `expired` may change."""
    candidates = [b for b in (code.starts_at, code.ends_at) if b is not None and b > now]
    if code.type == "recurring" and code.schedule:
        today = now.astimezone(tz).date()
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            for window in code.schedule:
                if day.weekday() not in _weekdays(window):
                    continue
                for minute in (minute_of(window.start), minute_of(window.end)):
                    instant = _local_instant(day, minute, tz)
                    if instant > now:
                        candidates.append(instant)
    return min(candidates) if candidates else None


def native_schedule(code: AccessCode, tz: tzinfo) -> NativeSchedule | None:
    """The schedule a lock enforces itself, in its local time; None for ongoing codes."""
    if code.type == "recurring" and code.schedule:
        return NativeSchedule(
            weekly=tuple(
                WeeklyWindow(_weekdays(w), minute_of(w.start), minute_of(w.end))
                for w in code.schedule
            )
        )
    if code.type == "time_bound" and code.starts_at is not None and code.ends_at is not None:
        start = code.starts_at.astimezone(tz).replace(tzinfo=None)
        end = code.ends_at.astimezone(tz).replace(tzinfo=None)
        return NativeSchedule(ranges=((start, end),))
    return None
