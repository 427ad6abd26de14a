"""What the reconciler would send to one lock next: a pure function of desired and known state.

`plan` is what `access_code/plan` shows and what the manager then executes, one
operation at a time, re-planning after each, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bridge.codes.model import AccessCode

Phase = Literal["pending_write", "written", "confirmed", "pending_clear", "suspect"]
# The lock refused these: trying again would only be refused again, until the code changes.
BLOCKING_ERRORS = frozenset(
    {"duplicate_code_on_device", "code_constraints_violated", "no_space_for_access_code_on_device"}
)


@dataclass(slots=True)
class SlotState:
    """What the bridge knows of one of its slots on a lock (persisted before every write)."""

    slot: int
    owner: str
    revision: int
    phase: Phase

    def to_json(self, lock_id: str) -> dict[str, Any]:
        return {"lock_id": lock_id, "slot": self.slot, "owner": self.owner,
                "revision": self.revision, "phase": self.phase}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlotState:
        return cls(int(data["slot"]), str(data["owner"]), int(data["revision"]), data["phase"])


@dataclass(frozen=True, slots=True)
class Operation:
    kind: Literal["write", "read", "clear"]
    slot: int
    access_code_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"operation": self.kind, "slot": self.slot, "access_code_id": self.access_code_id}


@dataclass(frozen=True, slots=True)
class LockView:
    """Everything `plan` needs to know about one lock."""

    can_read: bool
    managed: tuple[int, int]
    unmanaged_slots: frozenset[int]


def free_slot(view: LockView, slots: Mapping[int, SlotState], taken: Iterable[int]) -> int | None:
    busy = set(slots) | set(view.unmanaged_slots) | set(taken)
    first, last = view.managed
    return next((slot for slot in range(first, last + 1) if slot not in busy), None)


def plan(
    view: LockView,
    codes: Iterable[AccessCode],
    on_device: Mapping[str, bool],
    slots: Mapping[int, SlotState],
) -> list[Operation]:
    """Operations, in order, that bring the lock to the desired state.

    `on_device[access_code_id]` says whether each code should be on the lock now.
    Clears come first so that their slots are free for writes.
    """
    wanted = {
        code.access_code_id: code
        for code in codes
        if on_device.get(code.access_code_id)
        and not any(issue.error_code in BLOCKING_ERRORS for issue in code.errors)
    }
    clears: list[Operation] = []
    reads: list[Operation] = []
    writes: list[Operation] = []
    for slot, state in sorted(slots.items()):
        code = wanted.get(state.owner)
        if state.phase == "pending_clear" or code is None or code.slot != slot:
            clears.append(Operation("clear", slot, state.owner))
        elif state.revision != code.revision:
            writes.append(Operation("write", slot, code.access_code_id))
        elif state.phase in ("written", "suspect") or (
            state.phase == "pending_write" and view.can_read
        ):
            if view.can_read:
                reads.append(Operation("read", slot, code.access_code_id))
            elif state.phase == "suspect":
                writes.append(Operation("write", slot, code.access_code_id))
        elif state.phase == "pending_write":
            # A write-only lock cannot say whether a write before a crash arrived: repeat it.
            writes.append(Operation("write", slot, code.access_code_id))
    assigned: list[int] = []
    for code_id, code in sorted(wanted.items(), key=lambda item: item[1].created_at):
        if code.slot is not None and code.slot in slots and slots[code.slot].owner == code_id:
            continue
        target = code.slot
        if (
            target is None
            or target in view.unmanaged_slots
            or target in assigned
            or (target in slots and slots[target].owner != code_id)
        ):
            target = free_slot(view, slots, assigned)
            if target is None:
                continue
        assigned.append(target)
        writes.append(Operation("write", target, code_id))
    return clears + reads + writes
