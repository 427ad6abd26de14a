"""`lockbridge ble pair`: pair the bridge with a Nuki lock that is in pairing mode."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bridge.config import load_config
from bridge.errors import LockbridgeError
from bridge.model import DriverEvent, LockIdentity, StatusUpdate
from drivers.ble.driver import BleDriver

log = logging.getLogger("lockbridge.ble")


class _Quiet:
    """A sink for a driver that only pairs: nothing is published."""

    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None:
        pass

    def lock_status(self, native_id: str, update: StatusUpdate) -> None:
        pass

    def lock_event(self, native_id: str, event: DriverEvent) -> None:
        pass

    def slot_changed(self, native_id: str, slot: int | None) -> None:
        pass


async def pair(config_path: Path, address: str | None, wait: float) -> str:
    config = load_config(config_path)
    driver = BleDriver(_Quiet(), config.ble, config.state_dir)
    await driver.prepare()
    try:
        async with asyncio.timeout(wait):
            found = await driver.wait_for_pairing_mode(address)
            return await driver.pair(found)
    finally:
        await driver.stop()


def pair_command(config_path: Path, address: str | None, timeout: float) -> int:
    print(
        "Put the Nuki into pairing mode (hold its button for 5 s until the ring lights up)...",
        flush=True,
    )
    try:
        native = asyncio.run(pair(config_path, address, timeout))
    except TimeoutError:
        print(f"no Nuki in pairing mode was seen within {timeout:g} s")
        return 1
    except LockbridgeError as err:
        print(f"pairing failed: {err.message}")
        return 1
    print(f"paired: {native} (credentials sealed in the state directory)")
    return 0
