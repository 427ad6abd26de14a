"""The one abstract driver interface every protocol implements (SPEC §3).

A driver owns its radio, discovers locks, reports their state and events to a
`DriverSink`, and performs commands. Drivers are chosen by config and loaded by
name (see `drivers.load_driver`), so the core never imports a radio library and
a driver never imports MQTT.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from bridge.errors import UnsupportedError
from bridge.model import DriverEvent, LockIdentity, StatusUpdate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A weekly window in the lock's local time: weekdays (0 = Monday) and minutes of the day."""

    weekdays: frozenset[int]
    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class NativeSchedule:
    """When a code works, for locks that enforce schedules themselves (local wall-clock times)."""

    weekly: tuple[WeeklyWindow, ...] = ()
    ranges: tuple[tuple[datetime, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class SlotWrite:
    slot: int
    code: str = field(repr=False)
    enabled: bool = True
    schedule: NativeSchedule | None = None


@dataclass(frozen=True, slots=True)
class SlotReading:
    """What a lock says is in one of its code slots; `code` is None where the lock hides codes."""

    slot: int
    occupied: bool
    enabled: bool = False
    code: str | None = field(default=None, repr=False)


class DriverSink(Protocol):
    """Where a driver reports what its locks do. Locks are named by their native id."""

    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None:
        """A lock was discovered (or re-discovered after a restart)."""

    def lock_status(self, native_id: str, update: StatusUpdate) -> None:
        """Part of a lock's state changed."""

    def lock_event(self, native_id: str, event: DriverEvent) -> None:
        """Something happened at the lock (SPEC §6)."""

    def slot_changed(self, native_id: str, slot: int | None) -> None:
        """Codes were programmed at the lock itself (slot None: the lock did not say which)."""


class SimulatorControl(abc.ABC):
    """The control side of a simulated radio: what a person would do at the door (SPEC §8)."""

    @abc.abstractmethod
    async def keypad_entry(self, native_id: str, pin: str) -> None: ...

    @abc.abstractmethod
    async def manual(self, native_id: str, *, lock: bool) -> None: ...

    @abc.abstractmethod
    async def door(self, native_id: str, *, is_open: bool) -> None: ...

    @abc.abstractmethod
    async def set_online(self, native_id: str, *, online: bool) -> None: ...

    @abc.abstractmethod
    async def battery(self, native_id: str, level: int) -> None: ...

    @abc.abstractmethod
    async def add_code(self, native_id: str, slot: int, pin: str) -> None: ...

    @abc.abstractmethod
    async def slots(self, native_id: str) -> list[dict[str, Any]]:
        """The device's true slots: `slot`, `status`, `user_type`, and `code`."""

    @abc.abstractmethod
    def radio_operations(self, native_id: str) -> int:
        """How many frames the simulated device has received (for radio-minimality tests)."""


class LockDriver(abc.ABC):
    """One protocol's driver. Subclasses live in `drivers/<protocol>`."""

    protocol: ClassVar[str]

    def __init__(self, sink: DriverSink) -> None:
        self._sink = sink
        self._radio_ops: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Set when a background task ends: start-up waits on it for the locks to settle.
        self._progress = asyncio.Event()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in the background until it ends or `_cancel_tasks`, logging a failure."""
        task = asyncio.get_running_loop().create_task(self._guarded(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s task %s failed", self.protocol, name)
        finally:
            self._progress.set()

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def count_radio_operation(self, native_id: str) -> None:
        """Drivers call this for every request they send to a lock."""
        self._radio_ops[native_id] = self._radio_ops.get(native_id, 0) + 1

    def radio_operations(self, native_id: str) -> int:
        return self._radio_ops.get(native_id, 0)

    @abc.abstractmethod
    async def start(self) -> None:
        """Bring the radio up and report every known lock through the sink.

        Returns once the driver is ready to take commands; long-running work runs in
        tasks the driver owns until `stop`.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release the radio. Idempotent."""

    @abc.abstractmethod
    async def lock(self, native_id: str) -> bool:
        """Lock; return True when the device confirmed the new state."""

    @abc.abstractmethod
    async def unlock(self, native_id: str) -> bool:
        """Unlock; return True when the device confirmed the new state."""

    # Code slots. One call is one radio operation; the code-slot manager counts them.

    async def write_slot(self, native_id: str, write: SlotWrite) -> None:
        """Program a slot; raise `CodeSlotError` when the lock refuses the code."""
        raise UnsupportedError(f"{self.protocol} locks cannot be programmed")

    async def write_slots(self, native_id: str, writes: Sequence[SlotWrite]) -> None:
        """Program several slots; drivers of locks that take several codes at once override it."""
        for write in writes:
            await self.write_slot(native_id, write)

    def bulk_write_limit(self, native_id: str) -> int:
        """How many codes `write_slots` sends to this lock in one radio operation."""
        return 1

    async def read_slot(self, native_id: str, slot: int) -> SlotReading:
        raise UnsupportedError(f"{self.protocol} locks cannot read codes")

    async def clear_slot(self, native_id: str, slot: int) -> None:
        raise UnsupportedError(f"{self.protocol} locks cannot be programmed")

    async def permit_join(self, seconds: int) -> None:
        raise UnsupportedError(f"{self.protocol} does not support permit-join")

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """A summary for `bridge/info`, without secrets (e.g. radio type, state)."""

    def simulator(self) -> SimulatorControl | None:
        """The simulator control, when the radio is simulated."""
        return None
