"""The exception hierarchy: one root, transient errors apart, ids as attributes."""

from __future__ import annotations


class LockbridgeError(Exception):
    """Root of every error lockbridge raises on purpose.

    ``code`` is the machine-readable error code of the MQTT contract (SPEC §5).
    """

    code = "internal_error"

    def __init__(self, message: str, *, lock_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lock_id = lock_id


class TransientError(LockbridgeError):
    """A failure that may succeed when retried (radio busy, frame lost, timeout)."""


class DeviceTimeoutError(TransientError):
    code = "timeout"


class LockOfflineError(TransientError):
    code = "lock_offline"


class LockNotFoundError(LockbridgeError):
    code = "lock_not_found"


class UnsupportedError(LockbridgeError):
    code = "unsupported"


class InvalidPayloadError(LockbridgeError):
    code = "invalid_payload"


class UnknownCommandError(LockbridgeError):
    code = "unknown_command"


class CommandExpiredError(LockbridgeError):
    code = "command_expired"


class ConfigError(LockbridgeError):
    """The configuration file is missing, unreadable or invalid."""

    code = "invalid_config"


class DeviceError(LockbridgeError):
    """The lock answered, but refused or failed the operation."""

    code = "device_error"


class CodeSlotError(DeviceError):
    """The lock refused a code; `reason` is an access-code error code of SPEC §4."""

    def __init__(self, message: str, *, reason: str, lock_id: str | None = None) -> None:
        super().__init__(message, lock_id=lock_id)
        self.reason = reason


class CodeRejectedError(LockbridgeError):
    """A requested access code breaks a rule; `code` says which (SPEC §5)."""

    def __init__(self, message: str, *, code: str, lock_id: str | None = None) -> None:
        super().__init__(message, lock_id=lock_id)
        self.code = code


class AccessCodeNotFoundError(LockbridgeError):
    code = "access_code_not_found"


class WebPassNotFoundError(LockbridgeError):
    code = "web_pass_not_found"
