"""The MQTT side of the bridge (SPEC §5) on aiomqtt.

One connection at a time; on every (re)connect the bridge re-subscribes and
re-publishes every retained topic, so a broker restart loses nothing.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.api import Api, parse_set_payload
from bridge.config import HomeAssistantConfig, MqttConfig
from bridge.errors import LockbridgeError
from bridge.homeassistant import discovery_payload, discovery_topic
from bridge.model import Event
from bridge.registry import LockRegistry, Outbox
from bridge.util import backoff_delay

log = logging.getLogger(__name__)

ONLINE = json.dumps({"state": "online"})
OFFLINE = json.dumps({"state": "offline"})

SimulatorHandler = Callable[[str, bytes], Awaitable[dict[str, Any]]]


def quiet_stale_socket_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Keep paho's late add_writer on an already closed socket out of the error log.

    When a broker drops the connection, paho may still ask the loop to watch the old
    socket; asyncio reports that as an unhandled EBADF. The reconnect logic already
    handles the lost connection, so it is only worth a debug line.
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno == errno.EBADF:
            log.debug("ignored a socket event on a closed MQTT connection")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class MqttLink:
    def __init__(
        self,
        config: MqttConfig,
        registry: LockRegistry,
        api: Api,
        *,
        homeassistant: HomeAssistantConfig,
        simulator: SimulatorHandler | None = None,
    ) -> None:
        self._config = config
        self._homeassistant = homeassistant
        self._announced: set[str] = set()
        self._registry = registry
        self._api = api
        self._simulator = simulator
        self._base = config.base_topic
        self._pending = Outbox()
        self._connected = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = asyncio.Event()
        self._protocol = (
            aiomqtt.ProtocolVersion.V311
            if config.protocol == "3.1.1"
            else aiomqtt.ProtocolVersion.V5
        )
        # "auto" starts with MQTT 5 and falls back once, when a broker refuses it.
        self._may_fall_back = config.protocol == "auto"
        self._published_lock_count = -1
        self._ready = False
        self._state_published = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def stop(self) -> None:
        self._stopping.set()

    def set_ready(self) -> None:
        """The drivers are up: from now on (and after every reconnect) the bridge is online."""
        self._ready = True
        self._pending.wakeup.set()

    def publish_later(self, lock_ids: set[str], events: list[Event]) -> None:
        """Queue lock states and events; they go out as soon as the broker is reachable."""
        self._pending.dirty_locks |= lock_ids
        self._pending.events.extend(events)
        self._pending.wakeup.set()
        self._idle.clear()

    async def flushed(self) -> None:
        """Return once everything queued is published, or at once while disconnected."""
        if self.connected:
            await self._idle.wait()

    async def run(self) -> None:
        """Keep a connection until `stop`; publish `offline` before leaving."""
        attempt = 0
        while not self._stopping.is_set():
            session_started = False
            try:
                async with self._client() as client:
                    attempt = 0
                    session_started = True
                    self._may_fall_back = False
                    await self._session(client)
                    await client.publish(self._topic("bridge/state"), OFFLINE, qos=1, retain=True)
                return
            except aiomqtt.MqttError as err:
                self._connected.clear()
                if self._stopping.is_set():
                    return
                if (
                    self._may_fall_back
                    and not session_started
                    and isinstance(err, aiomqtt.MqttCodeError)
                ):
                    self._may_fall_back = False
                    self._protocol = aiomqtt.ProtocolVersion.V311
                    log.info("MQTT 5 refused (%s); trying MQTT 3.1.1", err)
                    continue
                delay = backoff_delay(attempt, self._config.reconnect_max_delay)
                attempt += 1
                log.warning(
                    "MQTT connection to %s:%d lost or refused: %s; retrying in %.1f s",
                    self._config.host,
                    self._config.port,
                    err,
                    delay,
                )
                try:
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                except TimeoutError:
                    pass

    def _client(self) -> aiomqtt.Client:
        config = self._config
        protocol = self._protocol
        tls_context = None
        if config.tls.enabled:
            tls_context = ssl.create_default_context(
                cafile=str(config.tls.ca_file) if config.tls.ca_file else None
            )
            if config.tls.cert_file:
                tls_context.load_cert_chain(
                    str(config.tls.cert_file),
                    str(config.tls.key_file) if config.tls.key_file else None,
                )
            if config.tls.insecure:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
        return aiomqtt.Client(
            config.host,
            config.port,
            identifier=config.client_id,
            username=config.username,
            password=config.resolved_password(),
            protocol=protocol,
            clean_session=True if protocol != aiomqtt.ProtocolVersion.V5 else None,
            will=aiomqtt.Will(self._topic("bridge/state"), OFFLINE, qos=1, retain=True),
            keepalive=config.keepalive,
            timeout=10,
            tls_context=tls_context,
            # Answers are small and a person waits at the door: send them now, not after
            # Nagle's algorithm has waited for the broker's delayed ACK (about 40 ms).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    def _topic(self, suffix: str) -> str:
        return f"{self._base}/{suffix}"

    async def _session(self, client: aiomqtt.Client) -> None:
        subscriptions = [
            self._topic("bridge/request/#"),
            self._topic("locks/+/set"),
        ]
        if self._simulator is not None:
            subscriptions.append(self._topic("simulator/request/#"))
        if self._homeassistant.enabled:
            subscriptions.append(self._ha_status_topic)
        for topic in subscriptions:
            await client.subscribe(topic, qos=1)
        self._published_lock_count = -1
        self._state_published = False
        self._republish_all()
        self._connected.set()
        log.info("connected to MQTT broker %s:%d", self._config.host, self._config.port)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen(client, group), name="mqtt-listen")
                group.create_task(self._publish_loop(client), name="mqtt-publish")
                stop = group.create_task(self._stopping.wait(), name="mqtt-stop")
                await stop
                raise _SessionOver
        except* _SessionOver:
            pass
        except* aiomqtt.MqttError as group:
            raise group.exceptions[0] from None
        finally:
            self._connected.clear()

    @property
    def _ha_status_topic(self) -> str:
        return f"{self._homeassistant.discovery_prefix}/status"

    def _republish_all(self) -> None:
        self._announced.clear()
        self._pending.dirty_locks |= {lock.lock_id for lock in self._registry.locks()}
        self._pending.wakeup.set()

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self._pending.wakeup.wait()
            dirty, events = self._pending.take()
            try:
                await self._publish_batch(client, dirty, events)
            except aiomqtt.MqttError:
                # Put them back: they are published after the reconnect.
                self._pending.dirty_locks |= dirty
                self._pending.events[:0] = events
                raise
            if not self._pending.wakeup.is_set():
                self._idle.set()

    async def _publish_batch(
        self, client: aiomqtt.Client, dirty: set[str], events: list[Event]
    ) -> None:
        if self._ready and not self._state_published:
            await client.publish(self._topic("bridge/state"), ONLINE, qos=1, retain=True)
            self._state_published = True
        lock_count = len(self._registry.locks())
        if lock_count != self._published_lock_count:
            await client.publish(
                self._topic("bridge/info"), dumps(self._api.info()), qos=1, retain=True
            )
            self._published_lock_count = lock_count
        for lock_id in sorted(dirty):
            lock = self._registry.get(lock_id)
            if self._homeassistant.enabled and lock_id not in self._announced:
                topic = discovery_topic(self._homeassistant.discovery_prefix, self._base, lock)
                await client.publish(
                    topic, dumps(discovery_payload(self._base, lock)), qos=1, retain=True
                )
                self._announced.add(lock_id)
            availability = ONLINE if lock.status.online else OFFLINE
            await client.publish(
                self._topic(f"locks/{lock_id}"),
                dumps(self._registry.state_json(lock)),
                qos=1,
                retain=True,
            )
            await client.publish(
                self._topic(f"locks/{lock_id}/availability"), availability, qos=1, retain=True
            )
        while events:
            event = events[0]
            await client.publish(
                self._topic(f"locks/{event.lock_id}/event"), dumps(event.to_json()), qos=1
            )
            events.pop(0)

    async def _listen(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = (
                message.payload
                if isinstance(message.payload, bytes)
                else str(message.payload or "").encode()
            )
            if topic == self._ha_status_topic:
                # Home Assistant restarted and forgot its entities: announce them again.
                if payload.strip() == b"online":
                    self._republish_all()
                continue
            if message.retain:
                # A retained command would fire again on every reconnect: never act on one.
                log.warning("ignored retained message on command topic %s", topic)
                continue
            if topic.startswith(self._topic("bridge/request/")):
                command = topic.removeprefix(self._topic("bridge/request/"))
                group.create_task(self._answer(client, message, command), name=f"request-{command}")
            elif topic.startswith(self._topic("simulator/request/")) and self._simulator:
                action = topic.removeprefix(self._topic("simulator/request/"))
                group.create_task(
                    self._answer_simulator(client, action, payload), name=f"sim-{action}"
                )
            elif topic.endswith("/set"):
                lock_id = topic.removeprefix(self._topic("locks/")).removesuffix("/set")
                group.create_task(self._set(lock_id, payload), name=f"set-{lock_id}")

    async def _answer(self, client: aiomqtt.Client, message: aiomqtt.Message, command: str) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        response = await self._api.handle(command, payload)
        topic = self._topic(f"bridge/response/{command}")
        properties = None
        request_props = message.properties
        response_topic = getattr(request_props, "ResponseTopic", None) if request_props else None
        if response_topic:
            topic = response_topic
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            correlation = getattr(request_props, "CorrelationData", None)
            if correlation is not None:
                properties.CorrelationData = correlation
        await client.publish(topic, dumps(response), qos=1, properties=properties)

    async def _answer_simulator(self, client: aiomqtt.Client, action: str, payload: bytes) -> None:
        assert self._simulator is not None
        response = await self._simulator(action, payload)
        await client.publish(self._topic(f"simulator/response/{action}"), dumps(response), qos=1)

    async def _set(self, lock_id: str, payload: bytes) -> None:
        try:
            request = parse_set_payload(payload)
            await self._api.actuate(lock_id, request.action)
        except LockbridgeError as err:
            log.warning("set on lock %s refused: %s (%s)", lock_id, err.message, err.code)


class _SessionOver(Exception):
    """Ends a session's task group when the bridge stops."""
