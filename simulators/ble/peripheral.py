"""A simulated Nuki lock on the air: a Bumble GATT peripheral that advertises the Nuki beacon."""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable

from bumble import gatt
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from drivers.ble.nuki.const import (
    APPLE_COMPANY_ID,
    BEACON_PREFIX,
    KEYTURNER_GDIO,
    KEYTURNER_SERVICE,
    KEYTURNER_USDIO,
    PAIRING_GDIO,
    PAIRING_SERVICE,
)
from simulators.ble.lock import SimNukiLock

log = logging.getLogger(__name__)

ADVERTISING_INTERVAL_MS = 25.0
_WRITE_INDICATE = gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.INDICATE


class NukiPeripheral:
    def __init__(self, lock: SimNukiLock, address: str, link: LocalLink, latency: float) -> None:
        self.lock = lock
        self.address = address
        self.online = True
        self.drop_next = 0
        self.drop_answers = 0
        self._latency = latency
        self._link = link
        self._controller = Controller(f"nuki-{address}", link=link, public_address=address)
        self.device = Device(
            name=f"Nuki_{lock.data.nuki_id:08X}",
            address=Address(address),
            host=Host(self._controller, AsyncPipeSink(self._controller)),
        )
        self._pairing = self._characteristic(PAIRING_GDIO, self._on_pairing)
        self._gdio = self._characteristic(KEYTURNER_GDIO, self._on_gdio)
        self._usdio = self._characteristic(KEYTURNER_USDIO, self._on_usdio)
        self.device.add_service(gatt.Service(PAIRING_SERVICE, [self._pairing]))
        self.device.add_service(gatt.Service(KEYTURNER_SERVICE, [self._gdio, self._usdio]))
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        self._connections: set[Connection] = set()
        # Answers being indicated, per connection: they end when the link drops.
        self._answering: dict[Connection, set[asyncio.Task[object]]] = {}

    @staticmethod
    def _characteristic(
        uuid_text: str, handler: Callable[[Connection, bytes], Awaitable[None]]
    ) -> gatt.Characteristic[bytes]:
        return gatt.Characteristic(
            uuid_text,
            _WRITE_INDICATE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=handler),
        )

    async def start(self) -> None:
        await self.device.power_on()
        await self.advertise()

    async def stop(self) -> None:
        for connection in list(self._connections):
            await self._disconnect(connection)
        if self.device.is_advertising:
            await self.device.stop_advertising()
        await self.device.power_off()

    async def advertise(self) -> None:
        """(Re)start advertising the beacon, whose last bit says the state changed."""
        if not self.online:
            return
        tx_power = 0xC4 | int(self.lock.state_changed)
        beacon = (
            BEACON_PREFIX
            + uuid.UUID(KEYTURNER_SERVICE).bytes
            + struct.pack(">I", self.lock.data.nuki_id)
            + bytes([tx_power])
        )
        if self.lock.pairing_mode:
            # In pairing mode the lock announces its pairing service instead of the beacon.
            entries = [
                (
                    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                    uuid.UUID(PAIRING_SERVICE).bytes[::-1],
                ),
                (AdvertisingData.SHORTENED_LOCAL_NAME, b"Nuki"),
            ]
        else:
            entries = [
                (
                    AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                    struct.pack("<H", APPLE_COMPANY_ID) + beacon,
                )
            ]
        data = AdvertisingData([(AdvertisingData.FLAGS, bytes([0x06])), *entries])
        if self.device.is_advertising:
            await self.device.stop_advertising()
        await self.device.start_advertising(
            advertising_data=bytes(data),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
            auto_restart=True,
        )

    async def set_online(self, online: bool) -> None:
        if online == self.online:
            return
        self.online = online
        if online:
            self._link.add_controller(self._controller)
            await self.advertise()
            return
        for connection in list(self._connections):
            await self._disconnect(connection)
        if self.device.is_advertising:
            await self.device.stop_advertising()
        # Out of range: nothing on the link can reach its controller any more.
        self._link.remove_controller(self._controller)

    def _on_connection(self, connection: Connection) -> None:
        self._connections.add(connection)

        def gone(*_: object) -> None:
            self._connections.discard(connection)
            self.lock.forget(connection)
            for task in self._answering.pop(connection, set()):
                task.cancel()

        connection.on(connection.EVENT_DISCONNECTION, gone)

    async def _disconnect(self, connection: Connection) -> None:
        try:
            await connection.disconnect()
        except Exception as err:  # the link may already be gone
            log.debug("simulated Nuki %s: disconnect: %s", self.address, err)
        self._connections.discard(connection)

    async def _answer(
        self,
        connection: Connection,
        characteristic: gatt.Characteristic[bytes],
        replies: list[bytes],
    ) -> None:
        task = asyncio.current_task()
        if task is None or connection not in self._connections:
            return
        answering = self._answering.setdefault(connection, set())
        answering.add(task)
        try:
            if self._latency:
                await asyncio.sleep(self._latency)
            for reply in replies:
                await self.device.indicate_subscriber(connection, characteristic, reply)
        finally:
            answering.discard(task)

    async def _dropped(self, connection: Connection) -> bool:
        """Connection trouble on demand: the lock goes away before it answers."""
        if self.drop_next <= 0:
            return False
        self.drop_next -= 1
        await self._disconnect(connection)
        return True

    async def _on_pairing(self, connection: Connection, value: bytes) -> None:
        if not await self._dropped(connection):
            await self._answer(
                connection, self._pairing, self.lock.pairing(connection, bytes(value))
            )

    async def _on_gdio(self, connection: Connection, value: bytes) -> None:
        # Only pairing and encrypted data are spoken here; the general channel refuses.
        await self._answer(connection, self._gdio, [])

    async def _on_usdio(self, connection: Connection, value: bytes) -> None:
        if await self._dropped(connection):
            return
        was_changed = self.lock.state_changed
        operations = self.lock.operations
        replies = self.lock.keyturner(connection, bytes(value))
        if self.drop_answers > 0 and self.lock.operations > operations:
            # Done, but the link drops before the answer: the client cannot know it worked.
            self.drop_answers -= 1
            await self._disconnect(connection)
            return
        await self._answer(connection, self._usdio, replies)
        if was_changed != self.lock.state_changed:
            await self.advertise()
