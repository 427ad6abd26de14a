"""The web pass commands of the MQTT API (SPEC §5, §7)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StrictInt, StrictStr, model_validator

from bridge.api import Handler, _Request
from bridge.errors import InvalidPayloadError, UnsupportedError
from bridge.webpass.manager import WebPassManager
from bridge.webpass.model import Action

LockId = Annotated[StrictStr, Field(min_length=1, max_length=128)]


def _both() -> list[Action]:
    return ["unlock", "lock"]


class CreateRequest(_Request):
    lock_ids: Annotated[list[LockId], Field(min_length=1, max_length=50)]
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    # Default: now.
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    max_uses: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    # Locking is the safe direction, so a guest may lock up behind them unless told otherwise.
    allowed_actions: Annotated[list[Action], Field(min_length=1, max_length=2)] = Field(
        default_factory=_both
    )

    @model_validator(mode="after")
    def _window(self) -> CreateRequest:
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class PassIdRequest(_Request):
    web_pass_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class ListRequest(_Request):
    lock_id: LockId | None = None


class WebPassApi:
    def __init__(self, manager: WebPassManager) -> None:
        self._m = manager

    def commands(self) -> dict[str, tuple[type[_Request], Handler]]:
        return {
            "web_pass/create": (CreateRequest, self.create),
            "web_pass/list": (ListRequest, self.list_passes),
            "web_pass/revoke": (PassIdRequest, self.revoke),
        }

    async def create(self, request: CreateRequest) -> dict[str, Any]:
        config = self._m.config
        if not config.enabled:
            raise UnsupportedError("web passes are disabled (web_pass.enabled in the config)")
        now = self._m.clock.now()
        starts_at = request.starts_at or now
        if request.ends_at <= now:
            raise InvalidPayloadError("ends_at: is in the past")
        if request.ends_at - starts_at > config.max_duration:
            raise InvalidPayloadError(
                f"ends_at: a pass may last at most {config.max_duration} (web_pass.max_duration)"
            )
        lock_ids = list(dict.fromkeys(request.lock_ids))
        actions = list(dict.fromkeys(request.allowed_actions))
        for lock_id in lock_ids:
            caps = self._m.registry.get(lock_id).identity.capabilities
            able = {"lock": caps.can_remotely_lock, "unlock": caps.can_remotely_unlock}
            if not any(able[action] for action in actions):
                raise UnsupportedError(
                    f"lock {lock_id} cannot be {' or '.join(actions)}ed remotely", lock_id=lock_id
                )
        web_pass, url = await self._m.create(
            lock_ids=lock_ids,
            name=request.name,
            starts_at=starts_at,
            ends_at=request.ends_at,
            max_uses=request.max_uses,
            allowed_actions=actions,
        )
        return {"web_pass": web_pass.public(now), "url": url}

    async def list_passes(self, request: ListRequest) -> dict[str, Any]:
        if request.lock_id is not None:
            self._m.registry.get(request.lock_id)
        now = self._m.clock.now()
        return {
            "web_passes": [
                p.public(now)
                for p in self._m.passes.values()
                if request.lock_id is None or request.lock_id in p.lock_ids
            ]
        }

    async def revoke(self, request: PassIdRequest) -> dict[str, Any]:
        web_pass = await self._m.revoke(request.web_pass_id)
        return {"web_pass": web_pass.public(self._m.clock.now())}
