"""The code-slot manager: desired codes (persisted) against each lock's slots.

It holds the desired access codes, what it knows of each lock's slots, and the
unmanaged codes found on locks. One `LockWorker` per lock brings the lock to the
desired state; a scheduler wakes locks at window boundaries. Every change of desired
state is persisted before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from bridge.codes import schedule
from bridge.codes.clock import Clock, SystemClock
from bridge.codes.model import AccessCode, Issue, UnmanagedCode
from bridge.codes.plan import LockView, Operation, SlotState, plan
from bridge.codes.vault import Vault
from bridge.config import Config
from bridge.errors import AccessCodeNotFoundError, LockNotFoundError
from bridge.model import Lock
from bridge.registry import LockRegistry
from bridge.store import Row, Store
from bridge.util import time_zone

log = logging.getLogger(__name__)

DEFAULT_SLOTS = (1, 30)


class CodeManager:
    def __init__(
        self,
        registry: LockRegistry,
        store: Store,
        vault: Vault,
        config: Config,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._vault = vault
        self.codes: dict[str, AccessCode] = {}
        self.slots: dict[str, dict[int, SlotState]] = {}
        self.unmanaged: dict[str, dict[int, UnmanagedCode]] = {}
        self.scanned: set[str] = set()
        self.probes: dict[str, set[int | None]] = {}
        self.operations: dict[str, dict[str, int]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._new_locks: asyncio.Queue[str] = asyncio.Queue()
        self._schedule_changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        registry.codes = self

    # Loading and running

    async def load(self) -> None:
        for data in await self.store.load_table("access_codes"):
            sealed = data.pop("code_sealed")
            data["code"] = self._vault.unseal(sealed, data["access_code_id"])
            code = AccessCode.model_validate(data)
            self.codes[code.access_code_id] = code
        for data in await self.store.load_table("code_slots"):
            self.slots.setdefault(data["lock_id"], {})[int(data["slot"])] = SlotState.from_json(
                data
            )
        for data in await self.store.load_table("unmanaged_codes"):
            sealed = data.pop("code_sealed", None)
            if sealed is not None:
                data["code"] = self._vault.unseal(sealed, f"{data['lock_id']}:{data['slot']}")
            found = UnmanagedCode.model_validate(data)
            self.unmanaged.setdefault(found.lock_id, {})[found.slot] = found
        scanned = await self.store.get_setting("codes.scanned")
        self.scanned = set(scanned.split(",")) if scanned else set()
        # Windows that passed while the bridge was down go first, before any other work.
        await self.expire(self.clock.now())

    async def run(self) -> None:
        from bridge.codes.reconciler import LockWorker  # noqa: PLC0415 - the worker needs this module

        async with asyncio.TaskGroup() as group:
            group.create_task(self._scheduler(), name="codes-scheduler")
            workers: dict[str, asyncio.Task[None]] = {}
            while True:
                lock_id = await self._new_locks.get()
                if lock_id not in workers:
                    worker = LockWorker(self, lock_id)
                    workers[lock_id] = group.create_task(worker.run(), name=f"codes-{lock_id}")

    # Hooks from the lock registry

    def lock_online(self, lock_id: str, online: bool) -> None:
        if lock_id not in self._wake:
            self._wake[lock_id] = asyncio.Event()
            self._new_locks.put_nowait(lock_id)
        if online:
            self.wake(lock_id)

    def slot_changed(self, lock_id: str, slot: int | None) -> None:
        """Someone programmed the lock itself: look at that slot (or every slot) once."""
        self.probes.setdefault(lock_id, set()).add(slot)
        self.wake(lock_id)

    def lock_event_fields(
        self, lock_id: str, event_type: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        slot = fields.get("slot")
        if event_type != "lock.unlocked" or not isinstance(slot, int):
            return {}
        state = self.slots.get(lock_id, {}).get(slot)
        code = self.codes.get(state.owner) if state is not None else None
        if code is None:
            found = self.unmanaged.get(lock_id, {}).get(slot)
            return {"unmanaged_access_code_id": found.unmanaged_access_code_id} if found else {}
        code.use_count += 1
        code.last_used_at = self.clock.now()
        if code.max_uses is not None and code.use_count >= code.max_uses:
            # Used up: it goes from the lock now.
            code.wanted = False
            code.status = "removing"
            self.wake(lock_id)
        self._spawn(self.save_code(code), f"codes-usage-{code.access_code_id}")
        return {"access_code_id": code.access_code_id}

    def summary(self, lock_id: str) -> dict[str, Any]:
        codes = [code for code in self.codes.values() if code.lock_id == lock_id]
        counts = {status: 0 for status in ("unset", "setting", "set", "removing")}
        for code in codes:
            counts[code.status] += 1
        return {
            "access_codes": {
                "total": len(codes),
                **counts,
                "with_errors": sum(bool(code.errors) for code in codes),
            },
            "unmanaged_access_codes": len(self.unmanaged.get(lock_id, {})),
            "radio_operations": self.radio_operations(lock_id),
        }

    # What each lock should have

    def lock_zone(self, lock_id: str) -> tzinfo:
        override = self._override(lock_id)
        return time_zone(
            override.timezone if override and override.timezone else self.config.timezone
        )

    def _override(self, lock_id: str) -> Any:
        for native_id, override in self.config.locks.items():
            if lock_id in (override.alias, native_id):
                return override
        return None

    def view(self, lock: Lock) -> LockView:
        caps = lock.identity.capabilities
        override = self._override(lock.lock_id)
        managed = (override.managed_slots if override else None) or caps.slot_range or DEFAULT_SLOTS
        return LockView(
            can_read=caps.can_read_access_codes and not (override and override.masked_codes),
            managed=(managed[0], managed[1]),
            unmanaged_slots=frozenset(self.unmanaged.get(lock.lock_id, {})),
        )

    def code_zone(self, code: AccessCode) -> tzinfo:
        """A code's own time zone where it names one, else its lock's."""
        return time_zone(code.timezone) if code.timezone else self.lock_zone(code.lock_id)

    def native(self, lock: Lock, code: AccessCode) -> bool:
        if not lock.identity.capabilities.supports_native_scheduling or code.type == "ongoing":
            return False
        # A lock keeps weekly windows in its own local time: windows meant for another zone
        # are enforced by the bridge instead.
        return code.type != "recurring" or self.code_zone(code) == self.lock_zone(lock.lock_id)

    def on_device(self, lock: Lock, now: datetime) -> dict[str, bool]:
        decision: dict[str, bool] = {}
        for code in self.codes_of(lock.lock_id):
            if not code.wanted:
                decision[code.access_code_id] = False
            elif self.native(lock, code):
                decision[code.access_code_id] = not schedule.expired(code, now)
            else:
                decision[code.access_code_id] = schedule.in_window(code, now, self.code_zone(code))
        return decision

    def plan_for(self, lock: Lock) -> list[Operation]:
        return plan(
            self.view(lock),
            self.codes_of(lock.lock_id),
            self.on_device(lock, self.clock.now()),
            self.slots.get(lock.lock_id, {}),
        )

    def codes_of(self, lock_id: str) -> list[AccessCode]:
        return [code for code in self.codes.values() if code.lock_id == lock_id]

    def get(self, access_code_id: str) -> AccessCode:
        code = self.codes.get(access_code_id)
        if code is None:
            raise AccessCodeNotFoundError(f"no access code {access_code_id!r}")
        return code

    def radio_operations(self, lock_id: str) -> dict[str, int]:
        """Code operations sent to the lock by kind, and every request its driver sent."""
        counts = dict(self.operations.get(lock_id, {}))
        counts["total"] = sum(counts.values())
        try:
            lock = self.registry.get(lock_id)
        except LockNotFoundError:
            return counts
        counts["frames"] = self.registry.driver_for(lock).radio_operations(lock.identity.native_id)
        return counts

    def count(self, lock_id: str, kind: str) -> None:
        counts = self.operations.setdefault(lock_id, {})
        counts[kind] = counts.get(kind, 0) + 1

    # Changes (each persisted before it is acknowledged)

    def new_id(self) -> str:
        return uuid.uuid4().hex

    async def add(self, codes: Iterable[AccessCode]) -> None:
        fresh = list(codes)
        await self.store.apply([self.code_row(code) for code in fresh])
        for code in fresh:
            self.codes[code.access_code_id] = code
            self.emit(code, "access_code.created")
            self.wake(code.lock_id)
        self._schedule_changed.set()

    async def replace(self, code: AccessCode) -> None:
        code.revision += 1
        code.errors = [issue for issue in code.errors if issue.error_code == "lock_offline"]
        code.updated_at = self.clock.now()
        await self.save_code(code)
        self.emit(code, "access_code.changed")
        self.wake(code.lock_id)
        self._schedule_changed.set()

    async def remove(self, code: AccessCode) -> None:
        code.wanted = False
        code.updated_at = self.clock.now()
        on_lock = any(
            state.owner == code.access_code_id
            for state in self.slots.get(code.lock_id, {}).values()
        )
        if not on_lock:
            # Never reached the lock: nothing to clear.
            await self.store.apply([self.forget_row(code)])
            self.codes.pop(code.access_code_id, None)
            self.emit(code, "access_code.deleted")
            return
        code.status = "removing"
        await self.save_code(code)
        self.wake(code.lock_id)

    async def expire(self, now: datetime) -> None:
        for code in list(self.codes.values()):
            if code.wanted and schedule.expired(code, now):
                log.info("access code %s on %s expired", code.access_code_id, code.lock_id)
                await self.remove(code)

    async def save_code(self, code: AccessCode) -> None:
        await self.store.apply([self.code_row(code)])
        self.registry.touch(code.lock_id)

    def code_row(self, code: AccessCode) -> Row:
        data = code.model_dump(mode="json", exclude={"code"})
        data["code_sealed"] = self._vault.seal(code.code, code.access_code_id)
        return Row("access_codes", (code.access_code_id,), data)

    def forget_row(self, code: AccessCode) -> Row:
        return Row("access_codes", (code.access_code_id,), None)

    def unmanaged_row(self, found: UnmanagedCode, *, delete: bool = False) -> Row:
        if delete:
            return Row("unmanaged_codes", (found.lock_id, found.slot), None)
        data = found.model_dump(mode="json", exclude={"code"})
        if found.code is not None:
            data["code_sealed"] = self._vault.seal(found.code, f"{found.lock_id}:{found.slot}")
        return Row("unmanaged_codes", (found.lock_id, found.slot), data)

    async def mark_scanned(self, lock_id: str) -> None:
        self.scanned.add(lock_id)
        await self.store.set_setting("codes.scanned", ",".join(sorted(self.scanned)))

    def issue(self, code: AccessCode, error_code: str, message: str) -> bool:
        """Add an error once; True when it is new."""
        if code.has_error(error_code):
            return False
        code.errors.append(
            Issue(error_code=error_code, message=message, created_at=self.clock.now())
        )
        return True

    def emit(self, code: AccessCode, event_type: str, **fields: Any) -> None:
        self.registry.emit(
            code.lock_id,
            event_type,
            {"access_code_id": code.access_code_id, "slot": code.slot, **fields},
        )
        self.registry.touch(code.lock_id)

    def wake(self, lock_id: str) -> None:
        event = self._wake.get(lock_id)
        if event is not None:
            event.set()

    def wake_event(self, lock_id: str) -> asyncio.Event:
        return self._wake.setdefault(lock_id, asyncio.Event())

    # Window boundaries: sleep until the next one, no polling.

    async def _scheduler(self) -> None:
        while True:
            self._schedule_changed.clear()
            now = self.clock.now()
            await self.expire(now)
            for lock_id in {code.lock_id for code in self.codes.values()}:
                self.wake(lock_id)
            boundaries = [
                b
                for code in self.codes.values()
                if code.wanted and (b := schedule.next_boundary(code, now, self.code_zone(code)))
            ]
            sleeper = asyncio.ensure_future(
                self.clock.sleep_until(min(boundaries)) if boundaries else asyncio.Event().wait()
            )
            changed = asyncio.ensure_future(self._schedule_changed.wait())
            try:
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (sleeper, changed):
                    waiter.cancel()
                await asyncio.gather(sleeper, changed, return_exceptions=True)

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background saves (used at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
