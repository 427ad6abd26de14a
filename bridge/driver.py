"""The one abstract driver interface every protocol implements (SPEC §3).

A driver owns its radio, discovers locks, reports their state and events to a
`DriverSink`, and performs commands. Drivers are chosen by config and loaded by
name (see `drivers.load_driver`), so the core never imports a radio library and
a driver never imports MQTT.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Protocol

from bridge.errors import UnsupportedError
from bridge.model import DriverEvent, LockIdentity, StatusUpdate


class DriverSink(Protocol):
    """Where a driver reports what its locks do. Locks are named by their native id."""

    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None:
        """A lock was discovered (or re-discovered after a restart)."""

    def lock_status(self, native_id: str, update: StatusUpdate) -> None:
        """Part of a lock's state changed."""

    def lock_event(self, native_id: str, event: DriverEvent) -> None:
        """Something happened at the lock (SPEC §6)."""


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

    async def permit_join(self, seconds: int) -> None:
        raise UnsupportedError(f"{self.protocol} does not support permit-join")

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """A summary for `bridge/info`, without secrets (e.g. radio type, state)."""

    def simulator(self) -> SimulatorControl | None:
        """The simulator control, when the radio is simulated."""
        return None
