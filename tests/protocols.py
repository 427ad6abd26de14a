"""The simulated protocols that the conformance suites run on, and what each one accepts."""

from __future__ import annotations

from typing import Any

from tests.harness import ble_config, zigbee_config
from tests.services import NUKI_TEST_PINS, TEST_PINS
from tests.zwave_support import zwave_config

PROTOCOLS = ["zigbee", "zwave", "ble"]


def sim_config(protocol: str, **options: Any) -> dict[str, Any]:
    """Harness settings for simulated locks of `protocol` (start `fresh_zwave` for Z-Wave)."""
    if protocol == "ble":
        return ble_config(**options)
    if protocol == "zwave":
        return zwave_config(**options)
    assert protocol == "zigbee"
    return zigbee_config(**options)


def pins(protocol: str) -> tuple[str, ...]:
    """Three test PINs the protocol's locks accept (Nuki: six digits 1-9)."""
    return NUKI_TEST_PINS if protocol == "ble" else TEST_PINS


def more_pins(protocol: str, count: int) -> list[str]:
    if protocol == "ble":
        return ["345678", "456789", "567891", "678912", "789123", "891234"][:count]
    return [f"{40000 + 1111 * i}" for i in range(count)]
