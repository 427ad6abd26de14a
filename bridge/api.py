"""The request/response API of SPEC §5, independent of the MQTT transport.

`Api.handle` takes a command name and the raw payload and always returns a response
object; every failure becomes `{"status": "error", ...}` with a code from SPEC §5.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from bridge import __version__
from bridge.errors import (
    CommandExpiredError,
    DeviceTimeoutError,
    InvalidPayloadError,
    LockbridgeError,
    UnknownCommandError,
    UnsupportedError,
)
from bridge.model import utcnow
from bridge.registry import LockRegistry
from bridge.store import Store

log = logging.getLogger(__name__)

Transaction = StrictStr | StrictInt | None
MAX_PAYLOAD = 64 * 1024


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction: Transaction = None
    expires_at: AwareDatetime | None = None


class EmptyRequest(_Request):
    pass


class LockRequest(_Request):
    lock_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]


class EventListRequest(_Request):
    lock_id: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None
    event_types: list[StrictStr] | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 100


class PermitJoinRequest(_Request):
    protocol: StrictStr
    seconds: Annotated[StrictInt, Field(ge=1, le=254)] = 60


class SetRequest(BaseModel):
    """The payload of `<base>/locks/<lock_id>/set`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["lock", "unlock"]
    expires_at: AwareDatetime | None = None


def parse_set_payload(payload: bytes) -> SetRequest:
    text = payload.decode("utf-8", errors="replace").strip()
    if text.upper() in ("LOCK", "UNLOCK"):
        return SetRequest(action="lock" if text.upper() == "LOCK" else "unlock")
    raw = decode_object(payload)
    try:
        request = SetRequest.model_validate(raw)
    except ValidationError as err:
        raise InvalidPayloadError(describe_validation(err)) from None
    check_not_expired(request.expires_at)
    return request


def decode_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise InvalidPayloadError(f"payload larger than {MAX_PAYLOAD} bytes")
    try:
        value = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InvalidPayloadError(f"payload is not UTF-8 JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidPayloadError(f"payload must be a JSON object, not {type(value).__name__}")
    return value


def describe_validation(err: ValidationError) -> str:
    parts = []
    for issue in err.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in issue["loc"]) or "payload"
        parts.append(
            f"{key}: {'unknown field' if issue['type'] == 'extra_forbidden' else issue['msg']}"
        )
    return "; ".join(parts)


def check_not_expired(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise CommandExpiredError(f"command expired at {expires_at.isoformat()}")


def ok(data: dict[str, Any], transaction: Any) -> dict[str, Any]:
    return {"status": "ok", "data": data, "transaction": transaction}


def error(err: LockbridgeError, transaction: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.lock_id is not None:
        body["lock_id"] = err.lock_id
    return {"status": "error", "error": body, "transaction": transaction}


Handler = Callable[[Any], Awaitable[dict[str, Any]]]


class Api:
    def __init__(
        self,
        registry: LockRegistry,
        store: Store,
        *,
        command_timeout: float,
        config_summary: dict[str, Any],
        is_connected: Callable[[], bool],
        extra_commands: Mapping[str, tuple[type[_Request], Handler]] | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._timeout = command_timeout
        self._config_summary = config_summary
        self._is_connected = is_connected
        self._started = time.monotonic()
        self._commands: dict[str, tuple[type[_Request], Handler]] = {
            "health_check": (EmptyRequest, self._health_check),
            "lock/list": (EmptyRequest, self._lock_list),
            "lock/get": (LockRequest, self._lock_get),
            "lock/lock": (LockRequest, self._lock_lock),
            "lock/unlock": (LockRequest, self._lock_unlock),
            "event/list": (EventListRequest, self._event_list),
            "permit_join": (PermitJoinRequest, self._permit_join),
            **(extra_commands or {}),
        }

    @property
    def commands(self) -> list[str]:
        return sorted(self._commands)

    async def handle(self, command: str, payload: bytes) -> dict[str, Any]:
        transaction: Any = None
        try:
            raw = decode_object(payload)
            transaction = raw.get("transaction")
            if not isinstance(transaction, str | int) or isinstance(transaction, bool):
                transaction = None
            if command not in self._commands:
                raise UnknownCommandError(f"unknown command {command!r}")
            model, handler = self._commands[command]
            try:
                request = model.model_validate(raw)
            except ValidationError as err:
                raise InvalidPayloadError(describe_validation(err)) from None
            check_not_expired(request.expires_at)
            return ok(await handler(request), transaction)
        except LockbridgeError as err:
            return error(err, transaction)
        except Exception:
            log.exception("request %s failed", command)
            return error(LockbridgeError("internal error; see the bridge log"), transaction)

    def info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "drivers": {name: d.status() for name, d in self._registry.drivers.items()},
            "lock_count": len(self._registry.locks()),
            "commands": self.commands,
            "config": self._config_summary,
        }

    async def _health_check(self, _: EmptyRequest) -> dict[str, Any]:
        locks = self._registry.locks()
        return {
            "healthy": self._is_connected()
            and all(d.status().get("state") == "running" for d in self._registry.drivers.values()),
            "mqtt_connected": self._is_connected(),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "drivers": {name: d.status() for name, d in self._registry.drivers.items()},
            "lock_count": len(locks),
            "locks_online": sum(lock.status.online for lock in locks),
            "radio_operations": {
                lock.lock_id: self._registry.state_json(lock).get("radio_operations", {})
                for lock in locks
            },
        }

    async def _lock_list(self, _: EmptyRequest) -> dict[str, Any]:
        return {"locks": [self._registry.state_json(lock) for lock in self._registry.locks()]}

    async def _lock_get(self, request: LockRequest) -> dict[str, Any]:
        return {"lock": self._registry.state_json(self._registry.get(request.lock_id))}

    async def _lock_lock(self, request: LockRequest) -> dict[str, Any]:
        return await self.actuate(request.lock_id, "lock")

    async def _lock_unlock(self, request: LockRequest) -> dict[str, Any]:
        return await self.actuate(request.lock_id, "unlock")

    async def actuate(self, lock_id: str, action: Literal["lock", "unlock"]) -> dict[str, Any]:
        lock = self._registry.get(lock_id)
        caps = lock.identity.capabilities
        if not (caps.can_remotely_lock if action == "lock" else caps.can_remotely_unlock):
            raise UnsupportedError(f"lock {lock_id} cannot be {action}ed remotely", lock_id=lock_id)
        driver = self._registry.driver_for(lock)
        operate = driver.lock if action == "lock" else driver.unlock
        try:
            async with asyncio.timeout(self._timeout):
                confirmed = await operate(lock.identity.native_id)
        except TimeoutError:
            raise DeviceTimeoutError(
                f"lock {lock_id} did not answer within {self._timeout:g} s", lock_id=lock_id
            ) from None
        except LockbridgeError as err:
            err.lock_id = lock_id
            raise
        state = self._registry.get(lock_id).status.lock_state
        log.info("lock %s: %s %s", lock_id, action, "confirmed" if confirmed else "unconfirmed")
        return {
            "lock_id": lock_id,
            "action": action,
            "confirmed": confirmed,
            "lock_state": state.value,
        }

    async def _event_list(self, request: EventListRequest) -> dict[str, Any]:
        if request.lock_id is not None:
            self._registry.get(request.lock_id)
        events = await self._store.list_events(
            lock_id=request.lock_id,
            event_types=request.event_types,
            since=request.since.astimezone(UTC) if request.since else None,
            until=request.until.astimezone(UTC) if request.until else None,
            limit=request.limit,
        )
        return {"events": events}

    async def _permit_join(self, request: PermitJoinRequest) -> dict[str, Any]:
        driver = self._registry.drivers.get(request.protocol)
        if driver is None:
            raise UnsupportedError(f"no {request.protocol!r} driver is running")
        await driver.permit_join(request.seconds)
        return {"protocol": request.protocol, "seconds": request.seconds}
