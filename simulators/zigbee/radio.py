"""A virtual zigpy radio: a `ControllerApplication` whose network is simulated door locks.

It plugs in where zigpy-znp or bellows would: zigpy sends real frames through
`send_packet`, the simulated nodes decode and answer them, and their answers come back
through `packet_received`, asynchronously and after the configured latency, as a
radio's would. Lock state is kept in a JSON file so locks keep their state (and
codes) when the bridge restarts, like real locks do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import zigpy.application
import zigpy.config
import zigpy.exceptions
import zigpy.state
import zigpy.types as t
import zigpy.zdo.types as zdo_t

from simulators.flash import Flash
from simulators.zigbee.doorlock import LockData, LockSettings, SimDoorLock
from simulators.zigbee.node import COORDINATOR_NWK, SimEndpoint, SimNode

log = logging.getLogger(__name__)

CONF_SIMULATOR = "simulator"
COORDINATOR_IEEE = t.EUI64.convert("00:12:4b:00:1c:a1:b2:00")


class SimCoordinator(SimNode):
    logical_type = zdo_t.LogicalType.Coordinator


def lock_ieee(seed: int, index: int) -> t.EUI64:
    return t.EUI64.convert(f"00:12:4b:00:{seed % 256:02x}:{index // 256:02x}:{index % 256:02x}:01")


class SimulatedRadio(zigpy.application.ControllerApplication):
    """zigpy's radio interface, implemented by a simulated network of door locks.

    Its part of the zigpy config, under the ``simulator`` key: ``locks``, ``latency_ms``,
    ``slots``, ``min_pin_length``, ``max_pin_length``, ``masked_codes``, ``seed``,
    ``state_file``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        options: dict[str, Any] = dict(config.get(CONF_SIMULATOR, {}))
        self._options = options
        self.latency = float(options.get("latency_ms", 20.0)) / 1000
        self.clock: Callable[[], datetime] = datetime.now
        self.locks: dict[t.EUI64, SimDoorLock] = {}
        self._nodes: dict[int, SimNode] = {}
        self._connected = False
        self._permit_until = 0.0
        self._deliveries: set[asyncio.Task[None]] = set()
        self._lost: dict[t.EUI64, int] = {}
        path = options.get("state_file")
        self._flash = Flash(
            Path(path) if path else None,
            lambda: {str(ieee): lock.data.to_json() for ieee, lock in self.locks.items()},
            "zigbee-sim",
        )

    # Radio lifecycle

    async def connect(self) -> None:
        saved = await self._flash.read()
        settings = LockSettings(
            slots=int(self._options.get("slots", 30)),
            min_pin_length=int(self._options.get("min_pin_length", 4)),
            max_pin_length=int(self._options.get("max_pin_length", 8)),
            masked_codes=bool(self._options.get("masked_codes", False)),
            week_day_schedules=int(self._options.get("week_day_schedules", 7)),
            year_day_schedules=int(self._options.get("year_day_schedules", 2)),
        )
        seed = int(self._options.get("seed") or 0)
        rng = random.Random(seed)
        coordinator = SimCoordinator(COORDINATOR_IEEE, COORDINATOR_NWK, [_coordinator_endpoint()])
        self._nodes = {COORDINATOR_NWK: coordinator}
        for index in range(int(self._options.get("locks", 1))):
            ieee = lock_ieee(seed, index)
            nwk = 0x1000 + index
            stored = saved.get(str(ieee))
            data = (
                LockData.from_json(stored)
                if stored
                else LockData(lock_state=rng.choice((1, 2)), battery=rng.randint(60, 100))
            )
            lock = SimDoorLock(
                ieee,
                nwk,
                settings,
                data,
                clock=self._now,
                send=self._from_node,
                changed=self._flash.changed,
            )
            self.locks[ieee] = lock
            self._nodes[nwk] = lock
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False
        for task in list(self._deliveries):
            task.cancel()
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self.locks:
            await self._flash.close()

    async def load_network_info(self, *, load_devices: bool = False) -> None:
        self.state.node_info = zigpy.state.NodeInfo(
            nwk=t.NWK(COORDINATOR_NWK),
            ieee=COORDINATOR_IEEE,
            logical_type=zdo_t.LogicalType.Coordinator,
            model="Simulated radio",
            manufacturer="lockbridge",
            version="1",
        )
        self.state.network_info = zigpy.state.NetworkInfo(
            extended_pan_id=t.ExtendedPanId(t.EUI64.convert("dd:dd:dd:dd:dd:dd:dd:dd")),
            pan_id=t.PanId(0x1A62),
            channel=t.uint8_t(15),
            channel_mask=t.Channels.CHANNEL_15,
            security_level=t.uint8_t(5),
            network_key=zigpy.state.Key(
                key=t.KeyData(os.urandom(16)), seq=t.uint8_t(0), tx_counter=t.uint32_t(0)
            ),
            source="lockbridge-simulator",
        )

    async def write_network_info(
        self, *, network_info: zigpy.state.NetworkInfo, node_info: zigpy.state.NodeInfo
    ) -> None:
        self.state.network_info = network_info
        self.state.node_info = node_info

    async def reset_network_info(self) -> None:
        """The simulated network cannot be left."""

    async def start_network(self) -> None:
        await self.load_network_info()
        coordinator = self.add_device(ieee=COORDINATOR_IEEE, nwk=t.NWK(COORDINATOR_NWK))
        task = coordinator.schedule_initialize()
        if task is not None:
            await task
        # Locks paired before this start join (or announce themselves) once the network is up.
        for lock in self.locks.values():
            if lock.data.online:
                self._deliver(lock.announce())

    async def force_remove(self, dev: Any) -> None:
        """Nothing to tell: a simulated lock forgets nothing when removed."""

    async def add_endpoint(self, descriptor: zdo_t.SimpleDescriptor) -> None:
        """The simulated coordinator listens on every endpoint."""

    async def permit_ncp(self, time_s: int = 60) -> None:
        self._permit_until = asyncio.get_running_loop().time() + time_s

    async def permit_with_link_key(
        self, node: t.EUI64, link_key: t.KeyData, time_s: int = 60
    ) -> None:
        await self.permit_ncp(time_s)

    # Frames

    async def send_packet(self, packet: t.ZigbeePacket) -> None:
        if not self._connected:
            raise zigpy.exceptions.DeliveryError("simulated radio is not connected")
        if packet.dst is None or packet.dst.addr_mode == t.AddrMode.Broadcast:
            return
        node: SimNode | None
        if packet.dst.addr_mode == t.AddrMode.IEEE:
            node = self.locks.get(cast(t.EUI64, packet.dst.address))
        else:
            node = self._nodes.get(int(cast(t.NWK, packet.dst.address)))
        if isinstance(node, SimDoorLock):
            node.frames_received += 1
            if self._lost.get(node.ieee, 0) > 0:
                # Lost on the air: the radio reports it sent, no answer ever comes.
                self._lost[node.ieee] -= 1
                return
            if not node.data.online:
                raise zigpy.exceptions.DeliveryError(
                    f"no MAC acknowledgement from {node.ieee}", status=t.MACStatus.MAC_NO_ACK
                )
        if node is None:
            raise zigpy.exceptions.DeliveryError(
                f"no route to {packet.dst.address}", status=t.MACStatus.MAC_NO_ACK
            )
        # The node answers after send_packet returns, as a real radio's callbacks would.
        self._spawn(self._handle_later(node, packet))

    async def _handle_later(self, node: SimNode, packet: t.ZigbeePacket) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        answers: list[t.ZigbeePacket] = []
        self._flash.dirty = False
        node.receive(packet, answers.append)
        if self._flash.dirty:
            # What the lock acknowledges survives a crash of the whole process.
            await self._flash.write()
        for answer in answers:
            self._from_node(answer)

    def _from_node(self, packet: t.ZigbeePacket) -> None:
        source = packet.src.address if packet.src is not None else None
        node = self._nodes.get(int(cast(t.NWK, source)))
        if isinstance(node, SimDoorLock) and not node.data.online:
            return
        self._deliver(packet)

    def _deliver(self, packet: t.ZigbeePacket) -> None:
        self._spawn(self._deliver_later(packet))

    async def _deliver_later(self, packet: t.ZigbeePacket) -> None:
        await asyncio.sleep(self.latency / 2)
        if self._connected:
            self.packet_received(packet)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            work, name="zigbee-sim-frame"
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    def _now(self) -> datetime:
        return self.clock()

    def expected_locks(self) -> list[t.EUI64]:
        """Locks on the air now: a driver may wait for their interview when it starts."""
        return [ieee for ieee, lock in self.locks.items() if lock.data.online]

    # Control side (a person at the door)

    def lock_by_ieee(self, ieee: t.EUI64) -> SimDoorLock:
        try:
            return self.locks[ieee]
        except KeyError:
            raise KeyError(f"no simulated lock {ieee}") from None

    def lose_frames(self, ieee: t.EUI64, count: int) -> None:
        """The next `count` frames to this lock vanish on the air."""
        self._lost[self.lock_by_ieee(ieee).ieee] = count

    def set_online(self, ieee: t.EUI64, *, online: bool) -> None:
        lock = self.lock_by_ieee(ieee)
        was_online = lock.data.online
        lock.data.online = online
        self._flash.changed()
        if online and not was_online:
            self._deliver(lock.announce())


def _coordinator_endpoint() -> SimEndpoint:
    from zigpy.zcl.clusters.general import Basic  # noqa: PLC0415

    from simulators.zigbee.node import SimCluster  # noqa: PLC0415

    basic = SimCluster(
        Basic,
        {
            Basic.AttributeDefs.manufacturer.id: "lockbridge",
            Basic.AttributeDefs.model.id: "Simulated radio",
        },
    )
    return SimEndpoint(1, 0x0005, servers={Basic.cluster_id: basic}, clients={})


def zigpy_config_for_simulator(options: dict[str, Any]) -> dict[str, Any]:
    """The `simulator` part of a zigpy config dict."""
    return {
        CONF_SIMULATOR: options,
        zigpy.config.CONF_DEVICE: {zigpy.config.CONF_DEVICE_PATH: "simulator"},
    }
