"""Numbers from Nuki's published Bluetooth API (Smart Lock), named."""

from __future__ import annotations

import enum

# GATT: the pairing service while the lock is in pairing mode, the keyturner service always.
PAIRING_SERVICE = "a92ee100-5501-11e4-916c-0800200c9a66"
PAIRING_GDIO = "a92ee101-5501-11e4-916c-0800200c9a66"
KEYTURNER_SERVICE = "a92ee200-5501-11e4-916c-0800200c9a66"
KEYTURNER_GDIO = "a92ee201-5501-11e4-916c-0800200c9a66"
KEYTURNER_USDIO = "a92ee202-5501-11e4-916c-0800200c9a66"
# Advertised in the iBeacon (Apple company id 0x004C) whose last byte flags a state change.
APPLE_COMPANY_ID = 0x004C
BEACON_PREFIX = bytes([0x02, 0x15])


class Command(enum.IntEnum):
    REQUEST_DATA = 0x0001
    PUBLIC_KEY = 0x0003
    CHALLENGE = 0x0004
    AUTHORIZATION_AUTHENTICATOR = 0x0005
    AUTHORIZATION_DATA = 0x0006
    AUTHORIZATION_ID = 0x0007
    KEYTURNER_STATES = 0x000C
    LOCK_ACTION = 0x000D
    STATUS = 0x000E
    ERROR_REPORT = 0x0012
    AUTHORIZATION_ID_CONFIRMATION = 0x001E
    REQUEST_LOG_ENTRIES = 0x0031
    LOG_ENTRY = 0x0032
    LOG_ENTRY_COUNT = 0x0033
    ADD_KEYPAD_CODE = 0x0041
    KEYPAD_CODE_ID = 0x0042
    REQUEST_KEYPAD_CODES = 0x0043
    KEYPAD_CODE_COUNT = 0x0044
    KEYPAD_CODE = 0x0045
    UPDATE_KEYPAD_CODE = 0x0046
    REMOVE_KEYPAD_CODE = 0x0047


class Status(enum.IntEnum):
    COMPLETE = 0x00
    ACCEPTED = 0x01


class ErrorCode(enum.IntEnum):
    BAD_CRC = 0xFD
    BAD_LENGTH = 0xFE
    UNKNOWN = 0xFF
    P_NOT_PAIRING = 0x10
    P_BAD_AUTHENTICATOR = 0x11
    P_BAD_PARAMETER = 0x12
    P_MAX_USER = 0x13
    K_NOT_AUTHORIZED = 0x20
    K_BAD_PIN = 0x21
    K_BAD_NONCE = 0x22
    K_BAD_PARAMETER = 0x23
    K_INVALID_AUTH_ID = 0x24
    K_DISABLED = 0x25
    K_TOO_MANY_ENTRIES = 0x29
    K_CODE_ALREADY_EXISTS = 0x2A
    K_CODE_INVALID = 0x2B
    K_MOTOR_BLOCKED = 0x42
    K_BUSY = 0x45


class LockState(enum.IntEnum):
    UNCALIBRATED = 0x00
    LOCKED = 0x01
    UNLOCKING = 0x02
    UNLOCKED = 0x03
    LOCKING = 0x04
    UNLATCHED = 0x05
    UNLOCKED_LOCK_N_GO = 0x06
    UNLATCHING = 0x07
    MOTOR_BLOCKED = 0xFE
    UNDEFINED = 0xFF


class LockAction(enum.IntEnum):
    UNLOCK = 0x01
    LOCK = 0x02
    UNLATCH = 0x03


class Trigger(enum.IntEnum):
    SYSTEM = 0x00  # over Bluetooth
    MANUAL = 0x01
    BUTTON = 0x02
    AUTOMATIC = 0x03
    AUTO_LOCK = 0x06


class DoorSensor(enum.IntEnum):
    UNAVAILABLE = 0x00
    DEACTIVATED = 0x01
    CLOSED = 0x02
    OPENED = 0x03
    UNKNOWN = 0x04
    CALIBRATING = 0x05


class NukiState(enum.IntEnum):
    UNINITIALIZED = 0x00
    PAIRING_MODE = 0x01
    DOOR_MODE = 0x02


class IdType(enum.IntEnum):
    APP = 0x00
    BRIDGE = 0x01
    FOB = 0x02
    KEYPAD = 0x03


class LogType(enum.IntEnum):
    LOCK_ACTION = 0x02
    KEYPAD_ACTION = 0x05
    DOOR_SENSOR = 0x06


class KeypadSource(enum.IntEnum):
    BACK_KEY = 0x00
    CODE = 0x01


class Completion(enum.IntEnum):
    SUCCESS = 0x00
    MOTOR_BLOCKED = 0x01
    CANCELED = 0x02
    INCOMPLETE = 0x08
    # Keypad entries: a code the lock does not know, or not at this time.
    INVALID_CODE = 0xE0
