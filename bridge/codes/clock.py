"""The manager's sense of time, injectable so tests check windows and DST without sleeping."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Protocol

from bridge.model import utcnow


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, moment: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    async def sleep_until(self, moment: datetime) -> None:
        # Sleep in steps of at most an hour: the system clock may be set meanwhile.
        delay = (moment - utcnow()).total_seconds()
        await asyncio.sleep(max(0.0, min(delay, 3600.0)))


class FakeClock:
    """A clock that only moves when told to; sleepers wake when their moment has come."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= moment)

    async def advance(self, delta: timedelta) -> None:
        await self.set(self._now + delta)

    async def set(self, moment: datetime) -> None:
        async with self._moved:
            self._now = moment
            self._moved.notify_all()
        # Let woken sleepers run before the caller looks at the result.
        for _ in range(5):
            await asyncio.sleep(0)
