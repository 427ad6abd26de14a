"""The access-code commands of the MQTT API (SPEC §5), on top of the code-slot manager."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StrictBool, StrictInt, StrictStr, model_validator

from bridge.api import Handler, _Request
from bridge.codes import pins
from bridge.codes.manager import CodeManager
from bridge.codes.model import AccessCode, CodeType, UnmanagedCode, Window
from bridge.codes.plan import SlotState
from bridge.errors import (
    AccessCodeNotFoundError,
    CodeRejectedError,
    InvalidPayloadError,
    UnsupportedError,
)
from bridge.model import CodeRules, Lock
from bridge.store import Row
from bridge.util import time_zone

Pin = Annotated[StrictStr, Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z]+$")]
LockId = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Name = Annotated[StrictStr, Field(max_length=200)]


class CodeFields(_Request):
    name: Name = ""
    code: Pin | None = Field(default=None, repr=False)
    type: CodeType | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    schedule: Annotated[list[Window], Field(min_length=1, max_length=7)] | None = None
    timezone: StrictStr | None = None
    max_uses: Annotated[StrictInt, Field(ge=1)] | None = None
    common_code_key: Annotated[StrictStr, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CodeFields:
        kind = self.type or infer_type(self.schedule, self.starts_at, self.ends_at)
        if kind == "recurring" and not self.schedule:
            raise ValueError("a recurring code needs a schedule")
        if kind == "time_bound" and self.ends_at is None:
            raise ValueError("a time_bound code needs ends_at")
        if kind == "ongoing" and (self.schedule or self.starts_at or self.ends_at):
            raise ValueError("an ongoing code has no schedule, starts_at or ends_at")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        if self.timezone is not None:
            time_zone(self.timezone)
        return self


class CreateRequest(CodeFields):
    lock_id: LockId


class CreateMultipleRequest(CodeFields):
    lock_ids: Annotated[list[LockId], Field(min_length=1, max_length=500)]


class UpdateRequest(CodeFields):
    access_code_id: StrictStr


class CodeIdRequest(_Request):
    access_code_id: StrictStr


class GetRequest(CodeIdRequest):
    reveal: StrictBool = False


class LockFilter(_Request):
    lock_id: LockId | None = None


class GenerateRequest(_Request):
    lock_id: LockId
    length: Annotated[StrictInt, Field(ge=1, le=16)] | None = None


class ConvertRequest(_Request):
    unmanaged_access_code_id: StrictStr
    name: Name = ""


def infer_type(
    windows: list[Window] | None, starts_at: datetime | None, ends_at: datetime | None
) -> CodeType:
    if windows:
        return "recurring"
    if starts_at or ends_at:
        return "time_bound"
    return "ongoing"


class CodeApi:
    def __init__(self, manager: CodeManager, *, expose_codes: bool) -> None:
        self._m = manager
        self._expose = expose_codes

    def commands(self) -> dict[str, tuple[type[_Request], Handler]]:
        return {
            "access_code/create": (CreateRequest, self.create),
            "access_code/create_multiple": (CreateMultipleRequest, self.create_multiple),
            "access_code/update": (UpdateRequest, self.update),
            "access_code/delete": (CodeIdRequest, self.delete),
            "access_code/get": (GetRequest, self.get),
            "access_code/list": (LockFilter, self.list_codes),
            "access_code/generate_code": (GenerateRequest, self.generate_code),
            "access_code/plan": (LockFilter, self.plan),
            "unmanaged_access_code/list": (LockFilter, self.unmanaged_list),
            "unmanaged_access_code/convert_to_managed": (ConvertRequest, self.convert),
        }

    # Checks

    def _programmable(self, lock_id: str) -> Lock:
        lock = self._m.registry.get(lock_id)
        caps = lock.identity.capabilities
        if not (caps.has_keypad and caps.can_program_access_codes):
            raise UnsupportedError(f"lock {lock_id} has no programmable keypad", lock_id=lock_id)
        return lock

    def _check(self, lock: Lock, pin: str, *, replacing: str | None = None) -> None:
        others = [
            c for c in self._m.codes_of(lock.lock_id) if c.wanted and c.access_code_id != replacing
        ]
        rules = lock.identity.capabilities.code_rules or CodeRules()
        pins.check(pin, rules, other_lengths=[len(c.code) for c in others])
        foreign = [u.code for u in self._m.unmanaged.get(lock.lock_id, {}).values()]
        if any(c.code == pin for c in others) or pin in foreign:
            raise CodeRejectedError(
                f"lock {lock.lock_id} already has this code",
                code="duplicate_code",
                lock_id=lock.lock_id,
            )
        if replacing is None:
            view = self._m.view(lock)
            first, last = view.managed
            usable = sum(1 for slot in range(first, last + 1) if slot not in view.unmanaged_slots)
            if len(others) >= usable:
                raise CodeRejectedError(
                    f"lock {lock.lock_id} has no free slot for another code",
                    code="no_free_slot",
                    lock_id=lock.lock_id,
                )

    def _in_use(self, lock_id: str) -> set[str]:
        known = {c.code for c in self._m.codes_of(lock_id) if c.wanted}
        known |= {u.code for u in self._m.unmanaged.get(lock_id, {}).values() if u.code}
        return known

    def _new(self, lock: Lock, request: CodeFields, pin: str, key: str | None) -> AccessCode:
        now = self._m.clock.now()
        kind = request.type or infer_type(request.schedule, request.starts_at, request.ends_at)
        if request.ends_at is not None and request.ends_at <= now:
            raise InvalidPayloadError("ends_at is in the past")
        return AccessCode(
            access_code_id=self._m.new_id(),
            lock_id=lock.lock_id,
            name=request.name,
            code=pin,
            type=kind,
            starts_at=request.starts_at,
            ends_at=request.ends_at,
            schedule=request.schedule,
            timezone=request.timezone,
            max_uses=request.max_uses,
            common_code_key=key,
            created_at=now,
            updated_at=now,
        )

    def _show(self, code: AccessCode, *, reveal: bool) -> dict[str, Any]:
        return code.public(reveal=reveal and self._expose)

    # Commands

    async def create(self, request: CreateRequest) -> dict[str, Any]:
        lock = self._programmable(request.lock_id)
        pin = request.code or self._generate(lock)
        self._check(lock, pin)
        code = self._new(lock, request, pin, request.common_code_key)
        await self._m.add([code])
        return {"access_code": self._show(code, reveal=True)}

    async def create_multiple(self, request: CreateMultipleRequest) -> dict[str, Any]:
        locks = [self._programmable(lock_id) for lock_id in dict.fromkeys(request.lock_ids)]
        pin = request.code or self._generate_for_all(locks)
        for lock in locks:
            self._check(lock, pin)
        key = request.common_code_key or secrets.token_hex(8)
        codes = [self._new(lock, request, pin, key) for lock in locks]
        await self._m.add(codes)
        return {
            "common_code_key": key,
            "access_codes": [self._show(code, reveal=True) for code in codes],
        }

    async def update(self, request: UpdateRequest) -> dict[str, Any]:
        code = self._m.get(request.access_code_id)
        if not code.wanted:
            raise AccessCodeNotFoundError(f"access code {code.access_code_id} is being deleted")
        lock = self._programmable(code.lock_id)
        changed = request.model_fields_set - {"access_code_id", "transaction", "expires_at"}
        if "code" in changed and request.code is not None:
            self._check(lock, request.code, replacing=code.access_code_id)
            code.code = request.code
        for field in ("name", "starts_at", "ends_at", "schedule", "timezone", "max_uses"):
            if field in changed:
                setattr(code, field, getattr(request, field))
        if {"type", "schedule", "starts_at", "ends_at"} & changed:
            code.type = request.type or infer_type(code.schedule, code.starts_at, code.ends_at)
        await self._m.replace(code)
        return {"access_code": self._show(code, reveal=False)}

    async def delete(self, request: CodeIdRequest) -> dict[str, Any]:
        code = self._m.get(request.access_code_id)
        await self._m.remove(code)
        return {"access_code": self._show(code, reveal=False)}

    async def get(self, request: GetRequest) -> dict[str, Any]:
        return {
            "access_code": self._show(self._m.get(request.access_code_id), reveal=request.reveal)
        }

    async def list_codes(self, request: LockFilter) -> dict[str, Any]:
        if request.lock_id is not None:
            self._m.registry.get(request.lock_id)
        codes = [code for code in self._m.codes.values() if request.lock_id in (None, code.lock_id)]
        return {"access_codes": [self._show(code, reveal=False) for code in codes]}

    def _generate(self, lock: Lock, length: int | None = None) -> str:
        rules = lock.identity.capabilities.code_rules or CodeRules()
        lengths = [len(c.code) for c in self._m.codes_of(lock.lock_id) if c.wanted]
        if rules.same_length_for_all and lengths and length is None:
            length = lengths[0]
        return pins.generate(rules, length=length, avoid=self._in_use(lock.lock_id))

    def _generate_for_all(self, locks: list[Lock]) -> str:
        for _ in range(100):
            pin = self._generate(locks[0])
            try:
                for lock in locks:
                    self._check(lock, pin)
            except CodeRejectedError:
                continue
            return pin
        raise CodeRejectedError("no code fits every lock's rules", code="code_constraints_violated")

    async def generate_code(self, request: GenerateRequest) -> dict[str, Any]:
        lock = self._programmable(request.lock_id)
        pin = self._generate(lock, request.length)
        data: dict[str, Any] = {"lock_id": lock.lock_id, "length": len(pin)}
        if self._expose:
            data["code"] = pin
        return data

    async def plan(self, request: LockFilter) -> dict[str, Any]:
        locks = (
            [self._m.registry.get(request.lock_id)] if request.lock_id else self._m.registry.locks()
        )
        return {
            "plans": {
                lock.lock_id: [op.to_json() for op in self._m.plan_for(lock)]
                for lock in locks
                if lock.identity.capabilities.can_program_access_codes
            }
        }

    async def unmanaged_list(self, request: LockFilter) -> dict[str, Any]:
        found = [
            u
            for lock_id, slots in self._m.unmanaged.items()
            if request.lock_id in (None, lock_id)
            for u in slots.values()
        ]
        return {"unmanaged_access_codes": [u.public(reveal=False) for u in found]}

    async def convert(self, request: ConvertRequest) -> dict[str, Any]:
        found = self._find_unmanaged(request.unmanaged_access_code_id)
        if found.code is None:
            raise UnsupportedError(
                "this lock hides its codes: the bridge cannot take over a code it cannot read",
                lock_id=found.lock_id,
            )
        lock = self._programmable(found.lock_id)
        now = self._m.clock.now()
        code = AccessCode(
            access_code_id=self._m.new_id(),
            lock_id=lock.lock_id,
            name=request.name,
            code=found.code,
            slot=found.slot,
            status="set",
            created_at=now,
            updated_at=now,
        )
        state = SlotState(found.slot, code.access_code_id, code.revision, "confirmed")
        await self._m.store.apply(
            [
                self._m.code_row(code),
                Row("code_slots", (lock.lock_id, found.slot), state.to_json(lock.lock_id)),
                self._m.unmanaged_row(found, delete=True),
            ]
        )
        del self._m.unmanaged[lock.lock_id][found.slot]
        self._m.slots.setdefault(lock.lock_id, {})[found.slot] = state
        self._m.codes[code.access_code_id] = code
        self._m.emit(code, "access_code.created")
        return {"access_code": self._show(code, reveal=False)}

    def _find_unmanaged(self, unmanaged_id: str) -> UnmanagedCode:
        for slots in self._m.unmanaged.values():
            for found in slots.values():
                if found.unmanaged_access_code_id == unmanaged_id:
                    return found
        raise AccessCodeNotFoundError(f"no unmanaged access code {unmanaged_id!r}")
