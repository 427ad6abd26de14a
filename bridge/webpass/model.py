"""A web pass as stored, its token, and why a pass may refuse to work."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Action = Literal["lock", "unlock"]

# token_urlsafe(32): 32 bytes = 256 bits from the OS's CSPRNG, 43 URL-safe characters.
TOKEN_BYTES = 32
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps instead of the token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii", errors="replace")).hexdigest()


def well_formed(token: str) -> bool:
    return TOKEN_SHAPE.fullmatch(token) is not None


class Refusal(enum.StrEnum):
    """Why a known pass does not work now; the value is shown to the guest."""

    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    EXHAUSTED = "exhausted"


class WebPass(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    web_pass_id: str
    name: str
    lock_ids: list[str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    max_uses: int | None = None
    use_count: int = 0
    last_used_at: AwareDatetime | None = None
    allowed_actions: list[Action]
    revoked_at: AwareDatetime | None = None
    created_at: AwareDatetime
    # Never the token itself; the hash stays out of repr and out of every answer too.
    token_hash: str = Field(repr=False)

    def matches(self, digest: str) -> bool:
        return hmac.compare_digest(self.token_hash, digest)

    def refusal(self, now: datetime) -> Refusal | None:
        if self.revoked_at is not None:
            return Refusal.REVOKED
        if now >= self.ends_at:
            return Refusal.EXPIRED
        if now < self.starts_at:
            return Refusal.NOT_YET_VALID
        if self.max_uses is not None and self.use_count >= self.max_uses:
            return Refusal.EXHAUSTED
        return None

    def status(self, now: datetime) -> str:
        refusal = self.refusal(now)
        return "active" if refusal is None else refusal.value

    def public(self, now: datetime) -> dict[str, Any]:
        """The pass as `web_pass/list` shows it: never the token nor its hash."""
        data = self.model_dump(mode="json", exclude={"token_hash"})
        data["status"] = self.status(now)
        return data

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
