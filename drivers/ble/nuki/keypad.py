"""Nuki keypad codes on the bridge's code-slot model.

Nuki assigns each code an id of its own choosing, so the bridge's slots are a mapping the
driver keeps (persisted in the state directory): a slot is bound to a code id when the
bridge adds a code there, and codes found on the lock that no slot knows are bound to the
slot numbered like their id if that is free, else to the lowest free slot; there the
code-slot manager sees them as unmanaged codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.driver import NativeSchedule
from bridge.errors import CodeSlotError
from bridge.model import CodeRules
from drivers.ble.nuki.wire import TimeLimit

# Six digits 1-9, never starting with "12" (which the keypad reserves).
CODE_RULES = CodeRules(
    min_length=6,
    max_length=6,
    characters="123456789",
    forbidden_prefixes=("12",),
    same_length_for_all=True,
)


def code_number(pin: str) -> int:
    """The code as Nuki carries it (an integer); never echo the PIN in an error."""
    if len(pin) != 6 or not pin.isdigit():
        raise CodeSlotError("a Nuki keypad code has six digits", reason="code_constraints_violated")
    return int(pin)


def time_limit(schedule: NativeSchedule | None) -> TimeLimit | None:
    """Nuki's one time limit per code: a date range, or weekdays with one daily window."""
    if schedule is None or (not schedule.ranges and not schedule.weekly):
        return None
    if schedule.ranges and schedule.weekly:
        raise _unfit("both a date range and weekly windows")
    if schedule.ranges:
        if len(schedule.ranges) != 1:
            raise _unfit("more than one date range")
        start, end = schedule.ranges[0]
        return TimeLimit(allowed_from=start, allowed_until=end)
    windows = {(w.start_minute, w.end_minute) for w in schedule.weekly}
    if len(windows) != 1:
        raise _unfit("weekly windows at different times of day")
    ((start_minute, end_minute),) = windows
    days = frozenset().union(*(w.weekdays for w in schedule.weekly))
    return TimeLimit(weekdays=days, from_minute=start_minute, until_minute=min(end_minute, 1439))


def _unfit(what: str) -> CodeSlotError:
    return CodeSlotError(
        f"a Nuki keypad code cannot have {what}", reason="code_constraints_violated"
    )


@dataclass
class LockBook:
    slots: dict[int, int] = field(default_factory=dict)  # slot -> Nuki code id
    log_cursor: int | None = None  # index of the newest log entry already reported


class SlotBook:
    """Slot <-> code id bindings and log cursors of every Nuki lock, kept in a JSON file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._locks: dict[str, LockBook] = {}
        self._file_lock = threading.Lock()

    def load(self) -> None:
        if not self._path.exists():
            return
        raw: dict[str, Any] = json.loads(self._path.read_text(encoding="utf-8"))
        for native_id, entry in raw.items():
            self._locks[native_id] = LockBook(
                {int(slot): int(code_id) for slot, code_id in entry["slots"].items()},
                entry.get("log_cursor"),
            )

    async def save(self) -> None:
        """Write the bindings (in a thread); concurrent saves write one after another."""
        text = json.dumps(
            {
                native_id: {"slots": book.slots, "log_cursor": book.log_cursor}
                for native_id, book in self._locks.items()
            }
        )
        await asyncio.to_thread(self._write, text)

    def _write(self, text: str) -> None:
        with self._file_lock:
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self._path)

    def book(self, native_id: str) -> LockBook:
        return self._locks.setdefault(native_id, LockBook())

    def code_id(self, native_id: str, slot: int) -> int | None:
        return self.book(native_id).slots.get(slot)

    def slot_of(self, native_id: str, code_id: int) -> int | None:
        return next((s for s, c in self.book(native_id).slots.items() if c == code_id), None)

    def bind(self, native_id: str, slot: int, code_id: int) -> None:
        slots = self.book(native_id).slots
        for other in [s for s, c in slots.items() if c == code_id and s != slot]:
            del slots[other]
        slots[slot] = code_id

    def release(self, native_id: str, slot: int) -> None:
        self.book(native_id).slots.pop(slot, None)

    def adopt(self, native_id: str, code_ids: set[int], slot_range: tuple[int, int]) -> bool:
        """Forget bindings to codes the lock no longer has; bind unknown codes to free slots:
        the slot numbered like the code's id where that one is free, else the lowest free."""
        slots = self.book(native_id).slots
        changed = False
        for slot in [s for s, c in slots.items() if c not in code_ids]:
            del slots[slot]
            changed = True
        first, last = slot_range
        for code_id in sorted(code_ids - set(slots.values())):
            if first <= code_id <= last and code_id not in slots:
                chosen: int | None = code_id
            else:
                chosen = next((s for s in range(first, last + 1) if s not in slots), None)
            if chosen is None:
                break
            slots[chosen] = code_id
            changed = True
        return changed
