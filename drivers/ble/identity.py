"""How BLE locks are named: the native id is derived from the Bluetooth address."""

from __future__ import annotations


def native_id(address: str) -> str:
    return f"ble-{address.replace(':', '').lower()}"


def address_of(native: str) -> str:
    digits = native.removeprefix("ble-").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
