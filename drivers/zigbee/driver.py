"""The Zigbee driver on zigpy: door locks are devices with a Door Lock server cluster (0x0101).

The radio library is chosen by config, like zigpy's own radio packages; the simulator
is just another radio. The driver reports what zigpy tells it to the `DriverSink` and
translates zigpy's failures into lockbridge errors at this boundary.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

import zigpy.application
import zigpy.config as zconf
import zigpy.device
import zigpy.exceptions
from zigpy.zcl import (
    AttributeReadEvent,
    AttributeReportedEvent,
    Cluster,
    foundation,
)
from zigpy.zcl.clusters.closures import DoorLock
from zigpy.zcl.clusters.general import PowerConfiguration
from zigpy.zcl.helpers import ReportingConfig

from bridge.config import ZigbeeConfig
from bridge.driver import DriverSink, LockDriver, SimulatorControl, SlotReading, SlotWrite
from bridge.errors import DeviceError, DeviceTimeoutError, LockOfflineError, TransientError
from bridge.model import StatusUpdate
from drivers.zigbee import codes, mapping

log = logging.getLogger(__name__)

RADIOS = {
    "znp": "zigpy_znp.zigbee.application:ControllerApplication",
    "ezsp": "bellows.zigbee.application:ControllerApplication",
    "deconz": "zigpy_deconz.zigbee.application:ControllerApplication",
    "zigate": "zigpy_zigate.zigbee.application:ControllerApplication",
    "xbee": "zigpy_xbee.zigbee.application:ControllerApplication",
    "simulator": "simulators.zigbee:SimulatedRadio",
}

Attr = DoorLock.AttributeDefs
Power = PowerConfiguration.AttributeDefs
STATE_ATTRIBUTES = [Attr.lock_state.name, Attr.door_state.name]
CAPABILITY_ATTRIBUTES = [
    Attr.num_of_pin_users_supported.name,
    Attr.num_of_week_day_schedules_supported_per_user.name,
    Attr.num_of_year_day_schedules_supported_per_user.name,
    Attr.min_pin_len.name,
    Attr.max_pin_len.name,
    Attr.send_pin_ota.name,
]
# Report changes at once, and at least hourly so that a silent lock is noticed.
REPORTED = {
    Attr.lock_state: ReportingConfig(min_interval=0, max_interval=3600, reportable_change=0),
    Attr.door_state: ReportingConfig(min_interval=0, max_interval=3600, reportable_change=0),
}
SETTLE_TIMEOUT = 20.0

# zigpy logs every frame's decoded arguments at DEBUG, PIN codes included.
for _name in (
    "zigpy",
    "zigpy_znp",
    "bellows",
    "zigpy_deconz",
    "zigpy_zigate",
    "zigpy_xbee",
    "aiosqlite",
):
    if logging.getLogger(_name).level in (logging.NOTSET, logging.DEBUG):
        logging.getLogger(_name).setLevel(logging.INFO)


def radio_class(radio: str) -> type[zigpy.application.ControllerApplication]:
    module_name, class_name = RADIOS[radio].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cast(type[zigpy.application.ControllerApplication], cls)


def zigpy_config(config: ZigbeeConfig, state_dir: Path) -> dict[str, Any]:
    device: dict[str, Any] = {zconf.CONF_DEVICE_PATH: config.device.path}
    if config.device.baudrate:
        device[zconf.CONF_DEVICE_BAUDRATE] = config.device.baudrate
    if config.device.flow_control:
        device[zconf.CONF_DEVICE_FLOW_CONTROL] = config.device.flow_control
    network: dict[str, Any] = {}
    if config.channel is not None:
        network[zconf.CONF_NWK_CHANNEL] = config.channel
    if config.pan_id is not None:
        network[zconf.CONF_NWK_PAN_ID] = config.pan_id
    if config.network_key is not None:
        network[zconf.CONF_NWK_KEY] = [
            int(byte, 16) for byte in config.network_key.get_secret_value().split(":")
        ]
    result: dict[str, Any] = {
        zconf.CONF_DEVICE: device,
        zconf.CONF_DATABASE: str(state_dir / config.database),
        zconf.CONF_NWK: network,
        # Nothing leaves the machine on its own: no OTA downloads, no periodic scans.
        zconf.CONF_OTA: {zconf.CONF_OTA_ENABLED: False},
        zconf.CONF_TOPO_SCAN_ENABLED: False,
    }
    if config.radio == "simulator":
        sim = config.simulator
        result[zconf.CONF_DEVICE] = {zconf.CONF_DEVICE_PATH: "simulator"}
        result[zconf.CONF_NWK_BACKUP_ENABLED] = False
        result["simulator"] = {
            **sim.model_dump(),
            "state_file": str(state_dir / "zigbee-simulator.json"),
        }
    return result


class ZigbeeDriver(LockDriver):
    protocol = mapping.PROTOCOL

    def __init__(self, sink: DriverSink, config: ZigbeeConfig, state_dir: Path) -> None:
        super().__init__(sink)
        self._config = config
        self._state_dir = state_dir
        self._app: zigpy.application.ControllerApplication | None = None
        self._locks: dict[str, zigpy.device.Device] = {}
        self._online: dict[str, bool] = {}
        self._adopting: dict[str, asyncio.Task[None]] = {}
        self._state = "stopped"

    # Lifecycle

    async def start(self) -> None:
        self._state = "starting"
        cls = radio_class(self._config.radio)
        await asyncio.to_thread(self._state_dir.mkdir, parents=True, exist_ok=True)
        try:
            app = await cls.new(zigpy_config(self._config, self._state_dir), auto_form=True)
        except Exception as err:
            self._state = "failed"
            raise TransientError(f"Zigbee radio {self._config.radio} did not start: {err}") from err
        self._app = app
        app.add_listener(self)
        for device in list(app.devices.values()):
            if isinstance(device, zigpy.device.Device) and device.is_initialized:
                # Known from the database: bound and configured when it first joined.
                self._consider(device, fresh=False)
        await self._settle()
        self._state = "running"

    async def _settle(self) -> None:
        """Wait (bounded) until the locks the radio knows of are interviewed and reported."""
        expected = getattr(self._app, "expected_locks", None)
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while True:
                    self._progress.clear()
                    pending = [task for task in self._adopting.values() if not task.done()]
                    waiting = {mapping.native_id(i) for i in expected()} if expected else set()
                    if not pending and waiting <= set(self._locks):
                        return
                    await self._progress.wait()
        except TimeoutError:
            log.warning("Zigbee: some locks were not ready within %.0f s", SETTLE_TIMEOUT)

    async def stop(self) -> None:
        await self._cancel_tasks()
        app, self._app = self._app, None
        if app is not None:
            app.remove_listener(self)
            try:
                async with asyncio.timeout(5):
                    await app.shutdown()
            except Exception as err:
                log.warning("Zigbee radio shutdown: %s", err)
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        return {"state": self._state, "radio": self._config.radio, "locks": len(self._locks)}

    def simulator(self) -> SimulatorControl | None:
        if self._config.radio != "simulator" or self._app is None:
            return None
        from simulators.zigbee.control import ZigbeeSimulatorControl  # noqa: PLC0415
        from simulators.zigbee.radio import SimulatedRadio  # noqa: PLC0415

        return ZigbeeSimulatorControl(cast(SimulatedRadio, self._app))

    async def permit_join(self, seconds: int) -> None:
        await self._radio(self._require_app().permit(seconds), "permit-join", None)

    # Commands

    async def lock(self, native_id: str) -> bool:
        return await self._operate(native_id, lock=True)

    async def unlock(self, native_id: str) -> bool:
        return await self._operate(native_id, lock=False)

    async def _operate(self, native_id: str, *, lock: bool) -> bool:
        cluster = self._door_lock(native_id)
        command = cluster.lock_door() if lock else cluster.unlock_door()
        response = await self._radio(command, "lock" if lock else "unlock", native_id)
        status = getattr(response, "status", None)
        if status != foundation.Status.SUCCESS:
            raise DeviceError(f"the lock refused: {status}", lock_id=native_id)
        state = mapping.lock_state(1 if lock else 2)
        self._sink.lock_status(native_id, StatusUpdate(online=True, lock_state=state))
        return True

    async def write_slot(self, native_id: str, write: SlotWrite) -> None:
        await codes.write(self._door_lock(native_id), self._radio_for(native_id), write)

    async def read_slot(self, native_id: str, slot: int) -> SlotReading:
        return await codes.read(self._door_lock(native_id), self._radio_for(native_id), slot)

    async def clear_slot(self, native_id: str, slot: int) -> None:
        await codes.clear(self._door_lock(native_id), self._radio_for(native_id), slot)

    def _radio_for(self, native_id: str) -> codes.Radio:
        async def radio(work: Awaitable[Any], what: str) -> Any:
            return await self._radio(work, what, native_id)

        return radio

    async def _radio[T](self, work: Awaitable[T], what: str, native_id: str | None) -> T:
        """One device round trip, bounded in time, with zigpy's errors translated."""
        if native_id is not None:
            self.count_radio_operation(native_id)
        try:
            async with asyncio.timeout(self._config.command_timeout):
                result = await work
        except TimeoutError as err:
            raise DeviceTimeoutError(
                f"{what}: no answer within {self._config.command_timeout:g} s", lock_id=native_id
            ) from err
        except zigpy.exceptions.DeliveryError as err:
            if native_id is not None:
                self._set_online(native_id, online=False)
            raise LockOfflineError(
                f"{what}: the lock is unreachable ({err})", lock_id=native_id
            ) from err
        except zigpy.exceptions.ZigbeeException as err:
            raise TransientError(f"{what}: {err}", lock_id=native_id) from err
        if native_id is not None:
            self._set_online(native_id, online=True)
        return result

    def _require_app(self) -> zigpy.application.ControllerApplication:
        if self._app is None:
            raise LockOfflineError("the Zigbee radio is not running")
        return self._app

    def _door_lock(self, native_id: str) -> Cluster:
        device = self._locks.get(native_id)
        if device is None:
            raise LockOfflineError(
                f"Zigbee lock {native_id} is not on the network", lock_id=native_id
            )
        cluster: Cluster = _find_cluster(device, DoorLock.cluster_id)
        return cluster

    # zigpy application listener

    def device_initialized(self, device: zigpy.device.Device) -> None:
        """A device finished its interview (it joined, or was re-interviewed)."""
        self._consider(device, fresh=True)

    def _consider(self, device: zigpy.device.Device, *, fresh: bool) -> None:
        if _find_cluster(device, DoorLock.cluster_id, required=False) is None:
            return
        native_id = mapping.native_id(device.ieee)
        previous = self._adopting.get(native_id)
        if previous is not None and not previous.done():
            return
        self._adopting[native_id] = self._spawn(
            self._adopt(device, bind=fresh), f"zigbee-adopt-{native_id}"
        )

    def device_left(self, device: zigpy.device.Device) -> None:
        native_id = mapping.native_id(device.ieee)
        if native_id in self._locks:
            self._set_online(native_id, online=False)

    def device_removed(self, device: zigpy.device.Device) -> None:
        self.device_left(device)

    def handle_message(self, device: zigpy.device.Device, *_: Any) -> None:
        native_id = mapping.native_id(device.ieee)
        if native_id in self._locks and not self._online.get(native_id, False):
            self._set_online(native_id, online=True)
            # It was away: whatever happened at the door meanwhile, read it once.
            self._spawn(self._refresh(native_id), f"zigbee-refresh-{native_id}")

    def connection_lost(self, exc: Exception) -> None:
        log.error("Zigbee radio connection lost: %s", exc)
        self._state = "failed"
        for native_id in list(self._locks):
            self._set_online(native_id, online=False)

    # Locks

    async def _adopt(self, device: zigpy.device.Device, *, bind: bool) -> None:
        native_id = mapping.native_id(device.ieee)
        door = _find_cluster(device, DoorLock.cluster_id)
        power = _find_cluster(device, PowerConfiguration.cluster_id, required=False)
        online = True
        try:
            if bind:
                await self._configure_reporting(native_id, door, power)
            await self._radio(
                door.read_attributes(CAPABILITY_ATTRIBUTES, allow_cache=True),
                "read capabilities",
                None,
            )
            await self._radio(door.read_attributes(STATE_ATTRIBUTES), "read state", None)
            if power is not None:
                await self._radio(
                    power.read_attributes([Power.battery_percentage_remaining.name]),
                    "read battery",
                    None,
                )
        except (TransientError, DeviceError) as err:
            log.warning("Zigbee lock %s: %s", native_id, err.message)
            online = False
        caps = mapping.capabilities(
            door.get(Attr.num_of_pin_users_supported.name),
            door.get(Attr.min_pin_len.name),
            door.get(Attr.max_pin_len.name),
            can_read_codes=door.get(Attr.send_pin_ota.name) != 0,
            week_day_schedules=door.get(Attr.num_of_week_day_schedules_supported_per_user.name),
            year_day_schedules=door.get(Attr.num_of_year_day_schedules_supported_per_user.name),
        )
        identity = mapping.identity(device.ieee, device.manufacturer, device.model, caps)
        self._locks[native_id] = device
        self._online[native_id] = online
        self._sink.lock_added(identity, self._snapshot(door, power, online=online))
        for cluster in (door, power):
            if cluster is not None:
                _ClusterListener(self, native_id, cluster).attach()

    async def _configure_reporting(
        self, native_id: str, door: Cluster, power: Cluster | None
    ) -> None:
        await self._radio(door.bind(), "bind door lock", native_id)
        await self._radio(
            door.configure_reporting_multiple(REPORTED), "configure reporting", native_id
        )
        if power is not None:
            await self._radio(power.bind(), "bind power", native_id)
            await self._radio(
                power.configure_reporting(Power.battery_percentage_remaining.name, 3600, 43200, 2),
                "configure battery reporting",
                native_id,
            )

    async def _refresh(self, native_id: str) -> None:
        device = self._locks[native_id]
        door = _find_cluster(device, DoorLock.cluster_id)
        try:
            await self._radio(door.read_attributes(STATE_ATTRIBUTES), "refresh state", native_id)
        except (TransientError, DeviceError) as err:
            log.info("Zigbee lock %s: refresh failed: %s", native_id, err.message)

    @staticmethod
    def _snapshot(door: Cluster, power: Cluster | None, *, online: bool) -> StatusUpdate:
        battery = power.get(Power.battery_percentage_remaining.name) if power is not None else None
        return StatusUpdate(
            online=online,
            lock_state=mapping.lock_state(door.get(Attr.lock_state.name)),
            door_open=mapping.door_open(door.get(Attr.door_state.name)),
            battery_level=mapping.battery_level(battery),
        )

    def _set_online(self, native_id: str, *, online: bool) -> None:
        if native_id not in self._locks or self._online.get(native_id) == online:
            return
        self._online[native_id] = online
        self._sink.lock_status(native_id, StatusUpdate(online=online))

    def attribute_updated(self, native_id: str, cluster_id: int, attrid: int, value: Any) -> None:
        update: StatusUpdate | None = None
        if cluster_id == DoorLock.cluster_id and attrid == Attr.lock_state.id:
            update = StatusUpdate(lock_state=mapping.lock_state(value))
        elif cluster_id == DoorLock.cluster_id and attrid == Attr.door_state.id:
            door_open = mapping.door_open(value)
            if door_open is not None:
                update = StatusUpdate(door_open=door_open)
        elif (
            cluster_id == PowerConfiguration.cluster_id
            and attrid == Power.battery_percentage_remaining.id
        ):
            level = mapping.battery_level(value)
            if level is not None:
                update = StatusUpdate(battery_level=level)
        if update is not None:
            self._sink.lock_status(native_id, update)

    def door_lock_command(self, native_id: str, command_id: int, args: Any) -> None:
        if command_id == DoorLock.ClientCommandDefs.operation_event_notification.id:
            event = mapping.operation_event(
                int(args.operation_event_source), int(args.operation_event_code), int(args.user_id)
            )
            if event is not None:
                self._sink.lock_event(native_id, event)
        elif command_id == DoorLock.ClientCommandDefs.programming_event_notification.id:
            user = int(args.user_id)
            self._sink.slot_changed(native_id, None if user == mapping.NO_USER else user + 1)


class _ClusterListener:
    """zigpy's per-cluster listener, bound to one lock."""

    def __init__(self, driver: ZigbeeDriver, native_id: str, cluster: Cluster) -> None:
        self._driver = driver
        self._native_id = native_id
        self._cluster = cluster
        self._cluster_id = cluster.cluster_id

    def attach(self) -> None:
        # Reports and read answers both carry news of the lock.
        for event_type in (AttributeReportedEvent.event_type, AttributeReadEvent.event_type):
            self._cluster.on_event(event_type, self._attribute)
        self._cluster.add_listener(self)

    def _attribute(self, event: AttributeReportedEvent | AttributeReadEvent) -> None:
        self._driver.attribute_updated(
            self._native_id, self._cluster_id, event.attribute_id, event.value
        )

    def cluster_command(self, _tsn: int, command_id: int, args: Any) -> None:
        if self._cluster_id == DoorLock.cluster_id:
            self._driver.door_lock_command(self._native_id, command_id, args)


def _find_cluster(device: zigpy.device.Device, cluster_id: int, *, required: bool = True) -> Any:
    for endpoint_id, endpoint in device.endpoints.items():
        if endpoint_id != 0 and cluster_id in getattr(endpoint, "in_clusters", {}):
            return endpoint.in_clusters[cluster_id]
    if required:
        raise LockOfflineError(f"device {device.ieee} has no cluster {cluster_id:#06x}")
    return None
