"""The Z-Wave driver on zwave-js-server-python: locks are nodes with Door Lock CC.

It connects to a Z-Wave JS server (Z-Wave JS UI or `zwave-server`), or starts the simulated
stack when configured to. When the server goes away, every lock goes offline and the driver
reconnects with backoff; on reconnection it takes the fresh state dump, re-announces the
locks and asks the code-slot manager to re-read their slots, since events may have been
lost meanwhile. The library's errors become lockbridge errors at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from zwave_js_server.client import Client
from zwave_js_server.const import CommandClass, NodeStatus
from zwave_js_server.exceptions import BaseZwaveJSServerError
from zwave_js_server.model.node import Node

from bridge.config import ZWaveConfig
from bridge.driver import DriverSink, LockDriver, SimulatorControl, SlotReading, SlotWrite
from bridge.errors import DeviceError, LockOfflineError, TransientError
from bridge.model import StatusUpdate
from bridge.util import backoff_delay
from drivers.zwave import mapping
from drivers.zwave.codes import CodeSlots, ScheduleCapacity
from drivers.zwave.errors import translate
from drivers.zwave.node import LockNode, node_status, snapshot

log = logging.getLogger(__name__)

# Extended User Code Set entries of up to 14 bytes each: three fit in one frame's payload.
BULK_CODES_PER_FRAME = 3

# The client logs every frame it sends or receives at DEBUG, user codes included (its
# child loggers inherit this level).
if logging.getLogger("zwave_js_server").level in (logging.NOTSET, logging.DEBUG):
    logging.getLogger("zwave_js_server").setLevel(logging.INFO)


class ZWaveDriver(LockDriver):
    protocol = mapping.PROTOCOL

    def __init__(self, sink: DriverSink, config: ZWaveConfig, state_dir: Path) -> None:
        super().__init__(sink)
        self._config = config
        self._state_dir = state_dir
        self._url = config.url
        self._stack: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._client: Client | None = None
        self._locks: dict[str, LockNode] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._runner: asyncio.Task[None] | None = None
        self._adopting: dict[str, asyncio.Task[None]] = {}
        self._connected = asyncio.Event()
        self._connections = 0
        self._state = "stopped"

    # Lifecycle

    async def start(self) -> None:
        self._state = "starting"
        if self._config.simulator.enabled:
            await self._start_simulator()
        self._session = aiohttp.ClientSession()
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="zwave-connection")
        try:
            async with asyncio.timeout(self._config.ready_timeout):
                await self._connected.wait()
                await self._settle()
        except TimeoutError as err:
            if not self._connected.is_set():
                self._state = "failed"
                raise TransientError(
                    f"no Z-Wave JS server at {self._url} within {self._config.ready_timeout:g} s"
                ) from err
            log.warning("Z-Wave: some nodes were not ready in time; they join when they are")
        self._state = "running"

    async def _start_simulator(self) -> None:
        from simulators.zwave.stack import ZWaveStack, simulated_locks  # noqa: PLC0415

        stack = ZWaveStack(simulated_locks(self._config.simulator), self._state_dir / "zwave-sim")
        await asyncio.to_thread(stack.start)
        log.info("simulated Z-Wave JS stack up in %.1f s", stack.started_in or 0.0)
        self._stack = stack
        self._url = stack.url

    async def _settle(self) -> None:
        """Wait until every node is ready (interviewed), dead, asleep, or not a lock.

        A sleeping battery lock finishes its interview when it next wakes up; it joins then.
        """
        while True:
            self._progress.clear()
            client = self._client
            if client is not None and client.driver is not None:
                waiting = [
                    node
                    for node in client.driver.controller.nodes.values()
                    if self._wanted(node)
                    and not node.ready
                    and node.status not in (NodeStatus.DEAD, NodeStatus.ASLEEP)
                ]
                adopting = [task for task in self._adopting.values() if not task.done()]
                if not waiting and not adopting:
                    return
            await self._progress.wait()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self._cancel_tasks()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "server": "simulator" if self._stack is not None else self._config.url,
            "connected": self._client is not None and self._client.connected,
            "locks": len(self._locks),
        }

    def simulator(self) -> SimulatorControl | None:
        if self._stack is None:
            return None
        from simulators.zwave.control import ZWaveSimulatorControl  # noqa: PLC0415

        return ZWaveSimulatorControl(self._stack.control_port)

    def zwave_node(self, native_id: str) -> Node | None:
        """The zwave-js node behind a lock, while the server is connected."""
        lock = self._locks.get(native_id)
        return lock.node if lock is not None else None

    @property
    def stack(self) -> Any:
        """The simulated stack, when the driver started one."""
        return self._stack

    # Connection

    async def _run(self) -> None:
        attempt = 0
        while True:
            assert self._session is not None
            client = Client(self._url, self._session)
            try:
                await client.connect()
                ready = asyncio.Event()
                listener = asyncio.get_running_loop().create_task(
                    client.listen(ready), name="zwave-listen"
                )
                try:
                    waiter = asyncio.ensure_future(ready.wait())
                    await asyncio.wait({listener, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if ready.is_set():
                        attempt = 0
                        self._connected_to(client)
                    await listener
                finally:
                    listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError, BaseZwaveJSServerError):
                        await listener
                    with contextlib.suppress(BaseZwaveJSServerError, aiohttp.ClientError):
                        await client.disconnect()
            except (BaseZwaveJSServerError, aiohttp.ClientError, OSError) as err:
                log.info("Z-Wave JS server %s: %s", self._url, err)
            self._disconnected()
            delay = backoff_delay(attempt, self._config.reconnect_max_delay, base=0.25)
            attempt += 1
            await asyncio.sleep(delay)

    def _connected_to(self, client: Client) -> None:
        self._client = client
        self._connections += 1
        assert client.driver is not None
        controller = client.driver.controller
        log.info("connected to Z-Wave JS server %s (%d nodes)", self._url, len(controller.nodes))
        self._unsubscribe.append(controller.on("node added", self._node_added))
        self._unsubscribe.append(controller.on("node removed", self._node_removed))
        for node in controller.nodes.values():
            self._watch(node)
        self._connected.set()
        self._progress.set()

    def _disconnected(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._client is not None:
            log.warning("lost the Z-Wave JS server %s; reconnecting", self._url)
        self._client = None
        for native_id, lock in self._locks.items():
            lock.node = None
            if lock.announced:
                self._sink.lock_status(native_id, StatusUpdate(online=False))

    def _node_added(self, event: dict[str, Any]) -> None:
        self._watch(event["node"])

    def _node_removed(self, event: dict[str, Any]) -> None:
        node: Node = event["node"]
        for native_id, lock in self._locks.items():
            if lock.node_id == node.node_id and lock.announced:
                lock.node = None
                self._sink.lock_status(native_id, StatusUpdate(online=False))

    def _wanted(self, node: Node) -> bool:
        if node.is_controller_node:
            return False
        return self._config.nodes is None or node.node_id in self._config.nodes

    # Nodes

    def _watch(self, node: Node) -> None:
        if not self._wanted(node):
            return
        for name in ("dead", "alive", "sleep", "wake up"):
            self._unsubscribe.append(node.on(name, self._status_changed))
        self._unsubscribe.append(node.on("ready", self._node_ready))
        self._unsubscribe.append(node.on("value updated", self._value_updated))
        self._unsubscribe.append(node.on("notification", self._notification))
        if node.ready:
            self._adopt(node)

    def _node_ready(self, event: dict[str, Any]) -> None:
        self._adopt(event["node"])
        self._progress.set()

    def _adopt(self, node: Node) -> None:
        if CommandClass.DOOR_LOCK not in {cc.id for cc in node.command_classes}:
            return
        client = self._client
        assert client is not None and client.driver is not None
        native_id = mapping.native_id(client.driver.controller.home_id or 0, node.node_id)
        known = self._locks.get(native_id)
        lock = known or LockNode(native_id, node.node_id)
        lock.node = node
        self._locks[native_id] = lock
        if lock.probed:
            self._announce(lock, node, known=known is not None)
            return
        pending = self._adopting.get(native_id)
        if pending is None or pending.done():
            self._adopting[native_id] = self._spawn(
                self._probe_and_announce(lock, node, known=known is not None),
                f"zwave-adopt-{native_id}",
            )

    async def _probe_and_announce(self, lock: LockNode, node: Node, *, known: bool) -> None:
        try:
            await lock.probe(self._caller(lock.native_id))
        except (TransientError, DeviceError) as err:
            log.warning("Z-Wave lock %s: capabilities unknown: %s", lock.native_id, err.message)
        self._announce(lock, node, known=known)

    def _announce(self, lock: LockNode, node: Node, *, known: bool) -> None:
        native_id = lock.native_id
        capacity = ScheduleCapacity(*lock.schedule_slots())
        if lock.codes is None:
            lock.codes = CodeSlots(self._caller(native_id), capacity, bulk=lock.bulk)
        lock.codes.capacity = capacity
        lock.codes.bulk = lock.bulk
        identity = lock.identity(self._config.max_code_length)
        self._sink.lock_added(identity, snapshot(node))
        lock.announced = True
        log.info("Z-Wave lock %s: node %d, %s", native_id, node.node_id, identity.model)
        if known and lock.connection != self._connections:
            # Back after an outage: whatever was programmed at the lock meanwhile was missed.
            self._sink.slot_changed(native_id, None)
        lock.connection = self._connections

    def _lock_of(self, event: dict[str, Any]) -> tuple[str, LockNode] | None:
        node: Node = event["node"]
        for native_id, lock in self._locks.items():
            # Until a lock is announced, its news is in the snapshot it is announced with.
            if lock.node is node and lock.announced:
                return native_id, lock
        return None

    def _status_changed(self, event: dict[str, Any]) -> None:
        found = self._lock_of(event)
        if found is not None:
            self._sink.lock_status(found[0], StatusUpdate(online=node_status(event["node"])))
        self._progress.set()

    def _value_updated(self, event: dict[str, Any]) -> None:
        found = self._lock_of(event)
        if found is None:
            return
        native_id, lock = found
        value = event["value"]
        if value.command_class == CommandClass.NOTIFICATION:
            meaning = mapping.notification_state(value.property_, value.property_key, value.value)
            self._report(native_id, meaning)
            return
        update = lock.value_update(value)
        if update is not None:
            self._sink.lock_status(native_id, update)

    def _notification(self, event: dict[str, Any]) -> None:
        found = self._lock_of(event)
        notice = event.get("notification")
        if found is None or notice is None or not hasattr(notice, "type_"):
            return
        meaning = mapping.notification(notice.type_, notice.event, notice.parameters)
        self._report(found[0], meaning)

    def _report(self, native_id: str, meaning: mapping.Notification) -> None:
        if meaning == mapping.Notification():
            return
        update = StatusUpdate(
            online=True, lock_state=meaning.lock_state, door_open=meaning.door_open
        )
        self._sink.lock_status(native_id, update)
        if meaning.event is not None:
            self._sink.lock_event(native_id, meaning.event)
        if meaning.codes_changed:
            self._sink.slot_changed(native_id, meaning.slot)
        lock = self._locks.get(native_id)
        if meaning.duplicate_in is not None and lock is not None and lock.codes is not None:
            lock.codes.refused.add(meaning.duplicate_in)

    # Commands

    async def lock(self, native_id: str) -> bool:
        return await self._operate(native_id, mapping.SECURED)

    async def unlock(self, native_id: str) -> bool:
        return await self._operate(native_id, mapping.UNSECURED)

    async def _operate(self, native_id: str, mode: int) -> bool:
        call = self._caller(native_id)
        what = "lock" if mode == mapping.SECURED else "unlock"
        await call(CommandClass.DOOR_LOCK, "set", mode, what=what)
        # Confirm with the lock's own report rather than trusting the set.
        report = await call(CommandClass.DOOR_LOCK, "get", what=f"{what}: read back")
        current = report.get("currentMode") if isinstance(report, dict) else None
        state = mapping.lock_state(current)
        self._sink.lock_status(native_id, StatusUpdate(online=True, lock_state=state))
        return state == mapping.lock_state(mode)

    async def write_slot(self, native_id: str, write: SlotWrite) -> None:
        await self._codes(native_id).write(write)

    async def write_slots(self, native_id: str, writes: Sequence[SlotWrite]) -> None:
        await self._codes(native_id).write_many(writes)

    def bulk_write_limit(self, native_id: str) -> int:
        lock = self._locks.get(native_id)
        if lock is None or lock.codes is None or not lock.codes.bulk:
            return 1
        return BULK_CODES_PER_FRAME

    async def read_slot(self, native_id: str, slot: int) -> SlotReading:
        codes = self._codes(native_id)
        was_masked = codes.masked
        reading = await codes.read(slot)
        if codes.masked and not was_masked:
            # The lock hides its codes: announce it as write-only.
            lock = self._locks[native_id]
            if lock.node is not None:
                self._sink.lock_added(
                    lock.identity(self._config.max_code_length), snapshot(lock.node)
                )
        return reading

    async def clear_slot(self, native_id: str, slot: int) -> None:
        await self._codes(native_id).clear(slot)

    def _codes(self, native_id: str) -> CodeSlots:
        lock = self._locks.get(native_id)
        if lock is None or lock.codes is None:
            raise LockOfflineError(f"Z-Wave lock {native_id} is unknown", lock_id=native_id)
        return lock.codes

    def _caller(self, native_id: str) -> Callable[..., Awaitable[Any]]:
        async def call(command_class: CommandClass, method: str, *args: Any, what: str) -> Any:
            return await self._invoke(native_id, command_class, method, args, what)

        return call

    async def _invoke(
        self,
        native_id: str,
        command_class: CommandClass,
        method: str,
        args: tuple[Any, ...],
        what: str,
    ) -> Any:
        """One device round trip through the server, bounded in time, errors translated."""
        lock = self._locks.get(native_id)
        node = lock.node if lock is not None else None
        if node is None or self._client is None or not self._client.connected:
            raise LockOfflineError(
                f"{what}: Z-Wave lock {native_id} is unreachable (no server connection)",
                lock_id=native_id,
            )
        self.count_radio_operation(native_id)
        timeout = self._config.command_timeout
        try:
            async with asyncio.timeout(timeout):
                result = await node.async_invoke_cc_api(
                    command_class, method, *args, wait_for_result=True
                )
        except asyncio.CancelledError as err:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # The client cancels what is in flight when the server connection drops.
            raise LockOfflineError(
                f"{what}: the lock is unreachable (Z-Wave JS server connection lost)",
                lock_id=native_id,
            ) from err
        except (TimeoutError, BaseZwaveJSServerError) as err:
            error = translate(err, what, native_id, timeout)
            if isinstance(error, LockOfflineError) and lock is not None and lock.announced:
                self._sink.lock_status(native_id, StatusUpdate(online=False))
            raise error from err
        return result
