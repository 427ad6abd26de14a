"""Access codes as stored and as the API shows them (pydantic: this is an edge)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CodeType = Literal["ongoing", "time_bound", "recurring"]
CodeStatus = Literal["unset", "setting", "set", "removing"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def minute_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class Window(BaseModel):
    """A weekly window, e.g. Tuesdays 10:00-12:00, in the lock's or site's local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)]
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM (00:00 to 24:00)")
        return value

    @model_validator(mode="after")
    def _order(self) -> Window:
        if minute_of(self.start) >= minute_of(self.end):
            raise ValueError("start must be before end")
        return self


class Issue(BaseModel):
    """An entry of a code's `errors` or `warnings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_code: str
    message: str
    created_at: AwareDatetime


class AccessCode(BaseModel):
    """One desired access code on one lock. `code` (the PIN) never appears in repr()."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    access_code_id: str
    lock_id: str
    name: str = ""
    code: str = Field(repr=False)
    type: CodeType = "ongoing"
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    schedule: list[Window] | None = None
    timezone: str | None = None
    max_uses: int | None = None
    use_count: int = 0
    last_used_at: AwareDatetime | None = None
    slot: int | None = None
    status: CodeStatus = "unset"
    is_scheduled_on_device: bool = False
    common_code_key: str | None = None
    errors: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    # Desired state: False once the user deleted it or it ran out of uses or time.
    wanted: bool = True
    # Raised whenever what should be on the lock changes, so a confirmed write is known stale.
    revision: int = 0

    def public(self, *, reveal: bool) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"code", "wanted", "revision"})
        if reveal:
            data["code"] = self.code
        return data

    def has_error(self, code: str) -> bool:
        return any(issue.error_code == code for issue in self.errors)


class UnmanagedCode(BaseModel):
    """A code found on a lock that the bridge did not program; never touched unless converted."""

    model_config = ConfigDict(extra="forbid")

    lock_id: str
    slot: int
    code: str | None = Field(default=None, repr=False)
    enabled: bool = True
    detected_at: datetime

    @property
    def unmanaged_access_code_id(self) -> str:
        return f"unmanaged-{self.lock_id}-{self.slot}"

    def public(self, *, reveal: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "unmanaged_access_code_id": self.unmanaged_access_code_id,
            "lock_id": self.lock_id,
            "slot": self.slot,
            "enabled": self.enabled,
            "code_known": self.code is not None,
            "detected_at": self.detected_at.isoformat(),
        }
        if reveal and self.code is not None:
            data["code"] = self.code
        return data
