"""One worker per lock: one radio operation at a time, what the plan says, nothing when idle."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from bridge.codes import schedule
from bridge.codes.model import AccessCode, UnmanagedCode
from bridge.codes.plan import Operation, SlotState
from bridge.driver import LockDriver, SlotWrite
from bridge.errors import (
    CodeSlotError,
    DeviceTimeoutError,
    LockbridgeError,
    LockNotFoundError,
    LockOfflineError,
)
from bridge.model import Lock
from bridge.store import Row
from bridge.util import backoff_delay

if TYPE_CHECKING:
    from bridge.codes.manager import CodeManager

log = logging.getLogger(__name__)

ROUND_TRIP_TIMEOUT = 30.0


class LockWorker:
    def __init__(self, manager: CodeManager, lock_id: str) -> None:
        self.m = manager
        self.lock_id = lock_id
        self.failures = 0
        # After a refused bulk write, until the lock is in sync again.
        self.single_writes = False
        # The operation under way, for the code a failure is reported on.
        self._current: Operation | None = None

    async def run(self) -> None:
        wake = self.m.wake_event(self.lock_id)
        retry_in: float | None = None
        while True:
            try:
                # Idle until there is work, or until a failed operation is due again.
                async with asyncio.timeout(retry_in):
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            try:
                retry_in = await self._converge()
            except LockNotFoundError:
                retry_in = None

    def _lock(self) -> Lock:
        return self.m.registry.get(self.lock_id)

    def _driver(self) -> LockDriver:
        return self.m.registry.driver_for(self._lock())

    async def _converge(self) -> float | None:
        """Work until the lock matches; the delay before a retry when an operation failed."""
        while True:
            lock = self._lock()
            if not lock.status.online:
                await self._mark_offline()
                return None
            if not lock.identity.capabilities.can_program_access_codes:
                return None
            try:
                if self.m.view(lock).can_read and self.lock_id not in self.m.scanned:
                    await self._scan(lock)
                    continue
                if self.m.probes.get(self.lock_id):
                    await self._probe(lock)
                    continue
                operations = self.m.plan_for(lock)
                if not operations:
                    self.failures = 0
                    self.single_writes = False
                    return None
                batch = self._bulk(lock, operations)
                if len(batch) > 1:
                    await self._write_many(lock, batch)
                else:
                    await self._execute(lock, operations[0])
                self.failures = 0
            except LockOfflineError:
                await self._mark_offline()
                return None
            except LockbridgeError as err:
                return await self._failed(err)

    # Operations

    def _bulk(self, lock: Lock, operations: list[Operation]) -> list[Operation]:
        """The writes at the head of the plan that may go to the lock in one operation."""
        if self.single_writes:
            return []
        limit = self._driver().bulk_write_limit(lock.identity.native_id)

        def plain_write(op: Operation) -> bool:
            # A code with a schedule on the lock goes alone: its schedule is a write of its own.
            code = self.m.codes.get(op.access_code_id or "")
            return op.kind == "write" and code is not None and not self.m.native(lock, code)

        return list(itertools.takewhile(plain_write, operations))[:limit]

    async def _execute(self, lock: Lock, op: Operation) -> None:
        native_id = lock.identity.native_id
        driver = self._driver()
        slots = self.m.slots.setdefault(self.lock_id, {})
        code = self.m.codes.get(op.access_code_id) if op.access_code_id else None
        self._current = op
        if op.kind == "clear":
            state = slots[op.slot]
            state.phase = "pending_clear"
            await self.m.store.apply(
                [Row("code_slots", (self.lock_id, op.slot), state.to_json(self.lock_id))]
            )
            self.m.count(self.lock_id, "clear")
            await _bounded(driver.clear_slot(native_id, op.slot))
            del slots[op.slot]
            await self._cleared(state, code)
            return
        assert code is not None
        if op.kind == "write":
            await self._write(lock, driver, code, op.slot)
        else:
            await self._confirm(lock, driver, code, op.slot)

    def _claim(self, lock: Lock, code: AccessCode, slot: int) -> tuple[SlotState, SlotWrite]:
        """Make the slot the code's (in memory); the caller persists it before the write leaves."""
        state = SlotState(slot, code.access_code_id, code.revision, "pending_write")
        code.slot = slot
        code.status = "setting"
        self.m.slots.setdefault(self.lock_id, {})[slot] = state
        request = SlotWrite(
            slot=slot,
            code=code.code,
            schedule=schedule.native_schedule(code, self.m.lock_zone(self.lock_id))
            if self.m.native(lock, code)
            else None,
        )
        return state, request

    def _claim_rows(self, code: AccessCode, state: SlotState) -> list[Row]:
        return [
            self.m.code_row(code),
            Row("code_slots", (self.lock_id, state.slot), state.to_json(self.lock_id)),
        ]

    async def _write(self, lock: Lock, driver: LockDriver, code: AccessCode, slot: int) -> None:
        state, request = self._claim(lock, code, slot)
        # The slot is ours before the write leaves: a crash now leaves no orphan behind.
        await self.m.store.apply(self._claim_rows(code, state))
        self.m.registry.touch(self.lock_id)
        self.m.count(self.lock_id, "write")
        try:
            await _bounded(driver.write_slot(lock.identity.native_id, request))
        except CodeSlotError as err:
            del self.m.slots[self.lock_id][slot]
            code.status = "unset"
            self.m.issue(code, err.reason, err.message)
            await self.m.store.apply(
                [self.m.code_row(code), Row("code_slots", (self.lock_id, slot), None)]
            )
            self.m.emit(code, "access_code.failed_to_set_on_device", error_code=err.reason)
            return
        await self._written(lock, code, state)

    async def _write_many(self, lock: Lock, batch: list[Operation]) -> None:
        """Several codes in one radio operation, on locks that take them so."""
        targets = [(self.m.codes[op.access_code_id], op.slot) for op in batch if op.access_code_id]
        codes = [code for code, _ in targets]
        claims = [self._claim(lock, code, slot) for code, slot in targets]
        rows = [
            row
            for code, (state, _) in zip(codes, claims, strict=True)
            for row in self._claim_rows(code, state)
        ]
        await self.m.store.apply(rows)
        self.m.registry.touch(self.lock_id)
        self._current = batch[0]
        self.m.count(self.lock_id, "bulk_write")
        try:
            await _bounded(
                self._driver().write_slots(lock.identity.native_id, [r for _, r in claims])
            )
        except CodeSlotError as err:
            # The lock does not say which code it refused: one by one, the culprit shows.
            log.info(
                "%s refused a bulk write (%s); writing one code at a time", self.lock_id, err.reason
            )
            self.single_writes = True
            for state, _ in claims:
                state.revision = -1
            await self.m.store.apply(
                [
                    Row("code_slots", (self.lock_id, s.slot), s.to_json(self.lock_id))
                    for s, _ in claims
                ]
            )
            return
        for code, (state, _) in zip(codes, claims, strict=True):
            await self._written(lock, code, state)

    async def _written(self, lock: Lock, code: AccessCode, state: SlotState) -> None:
        if self.m.view(lock).can_read:
            state.phase = "written"
            await self.m.store.apply(
                [Row("code_slots", (self.lock_id, state.slot), state.to_json(self.lock_id))]
            )
            return
        await self._set(code, state, native=self.m.native(lock, code))

    async def _confirm(self, lock: Lock, driver: LockDriver, code: AccessCode, slot: int) -> None:
        state = self.m.slots[self.lock_id][slot]
        self.m.count(self.lock_id, "read")
        reading = await _bounded(driver.read_slot(lock.identity.native_id, slot))
        matches = reading.occupied and reading.enabled and reading.code in (code.code, None)
        if matches:
            await self._set(code, state, native=self.m.native(lock, code))
            return
        if state.phase == "suspect":
            self.m.emit(code, "access_code.modified_external")
        else:
            log.warning("slot %d of %s did not hold the code just written", slot, self.lock_id)
        # Forces a fresh write on the next plan.
        state.revision = -1
        state.phase = "pending_write"
        await self.m.store.apply(
            [Row("code_slots", (self.lock_id, slot), state.to_json(self.lock_id))]
        )

    async def _set(self, code: AccessCode, state: SlotState, *, native: bool) -> None:
        was_set = code.status == "set"
        state.phase = "confirmed"
        code.status = "set"
        code.is_scheduled_on_device = native
        code.errors = [issue for issue in code.errors if issue.error_code not in _TRANSIENT]
        await self.m.store.apply(
            [
                self.m.code_row(code),
                Row("code_slots", (self.lock_id, state.slot), state.to_json(self.lock_id)),
            ]
        )
        if not was_set:
            self.m.emit(code, "access_code.set_on_device")
            if native:
                self.m.emit(code, "access_code.scheduled_on_device")

    async def _cleared(self, state: SlotState, code: AccessCode | None) -> None:
        rows = [Row("code_slots", (self.lock_id, state.slot), None)]
        if code is not None and not code.wanted:
            rows.append(self.m.forget_row(code))
            await self.m.store.apply(rows)
            del self.m.codes[code.access_code_id]
            self.m.emit(code, "access_code.removed_from_device")
            self.m.emit(code, "access_code.deleted")
            return
        if code is not None:
            code.status = "unset"
            code.is_scheduled_on_device = False
            rows.append(self.m.code_row(code))
        await self.m.store.apply(rows)
        if code is not None:
            self.m.emit(code, "access_code.removed_from_device")
        self.m.registry.touch(self.lock_id)

    # First contact and codes programmed at the lock

    async def _scan(self, lock: Lock) -> None:
        first, last = lock.identity.capabilities.slot_range or self.m.view(lock).managed
        for slot in range(first, last + 1):
            await self._look_at(lock, slot, scanning=True)
            if self.m.config.codes.scan_delay:
                await asyncio.sleep(self.m.config.codes.scan_delay)
        await self.m.mark_scanned(self.lock_id)

    async def _probe(self, lock: Lock) -> None:
        pending = self.m.probes[self.lock_id]
        slot = pending.pop()
        if slot is None:
            # The lock did not say which slot: read them all again, once.
            self.m.scanned.discard(self.lock_id)
            return
        state = self.m.slots.get(self.lock_id, {}).get(slot)
        if state is not None:
            state.phase = "suspect"
            await self.m.store.apply(
                [Row("code_slots", (self.lock_id, slot), state.to_json(self.lock_id))]
            )
            return
        if not self.m.view(lock).can_read:
            await self._unmanaged(
                UnmanagedCode(lock_id=self.lock_id, slot=slot, detected_at=self.m.clock.now())
            )
            return
        await self._look_at(lock, slot, scanning=False)

    async def _look_at(self, lock: Lock, slot: int, *, scanning: bool) -> None:
        if slot in self.m.slots.get(self.lock_id, {}):
            return
        self.m.count(self.lock_id, "scan" if scanning else "read")
        reading = await _bounded(self._driver().read_slot(lock.identity.native_id, slot))
        known = self.m.unmanaged.get(self.lock_id, {}).get(slot)
        if not reading.occupied:
            if known is not None:
                del self.m.unmanaged[self.lock_id][slot]
                await self.m.store.apply([self.m.unmanaged_row(known, delete=True)])
            return
        if known is not None and known.code == reading.code and known.enabled == reading.enabled:
            return
        await self._unmanaged(
            UnmanagedCode(
                lock_id=self.lock_id,
                slot=slot,
                code=reading.code,
                enabled=reading.enabled,
                detected_at=self.m.clock.now(),
            )
        )

    async def _unmanaged(self, found: UnmanagedCode) -> None:
        await self.m.store.apply([self.m.unmanaged_row(found)])
        self.m.unmanaged.setdefault(self.lock_id, {})[found.slot] = found
        self.m.registry.emit(
            self.lock_id,
            "access_code.unmanaged.detected",
            {"unmanaged_access_code_id": found.unmanaged_access_code_id, "slot": found.slot},
        )
        self.m.registry.touch(self.lock_id)

    # Failures

    async def _mark_offline(self) -> None:
        for code in self._pending_codes():
            if self.m.issue(code, "lock_offline", "the lock is offline; the change waits for it"):
                await self.m.save_code(code)

    def _pending_codes(self) -> list[AccessCode]:
        lock = self._lock()
        ids = {op.access_code_id for op in self.m.plan_for(lock) if op.access_code_id}
        return [self.m.codes[i] for i in ids if i in self.m.codes]

    async def _failed(self, err: LockbridgeError) -> float:
        self.failures += 1
        op = self._current
        code = self.m.codes.get(op.access_code_id) if op and op.access_code_id else None
        log.warning("codes on %s: %s (attempt %d)", self.lock_id, err.message, self.failures)
        if code is not None:
            removing = op is not None and op.kind == "clear"
            if self.failures == 1 and not removing:
                self.m.emit(code, "access_code.delay_in_setting_on_device")
            if self.failures >= self.m.config.codes.max_failures:
                error_code = (
                    "failed_to_remove_from_device" if removing else "failed_to_set_on_device"
                )
                if self.m.issue(code, error_code, err.message):
                    await self.m.save_code(code)
                    self.m.emit(code, f"access_code.{error_code}", error_code=error_code)
        return backoff_delay(
            self.failures - 1,
            self.m.config.codes.retry_max_delay,
            base=self.m.config.codes.retry_base_delay,
        )


_TRANSIENT = frozenset({"lock_offline", "failed_to_set_on_device", "failed_to_remove_from_device"})


async def _bounded[T](work: Awaitable[T]) -> T:
    """Drivers bound each round trip themselves; this is the backstop for one that does not."""
    try:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            return await work
    except TimeoutError:
        raise DeviceTimeoutError(f"no answer within {ROUND_TRIP_TIMEOUT:g} s") from None
