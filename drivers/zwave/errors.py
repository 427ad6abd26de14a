"""zwave-js-server-python's errors, and zwave-js' error codes, as lockbridge errors."""

from __future__ import annotations

from zwave_js_server.exceptions import (
    BaseZwaveJSServerError,
    FailedZWaveCommand,
    NotConnected,
    TransportError,
)

from bridge.errors import (
    CodeSlotError,
    DeviceError,
    DeviceTimeoutError,
    LockbridgeError,
    LockOfflineError,
    TransientError,
)

# zwave-js' ZWaveErrorCodes.
CONTROLLER_TIMEOUT = 200
NODE_TIMEOUT = 201
MESSAGE_DROPPED = 202
CALLBACK_NOK = 204
JAMMED = 205
NODE_NOT_FOUND = 211
MESSAGE_EXPIRED = 215
ARGUMENT_INVALID = 322
SUPERVISION_FAILED = 1100
DRIVER_NOT_READY = 103

_UNREACHABLE = frozenset({NODE_TIMEOUT, MESSAGE_DROPPED, CALLBACK_NOK, NODE_NOT_FOUND})
_BUSY = frozenset({CONTROLLER_TIMEOUT, JAMMED, MESSAGE_EXPIRED, DRIVER_NOT_READY})


def translate(err: BaseException, what: str, native_id: str, timeout: float) -> LockbridgeError:
    if isinstance(err, TimeoutError):
        return DeviceTimeoutError(f"{what}: no answer within {timeout:g} s", lock_id=native_id)
    if isinstance(err, NotConnected | TransportError):
        return LockOfflineError(
            f"{what}: the lock is unreachable (Z-Wave JS server connection lost)",
            lock_id=native_id,
        )
    if isinstance(err, FailedZWaveCommand):
        code = err.zwave_error_code
        if code in _UNREACHABLE:
            return LockOfflineError(
                f"{what}: the lock is unreachable (zwave-js error {code})", lock_id=native_id
            )
        if code in _BUSY:
            return TransientError(f"{what}: zwave-js error {code}", lock_id=native_id)
        if code == ARGUMENT_INVALID:
            # zwave-js checks codes against the lock's User Code capabilities. Its message
            # may quote the code's rules, never the code.
            return CodeSlotError(
                f"{what}: the lock's rules refuse it", reason="code_constraints_violated"
            )
        if code == SUPERVISION_FAILED:
            return DeviceError(f"{what}: the lock refused", lock_id=native_id)
        return DeviceError(f"{what}: zwave-js error {code}", lock_id=native_id)
    if isinstance(err, BaseZwaveJSServerError):
        return DeviceError(f"{what}: {type(err).__name__}", lock_id=native_id)
    return DeviceError(f"{what}: {err}", lock_id=native_id)
