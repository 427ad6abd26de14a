"""A small embedded MQTT 3.1.1 broker, so ``lockbridge demo`` works without Mosquitto.

Only what the bridge and typical clients need: clean sessions, QoS 0/1 (QoS 2 is
accepted but delivered at most at QoS 1), retained messages, wills and wildcards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = range(1, 8)
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)

CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_BAD_IDENTIFIER = 2

# Packets whose fixed-header flags are mandated by the spec; anything else is malformed.
_REQUIRED_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}


class MalformedPacketError(Exception):
    """The peer violated the protocol; only its own connection is closed."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def encode_remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _packet(first_byte: int, body: bytes = b"") -> bytes:
    return bytes([first_byte]) + encode_remaining_length(len(body)) + body


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _publish_packet(msg: Message, qos: int, packet_id: int) -> bytes:
    body = _utf8(msg.topic) + (struct.pack("!H", packet_id) if qos else b"") + msg.payload
    return _packet((PUBLISH << 4) | (qos << 1) | int(msg.retain), body)


class _Body:
    """Bounds-checked cursor over a packet body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPacketError("packet truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            value = self.binary().decode()
        except UnicodeDecodeError as exc:
            raise MalformedPacketError("invalid UTF-8 string") from exc
        if "\x00" in value:
            raise MalformedPacketError("NUL in UTF-8 string")
        return value

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)


def valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return bool(topic_filter)


def topic_matches(topic_filter: str, topic: str) -> bool:
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    # MQTT-4.7.2-1: "$SYS"-style topics are hidden from catch-all subscriptions.
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(eq=False)
class _Session:
    client_id: str
    writer: asyncio.StreamWriter
    queue: asyncio.Queue[bytes]
    will: Message | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    # Inbound QoS 2 packet ids awaiting PUBREL, so a re-sent PUBLISH is not redelivered.
    qos2_pending: set[int] = field(default_factory=set)
    next_packet_id: int = 0
    writer_task: asyncio.Task[None] | None = None

    def packet_id(self) -> int:
        self.next_packet_id = self.next_packet_id % 0xFFFF + 1
        return self.next_packet_id

    def close(self) -> None:
        if self.writer_task is not None:
            self.writer_task.cancel()
        self.writer.transport.abort()


class EmbeddedBroker:
    """In-process MQTT 3.1.1 broker bound to loopback by default."""

    def __init__(
        self,
        *,
        max_packet_size: int = 1024 * 1024,
        max_queued_packets: int = 1000,
        connect_timeout: float = 10.0,
    ) -> None:
        self._max_packet_size = max_packet_size
        self._max_queued = max_queued_packets
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._port = 0
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, Message] = {}
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def connected_clients(self) -> frozenset[str]:
        return frozenset(self._sessions)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        if self._server is not None:
            raise RuntimeError("broker already started")
        self._stopping = False
        self._server = await asyncio.start_server(self._accept, host, port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on %s:%d", host, self._port)
        return self._port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.close()
        for session in list(self._sessions.values()):
            session.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._conn_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self._sessions.clear()
        self._retained.clear()
        log.info("embedded MQTT broker stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine) so that we own and can cancel the task;
        # asyncio.start_server would otherwise create an untracked one.
        if self._stopping:
            writer.transport.abort()
            return
        task = asyncio.create_task(self._handle(reader, writer))
        self._conn_tasks.add(task)
        self._writers.add(writer)

        def done(t: asyncio.Task[None]) -> None:
            self._conn_tasks.discard(t)
            self._writers.discard(writer)

        task.add_done_callback(done)

    async def _read_packet(self, reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        first = (await reader.readexactly(1))[0]
        length = 0
        for shift in range(0, 28, 7):
            digit = (await reader.readexactly(1))[0]
            length |= (digit & 0x7F) << shift
            if not digit & 0x80:
                break
        else:
            raise MalformedPacketError("remaining length exceeds 4 bytes")
        if length > self._max_packet_size:
            raise MalformedPacketError(f"packet of {length} bytes exceeds limit")
        body = await reader.readexactly(length)
        ptype, flags = first >> 4, first & 0x0F
        if ptype in _REQUIRED_FLAGS and flags != _REQUIRED_FLAGS[ptype]:
            raise MalformedPacketError(f"bad flags {flags:#x} for packet type {ptype}")
        if ptype not in _REQUIRED_FLAGS and ptype != PUBLISH and flags:
            raise MalformedPacketError(f"bad flags {flags:#x} for packet type {ptype}")
        return ptype, flags, body

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        session: _Session | None = None
        clean_exit = False
        try:
            async with asyncio.timeout(self._connect_timeout):
                ptype, _, body = await self._read_packet(reader)
            if ptype != CONNECT:
                raise MalformedPacketError("first packet is not CONNECT")
            connect = await self._connect(_Body(body), writer)
            if connect is None:
                return
            session, keepalive = connect
            clean_exit = await self._serve(session, reader, keepalive)
        except MalformedPacketError as exc:
            log.warning("closing MQTT connection from %s: %s", peer, exc)
        except TimeoutError:
            log.info("MQTT connection from %s timed out", peer)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("MQTT connection from %s lost", peer)
        except Exception:
            # A bug handling one client must not take the broker down with it.
            log.exception("error serving MQTT connection from %s", peer)
        finally:
            if not writer.is_closing():
                writer.transport.abort()
            if session is not None:
                session.close()
                if session.writer_task is not None:
                    await asyncio.gather(session.writer_task, return_exceptions=True)
                if self._sessions.get(session.client_id) is session:
                    del self._sessions[session.client_id]
                    log.info("MQTT client %r disconnected", session.client_id)
                will, session.will = session.will, None
                if will is not None and not clean_exit and not self._stopping:
                    self._publish(will)

    async def _connect(
        self, body: _Body, writer: asyncio.StreamWriter
    ) -> tuple[_Session, int] | None:
        protocol, level = body.text(), body.u8()
        if protocol != "MQTT" or level != 4:
            # Answer in 3.1.1 form so MQTT 5 clients see a clean refusal and can fall back.
            # Expected: clients try MQTT 5 first and fall back to 3.1.1, which this broker speaks.
            await self._refuse(
                writer, CONNACK_BAD_PROTOCOL, f"{protocol!r} level {level}", level=logging.INFO
            )
            return None
        flags, keepalive = body.u8(), body.u16()
        client_id = body.text()
        will_qos = (flags >> 3) & 3
        if flags & 0x01 or will_qos == 3 or (not flags & 0x04 and flags & 0x38):
            raise MalformedPacketError(f"bad CONNECT flags {flags:#x}")
        will = None
        if flags & 0x04:
            topic = body.text()
            if not topic or "+" in topic or "#" in topic:
                raise MalformedPacketError(f"invalid will topic {topic!r}")
            will = Message(topic, body.binary(), will_qos, bool(flags & 0x20))
        if flags & 0x80:
            body.text()  # username: authentication is out of scope for a loopback demo
        if flags & 0x40:
            body.binary()
        if not client_id:
            if not flags & 0x02:
                await self._refuse(writer, CONNACK_BAD_IDENTIFIER, "empty id without clean")
                return None
            client_id = f"auto-{secrets.token_hex(8)}"
        old = self._sessions.pop(client_id, None)
        if old is not None:
            log.info("MQTT client %r taken over by a new connection", client_id)
            old.close()
            # Publish the will now rather than from the old task, so it cannot land
            # after whatever the new connection publishes.
            old_will, old.will = old.will, None
            if old_will is not None:
                self._publish(old_will)
        session = _Session(client_id, writer, asyncio.Queue(self._max_queued), will)
        session.writer_task = asyncio.create_task(self._write_loop(session))
        self._sessions[client_id] = session
        # Always "session present = 0": sessions are never persisted.
        self._send(session, _packet(CONNACK << 4, bytes([0, CONNACK_ACCEPTED])))
        log.info("MQTT client %r connected (keepalive %ds)", client_id, keepalive)
        return session, keepalive

    async def _refuse(
        self, writer: asyncio.StreamWriter, code: int, why: str, *, level: int = logging.WARNING
    ) -> None:
        log.log(level, "refusing MQTT connection (code %d): %s", code, why)
        writer.write(_packet(CONNACK << 4, bytes([0, code])))
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(5):
                await writer.drain()
        writer.close()

    async def _serve(self, session: _Session, reader: asyncio.StreamReader, keepalive: int) -> bool:
        """Process packets until the client leaves; True if it sent DISCONNECT."""
        timeout = keepalive * 1.5 if keepalive else None
        while True:
            async with asyncio.timeout(timeout):
                ptype, flags, data = await self._read_packet(reader)
            body = _Body(data)
            if ptype == PUBLISH:
                self._on_publish(session, flags, body)
            elif ptype == PUBREL:
                packet_id = body.u16()
                session.qos2_pending.discard(packet_id)
                self._send(session, _packet(PUBCOMP << 4, struct.pack("!H", packet_id)))
            elif ptype == SUBSCRIBE:
                self._on_subscribe(session, body)
            elif ptype == UNSUBSCRIBE:
                packet_id = body.u16()
                while not body.exhausted:
                    session.subscriptions.pop(body.text(), None)
                self._send(session, _packet(UNSUBACK << 4, struct.pack("!H", packet_id)))
            elif ptype == PINGREQ:
                self._send(session, _packet(PINGRESP << 4))
            elif ptype == DISCONNECT:
                return True
            elif ptype in (PUBACK, PUBREC, PUBCOMP):
                # Outbound delivery is fire-and-forget QoS 1 without retries (no
                # persistent sessions), so acknowledgements need no bookkeeping.
                continue
            else:
                raise MalformedPacketError(f"unexpected packet type {ptype}")

    def _on_publish(self, session: _Session, flags: int, body: _Body) -> None:
        qos, retain = (flags >> 1) & 3, bool(flags & 1)
        if qos == 3:
            raise MalformedPacketError("PUBLISH with QoS 3")
        topic = body.text()
        if not topic or "+" in topic or "#" in topic:
            raise MalformedPacketError(f"invalid PUBLISH topic {topic!r}")
        packet_id = body.u16() if qos else 0
        msg = Message(topic, body.rest(), qos, retain)
        if qos == 2:
            duplicate = packet_id in session.qos2_pending
            session.qos2_pending.add(packet_id)
            self._send(session, _packet(PUBREC << 4, struct.pack("!H", packet_id)))
            if duplicate:
                return
        self._publish(msg)
        if qos == 1:
            self._send(session, _packet(PUBACK << 4, struct.pack("!H", packet_id)))

    def _on_subscribe(self, session: _Session, body: _Body) -> None:
        packet_id = body.u16()
        granted = bytearray()
        accepted: list[tuple[str, int]] = []
        while not body.exhausted:
            topic_filter, requested = body.text(), body.u8()
            if requested > 2:
                raise MalformedPacketError(f"SUBSCRIBE with QoS byte {requested:#x}")
            if not valid_filter(topic_filter):
                granted.append(0x80)
                continue
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            accepted.append((topic_filter, qos))
            granted.append(qos)
        if not granted:
            raise MalformedPacketError("SUBSCRIBE without topic filters")
        self._send(session, _packet(SUBACK << 4, struct.pack("!H", packet_id) + granted))
        for topic_filter, qos in accepted:
            for msg in list(self._retained.values()):
                if topic_matches(topic_filter, msg.topic):
                    self._deliver(session, msg, min(qos, msg.qos))

    def _publish(self, msg: Message) -> None:
        if msg.retain:
            if msg.payload:
                self._retained[msg.topic] = msg
            else:
                self._retained.pop(msg.topic, None)
        # Live subscribers get retain=0 (MQTT-3.3.1-9); only SUBSCRIBE replays keep it.
        live = Message(msg.topic, msg.payload, msg.qos, retain=False)
        for session in list(self._sessions.values()):
            qos = max(
                (q for f, q in session.subscriptions.items() if topic_matches(f, msg.topic)),
                default=None,
            )
            if qos is not None:
                self._deliver(session, live, min(qos, msg.qos))

    def _deliver(self, session: _Session, msg: Message, qos: int) -> None:
        qos = min(qos, 1)
        self._send(session, _publish_packet(msg, qos, session.packet_id() if qos else 0))

    def _send(self, session: _Session, data: bytes) -> None:
        try:
            session.queue.put_nowait(data)
        except asyncio.QueueFull:
            # Dropping the connection bounds memory; the client will reconnect and
            # resubscribe, which beats stalling every publisher on one slow reader.
            log.warning("MQTT client %r is not keeping up; disconnecting", session.client_id)
            session.close()

    async def _write_loop(self, session: _Session) -> None:
        try:
            while True:
                session.writer.write(await session.queue.get())
                await session.writer.drain()
        except ConnectionError:
            session.close()
