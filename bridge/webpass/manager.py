"""Web passes: created, listed, revoked, persisted, and used to lock or unlock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bridge.codes.clock import Clock, SystemClock
from bridge.config import WebPassConfig
from bridge.errors import LockbridgeError, LockOfflineError, WebPassNotFoundError
from bridge.model import EventType, Method
from bridge.registry import LockRegistry
from bridge.store import Row, Store
from bridge.webpass.model import (
    Action,
    Refusal,
    WebPass,
    new_token,
    token_hash,
    well_formed,
)

log = logging.getLogger(__name__)

Actuate = Callable[[str, Action], Awaitable[dict[str, Any]]]

# How long a confirmed operation waits for the driver's own lock event to carry the pass.
EVENT_GRACE = 2.0


class PassRefused(LockbridgeError):
    """A known pass that does not work now (revoked, expired, not yet valid, used up)."""

    code = "web_pass_refused"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"the web pass is {refusal.value.replace('_', ' ')}")
        self.refusal = refusal


class NotAllowed(LockbridgeError):
    """The pass does not cover this lock or this action."""

    code = "web_pass_not_allowed"


class WebPassManager:
    def __init__(
        self,
        registry: LockRegistry,
        store: Store,
        config: WebPassConfig,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.clock: Clock = clock or SystemClock()
        # The server corrects this once it knows the port it got (port 0, no public_url).
        self.base_url = config.base_url()
        self.passes: dict[str, WebPass] = {}
        self._by_hash: dict[str, str] = {}

    async def load(self) -> None:
        for data in await self.store.load_table("web_passes"):
            web_pass = WebPass.model_validate(data)
            self._remember(web_pass)

    def _remember(self, web_pass: WebPass) -> None:
        self.passes[web_pass.web_pass_id] = web_pass
        self._by_hash[web_pass.token_hash] = web_pass.web_pass_id

    async def _save(self, web_pass: WebPass) -> None:
        await self.store.apply([Row("web_passes", (web_pass.web_pass_id,), web_pass.stored())])

    def url(self, token: str) -> str:
        return f"{self.base_url}/p/{token}"

    async def create(
        self,
        *,
        lock_ids: list[str],
        name: str,
        starts_at: datetime,
        ends_at: datetime,
        max_uses: int | None,
        allowed_actions: list[Action],
    ) -> tuple[WebPass, str]:
        """A new pass and its URL: the only time the token exists outside the guest's hands."""
        token = new_token()
        web_pass = WebPass(
            web_pass_id=uuid.uuid4().hex,
            name=name,
            lock_ids=lock_ids,
            starts_at=starts_at,
            ends_at=ends_at,
            max_uses=max_uses,
            allowed_actions=allowed_actions,
            created_at=self.clock.now(),
            token_hash=token_hash(token),
        )
        await self._save(web_pass)
        self._remember(web_pass)
        for lock_id in lock_ids:
            self.registry.emit(lock_id, "web_pass.created", self._event_fields(web_pass))
        log.info("web pass %s created for %s", web_pass.web_pass_id, ", ".join(lock_ids))
        return web_pass, self.url(token)

    def get(self, web_pass_id: str) -> WebPass:
        try:
            return self.passes[web_pass_id]
        except KeyError:
            raise WebPassNotFoundError(f"no web pass {web_pass_id!r}") from None

    async def revoke(self, web_pass_id: str) -> WebPass:
        web_pass = self.get(web_pass_id)
        if web_pass.revoked_at is None:
            revoked = web_pass.model_copy(update={"revoked_at": self.clock.now()})
            await self._save(revoked)
            self._remember(revoked)
            web_pass = revoked
            for lock_id in web_pass.lock_ids:
                self.registry.emit(lock_id, "web_pass.revoked", self._event_fields(web_pass))
            log.info("web pass %s revoked", web_pass_id)
        return web_pass

    def find(self, token: str) -> WebPass | None:
        """The pass this token opens, or None."""
        if not well_formed(token):
            return None
        digest = token_hash(token)
        found = self._by_hash.get(digest)
        web_pass = self.passes.get(found) if found is not None else None
        if web_pass is None or not web_pass.matches(digest):
            return None
        return web_pass

    async def use(
        self, web_pass: WebPass, lock_id: str, action: Action, actuate: Actuate
    ) -> dict[str, Any]:
        """Lock or unlock through the API's own path; the lock's event names the pass."""
        web_pass = self.passes[web_pass.web_pass_id]
        refusal = web_pass.refusal(self.clock.now())
        if refusal is not None:
            raise PassRefused(refusal)
        if lock_id not in web_pass.lock_ids or action not in web_pass.allowed_actions:
            raise NotAllowed(f"this pass cannot {action} {lock_id}")
        lock = self.registry.get(lock_id)
        if not lock.status.online:
            raise LockOfflineError(f"lock {lock_id} is offline", lock_id=lock_id)
        # Counted and persisted before the lock moves: a crash may waste a use, never grant one.
        used = web_pass.model_copy(
            update={"use_count": web_pass.use_count + 1, "last_used_at": self.clock.now()}
        )
        self._remember(used)
        try:
            await self._save(used)
        except BaseException:
            self._remember(web_pass)
            raise
        event_type = EventType.LOCK_LOCKED if action == "lock" else EventType.LOCK_UNLOCKED
        attribution = self.registry.attribute(
            lock_id,
            event_type.value,
            {"method": Method.WEB_PASS.value, "web_pass_id": web_pass.web_pass_id},
        )
        happened = False
        try:
            result = await actuate(lock_id, action)
            happened = bool(result.get("confirmed"))
            if happened:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_GRACE):
                        await attribution.claimed.wait()
        finally:
            self.registry.release(lock_id, attribution, happened=happened)
        log.info("web pass %s: %s %s", web_pass.web_pass_id, action, lock_id)
        return result

    @staticmethod
    def _event_fields(web_pass: WebPass) -> dict[str, Any]:
        return {
            "web_pass_id": web_pass.web_pass_id,
            "name": web_pass.name,
            "starts_at": web_pass.starts_at.isoformat(),
            "ends_at": web_pass.ends_at.isoformat(),
        }
