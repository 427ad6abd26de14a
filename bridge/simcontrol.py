"""The simulator control API (SPEC §8): what a person would do at a simulated door.

Requests name the lock by its bridge `lock_id`; the lock's driver supplies the
`SimulatorControl` of its simulated radio.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from bridge.api import decode_object, describe_validation, error, ok
from bridge.driver import SimulatorControl
from bridge.errors import (
    InvalidPayloadError,
    LockbridgeError,
    UnknownCommandError,
    UnsupportedError,
)
from bridge.registry import LockRegistry

log = logging.getLogger(__name__)

Pin = Annotated[StrictStr, Field(pattern=r"^[0-9A-Za-z*#]{1,16}$", repr=False)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lock_id: StrictStr
    transaction: StrictStr | StrictInt | None = None


class KeypadEntry(_Action):
    pin: Pin


class DoorAction(_Action):
    open: StrictBool


class OnlineAction(_Action):
    online: StrictBool


class BatteryAction(_Action):
    level: Annotated[StrictInt, Field(ge=0, le=100)]


class AddCode(_Action):
    slot: Annotated[StrictInt, Field(ge=0, le=65535)]
    pin: Pin


class SlotsAction(_Action):
    reveal: StrictBool = False


Perform = Callable[[SimulatorControl, str, Any], Awaitable[dict[str, Any]]]


async def _keypad(sim: SimulatorControl, native: str, req: KeypadEntry) -> dict[str, Any]:
    await sim.keypad_entry(native, req.pin)
    return {}


async def _manual_lock(sim: SimulatorControl, native: str, _: _Action) -> dict[str, Any]:
    await sim.manual(native, lock=True)
    return {}


async def _manual_unlock(sim: SimulatorControl, native: str, _: _Action) -> dict[str, Any]:
    await sim.manual(native, lock=False)
    return {}


async def _door(sim: SimulatorControl, native: str, req: DoorAction) -> dict[str, Any]:
    await sim.door(native, is_open=req.open)
    return {}


async def _online(sim: SimulatorControl, native: str, req: OnlineAction) -> dict[str, Any]:
    await sim.set_online(native, online=req.online)
    return {}


async def _battery(sim: SimulatorControl, native: str, req: BatteryAction) -> dict[str, Any]:
    await sim.battery(native, req.level)
    return {}


async def _add_code(sim: SimulatorControl, native: str, req: AddCode) -> dict[str, Any]:
    await sim.add_code(native, req.slot, req.pin)
    return {}


async def _slots(sim: SimulatorControl, native: str, req: SlotsAction) -> dict[str, Any]:
    slots = await sim.slots(native)
    if not req.reveal:
        slots = [{k: v for k, v in slot.items() if k != "code"} for slot in slots]
    return {"slots": slots, "radio_operations": sim.radio_operations(native)}


ACTIONS: dict[str, tuple[type[_Action], Perform]] = {
    "keypad_entry": (KeypadEntry, _keypad),
    "manual_lock": (_Action, _manual_lock),
    "manual_unlock": (_Action, _manual_unlock),
    "door": (DoorAction, _door),
    "set_online": (OnlineAction, _online),
    "battery": (BatteryAction, _battery),
    "add_code": (AddCode, _add_code),
    "slots": (SlotsAction, _slots),
}


class SimulatorApi:
    def __init__(self, registry: LockRegistry) -> None:
        self._registry = registry

    async def handle(self, action: str, payload: bytes) -> dict[str, Any]:
        transaction: Any = None
        try:
            raw = decode_object(payload)
            transaction = raw.get("transaction")
            if action not in ACTIONS:
                raise UnknownCommandError(f"unknown simulator action {action!r}")
            model, perform = ACTIONS[action]
            try:
                request = model.model_validate(raw)
            except ValidationError as err:
                raise InvalidPayloadError(describe_validation(err)) from None
            lock = self._registry.get(request.lock_id)
            sim = self._registry.driver_for(lock).simulator()
            if sim is None:
                raise UnsupportedError(
                    f"lock {lock.lock_id} is not simulated", lock_id=lock.lock_id
                )
            data = await perform(sim, lock.identity.native_id, request)
            return ok({"lock_id": lock.lock_id, "action": action, **data}, transaction)
        except LockbridgeError as err:
            return error(err, transaction)
        except Exception:
            log.exception("simulator action %s failed", action)
            return error(LockbridgeError("internal error; see the bridge log"), transaction)
