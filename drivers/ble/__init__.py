"""Bluetooth LE locks through bleak; the first family is Nuki (or the simulated air space)."""

from drivers.ble.driver import BleDriver

__all__ = ["BleDriver"]
