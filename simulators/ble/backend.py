"""A bleak backend (client and scanner) whose radio is a Bumble central on the simulator's link.

bleak takes backends as classes, so `backends(air)` makes a pair bound to one simulated
air space. The driver passes them as `BleakClient(..., backend=...)` and
`BleakScanner(..., backend=...)`; everything above this module is the production code path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str
from bumble import core, gatt_client
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address

log = logging.getLogger(__name__)

MTU = 247
_PROPERTY_NAMES = {
    0x01: "broadcast",
    0x02: "read",
    0x04: "write-without-response",
    0x08: "write",
    0x10: "notify",
    0x20: "indicate",
    0x40: "authenticated-signed-writes",
    0x80: "extended-properties",
}


class Air(Protocol):
    """What the backend needs of the simulated air space."""

    central: Device
    connecting: asyncio.Lock

    def reachable(self, address: str) -> bool: ...


def normalize(uuid: core.UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-"))


def backends(air: Air) -> tuple[type[BaseBleakClient], type[BaseBleakScanner]]:
    client = type("BumbleBleakClient", (BumbleClient,), {"air": air})
    scanner = type("BumbleBleakScanner", (BumbleScanner,), {"air": air})
    return client, scanner


class BumbleClient(BaseBleakClient):
    air: Air

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._mtu = 23
        self._gone = asyncio.Event()

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if not self.air.reachable(self.address):
            # As BlueZ does for a device that is not (or no longer) advertising.
            await asyncio.sleep(min(self._timeout, 0.05))
            raise BleakDeviceNotFoundError(self.address, f"device {self.address} was not found")
        try:
            async with self.air.connecting, asyncio.timeout(self._timeout):
                connection = await self.air.central.connect(
                    Address(self.address), timeout=self._timeout
                )
        except (TimeoutError, core.TimeoutError) as err:
            raise TimeoutError(f"connecting to {self.address} timed out") from err
        except core.BaseBumbleError as err:
            raise BleakError(f"connecting to {self.address} failed: {err}") from err
        self._connection = connection
        self._gone.clear()
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            async with asyncio.timeout(self._timeout):
                peer = Peer(connection)
                self._mtu = await peer.request_mtu(MTU)
                await peer.discover_all()  # type: ignore[no-untyped-call]
        except (TimeoutError, core.BaseBumbleError) as err:
            await self.disconnect()
            raise BleakError(f"service discovery on {self.address} failed: {err}") from err
        self._peer = peer
        self.services = self._collect(peer)

    def _collect(self, peer: Peer) -> BleakGATTServiceCollection:
        services = BleakGATTServiceCollection()
        for proxy in peer.services:
            service = BleakGATTService(proxy, proxy.handle, normalize(proxy.uuid))
            services.add_service(service)
            for char in proxy.characteristics:
                names: list[Any] = [
                    name for bit, name in _PROPERTY_NAMES.items() if char.properties & bit
                ]
                characteristic = BleakGATTCharacteristic(
                    char, char.handle, normalize(char.uuid), names, lambda: self._mtu - 3, service
                )
                services.add_characteristic(characteristic)
                for desc in char.descriptors:
                    services.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, normalize(desc.type), characteristic)
                    )
        return services

    def _on_disconnection(self, *_: Any) -> None:
        was_connected = self._connection is not None
        self._connection = None
        self._peer = None
        self._gone.set()
        if was_connected and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._peer = None
        if connection is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await connection.disconnect()
        except (TimeoutError, core.BaseBumbleError) as err:
            log.debug("disconnecting %s: %s", self.address, err)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        # Nuki pairs in its own protocol, above GATT; link-layer bonding is not used.
        raise NotImplementedError("link-layer pairing is not simulated")

    async def unpair(self) -> None:
        raise NotImplementedError("link-layer pairing is not simulated")

    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        return bytearray(await self._io(proxy.read_value()))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: gatt_client.DescriptorProxy = descriptor.obj
        return bytearray(await self._io(proxy.read_value()))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        await self._io(proxy.write_value(bytes(data), with_response=response))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        proxy: gatt_client.DescriptorProxy = descriptor.obj
        await self._io(proxy.write_value(bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        await self._io(
            proxy.subscribe(lambda value: callback(bytearray(value)), prefer_notify=True)
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        await self._io(proxy.unsubscribe())

    async def _io[T](self, work: Any) -> T:
        """One GATT operation; like BlueZ, it fails at once when the link drops meanwhile."""
        try:
            self._require()
        except BleakError:
            work.close()
            raise
        operation: asyncio.Task[T] = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({operation, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not operation.done():
                operation.cancel()
                await asyncio.gather(operation, return_exceptions=True)
        if operation.cancelled():
            raise BleakError(f"{self.address}: disconnected")
        try:
            return operation.result()
        except core.BaseBumbleError as err:
            raise BleakError(f"{self.address}: {err}") from err


class BumbleScanner(BaseBleakScanner):
    air: Air

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._listening = False

    async def start(self) -> None:
        self.seen_devices = {}
        self.air.central.on(self.air.central.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._listening = True
        await self.air.central.start_scanning(filter_duplicates=False)

    async def stop(self) -> None:
        if self._listening:
            self.air.central.remove_listener(
                self.air.central.EVENT_ADVERTISEMENT, self._on_advertisement
            )
            self._listening = False
        if self.air.central.is_scanning:
            await self.air.central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        manufacturer: dict[int, bytes] = {}
        uuids: list[str] = []
        name: str | None = None
        for kind, value in data.ad_structures:
            if kind == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
                manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
            elif kind in (
                AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            ):
                uuids.extend(
                    normalize(core.UUID.from_bytes(value[i : i + 16]))
                    for i in range(0, len(value), 16)
                )
            elif kind in (
                AdvertisingData.COMPLETE_LOCAL_NAME,
                AdvertisingData.SHORTENED_LOCAL_NAME,
            ):
                name = bytes(value).decode(errors="replace")
        uuids = list(dict.fromkeys(uuids))
        if not self.is_allowed_uuid(uuids):
            return
        address = str(advertisement.address).removesuffix("/P")
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data=manufacturer,
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        device = self.create_or_update_device(address, address, name, advertisement, adv)
        self.call_detection_callbacks(device, adv)
