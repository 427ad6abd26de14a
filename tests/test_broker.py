from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from bridge.broker import EmbeddedBroker, encode_remaining_length, topic_matches, valid_filter

V311 = aiomqtt.ProtocolVersion.V311


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as b:
        yield b


def client(broker: EmbeddedBroker, identifier: str | None = None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, identifier=identifier, protocol=V311)


async def recv(c: aiomqtt.Client, n: int = 1, timeout: float = 3) -> list[aiomqtt.Message]:
    out: list[aiomqtt.Message] = []
    async with asyncio.timeout(timeout):
        async for msg in c.messages:
            out.append(msg)
            if len(out) == n:
                break
    return out


async def no_message(c: aiomqtt.Client, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await recv(c, timeout=wait)


def _s(text: str) -> bytes:
    return struct.pack("!H", len(text)) + text.encode()


def connect_packet(
    client_id: str,
    *,
    keepalive: int = 60,
    will: tuple[str, bytes, int, bool] | None = None,
    level: int = 4,
) -> bytes:
    flags = 0x02
    payload = _s(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _s(topic) + struct.pack("!H", len(message)) + message
    props = b"\x00" if level == 5 else b""
    body = _s("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive) + props + payload
    return b"\x10" + encode_remaining_length(len(body)) + body


async def raw_connect(
    broker: EmbeddedBroker, client_id: str, **kwargs: object
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    writer.write(connect_packet(client_id, **kwargs))  # type: ignore[arg-type]
    assert await asyncio.wait_for(reader.readexactly(4), 3) == b"\x20\x02\x00\x00"
    return reader, writer


async def closed_by_broker(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(3):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    return True


async def wait_for(predicate: object, timeout: float = 3) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_remaining_length_encoding() -> None:
    assert encode_remaining_length(0) == b"\x00"
    assert encode_remaining_length(127) == b"\x7f"
    assert encode_remaining_length(128) == b"\x80\x01"
    assert encode_remaining_length(16383) == b"\xff\x7f"
    assert encode_remaining_length(268_435_455) == b"\xff\xff\xff\x7f"


def test_topic_matching() -> None:
    assert topic_matches("a/+/c", "a/b/c")
    assert not topic_matches("a/+/c", "a/b/d")
    assert topic_matches("a/#", "a")
    assert topic_matches("a/#", "a/b/c")
    assert topic_matches("+/+", "/x")
    assert not topic_matches("+", "a/b")
    assert topic_matches("#", "a/b")
    assert not topic_matches("#", "$SYS/x")
    assert not topic_matches("+/x", "$SYS/x")
    assert topic_matches("$SYS/#", "$SYS/x")
    assert valid_filter("a/+/#")
    assert not valid_filter("a/#/b")
    assert not valid_filter("a+/b")
    assert not valid_filter("")


async def test_pubsub_with_wildcards(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("locks/+/state")
        await sub.subscribe("events/#")
        await pub.publish("locks/front/state", b"locked")
        await pub.publish("locks/front/battery", b"80")
        await pub.publish("events", b"root")
        await pub.publish("events/a/b", b"deep")
        await pub.publish("$SYS/x", b"hidden")
        msgs = await recv(sub, 3)
        assert [(str(m.topic), m.payload) for m in msgs] == [
            ("locks/front/state", b"locked"),
            ("events", b"root"),
            ("events/a/b", b"deep"),
        ]
        await no_message(sub)


async def test_unsubscribe(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("t")
        await sub.unsubscribe("t")
        await pub.publish("t", b"x")
        await no_message(sub)


async def test_retained_delivery_and_deletion(broker: EmbeddedBroker) -> None:
    async with client(broker) as pub:
        await pub.publish("r/a", b"one", retain=True)
        await pub.publish("r/b", b"two", retain=True, qos=1)
        await pub.publish("r/b", b"", retain=True, qos=1)
    async with client(broker) as sub:
        await sub.subscribe("r/#")
        [msg] = await recv(sub)
        assert (str(msg.topic), msg.payload, msg.retain) == ("r/a", b"one", True)
        await no_message(sub)
        async with client(broker) as pub:
            await pub.publish("r/a", b"live", retain=True)
        [msg] = await recv(sub)
        # Live delivery to an existing subscription carries retain=0.
        assert (msg.payload, msg.retain) == (b"live", False)


async def test_qos1_round_trip(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("q", qos=1)
        await pub.publish("q", b"hello", qos=1)
        [msg] = await recv(sub)
        assert (msg.payload, msg.qos) == (b"hello", 1)
        await pub.publish("q", b"zero", qos=0)
        [msg] = await recv(sub)
        assert msg.qos == 0


async def test_qos2_publish_does_not_hang(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("q2", qos=2)
        async with asyncio.timeout(3):
            for i in range(3):
                await pub.publish("q2", str(i).encode(), qos=2)
        msgs = await recv(sub, 3)
        assert [m.payload for m in msgs] == [b"0", b"1", b"2"]
        assert {m.qos for m in msgs} == {1}


async def test_will_on_abrupt_close(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub:
        await sub.subscribe("status/#")
        _, writer = await raw_connect(broker, "dying", will=("status/dying", b"offline", 1, True))
        writer.close()
        await writer.wait_closed()
        [msg] = await recv(sub)
        assert (str(msg.topic), msg.payload) == ("status/dying", b"offline")
    async with client(broker) as late:
        await late.subscribe("status/#")
        [msg] = await recv(late)
        assert (msg.payload, msg.retain) == (b"offline", True)


async def test_will_on_keepalive_expiry(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub:
        await sub.subscribe("ka")
        reader, writer = await raw_connect(
            broker, "idle", keepalive=1, will=("ka", b"gone", 0, False)
        )
        [msg] = await recv(sub, timeout=4)
        assert msg.payload == b"gone"
        assert await closed_by_broker(reader)
        writer.close()
        await writer.wait_closed()


async def test_no_will_after_disconnect(broker: EmbeddedBroker) -> None:
    async with client(broker) as sub:
        await sub.subscribe("w")
        _, writer = await raw_connect(broker, "polite", will=("w", b"gone", 0, False))
        writer.write(b"\xe0\x00")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await no_message(sub)


async def test_mqtt5_connect_refused_cleanly(broker: EmbeddedBroker) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    writer.write(connect_packet("v5", level=5))
    assert await asyncio.wait_for(reader.readexactly(4), 3) == b"\x20\x02\x00\x01"
    assert await closed_by_broker(reader)
    writer.close()
    await writer.wait_closed()
    v5 = aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5)
    with pytest.raises(aiomqtt.MqttError):
        async with v5:
            pass


async def test_garbage_does_not_affect_other_clients(broker: EmbeddedBroker) -> None:
    garbage = [
        b"\xff\x00\x13\x37 not mqtt at all",
        b"\x10\xff\xff\xff\xff\x01",  # remaining length longer than 4 bytes
        connect_packet("g1") + b"\x30\x04\x00\x09ab",  # topic longer than the packet
        connect_packet("g2") + b"\x82\x05\x00\x01\x00\x01a",  # SUBSCRIBE missing QoS
        connect_packet("g3") + b"\x33\x03\x00\x01a",  # PUBLISH with QoS 1 but no id
        connect_packet("g4") + connect_packet("g4"),  # second CONNECT
    ]
    async with client(broker) as sub, client(broker) as pub:
        await sub.subscribe("#")
        for blob in garbage:
            reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
            writer.write(blob)
            assert await closed_by_broker(reader)
            writer.close()
            await writer.wait_closed()
        await pub.publish("still/alive", b"yes", qos=1)
        [msg] = await recv(sub)
        assert msg.payload == b"yes"
    await wait_for(lambda: broker.connected_clients == frozenset())


async def test_same_client_id_takes_over(broker: EmbeddedBroker) -> None:
    async with client(broker, "watcher") as sub:
        await sub.subscribe("tw")
        old_reader, old_writer = await raw_connect(
            broker, "dup", will=("tw", b"old-will", 0, False)
        )
        new_reader, new_writer = await raw_connect(broker, "dup")
        assert await closed_by_broker(old_reader)
        [msg] = await recv(sub)
        assert msg.payload == b"old-will"
        assert broker.connected_clients == {"dup", "watcher"}
        new_writer.write(b"\xc0\x00")  # PINGREQ on the new connection still works
        assert await asyncio.wait_for(new_reader.readexactly(2), 3) == b"\xd0\x00"
        for w in (old_writer, new_writer):
            w.close()
            await w.wait_closed()


async def test_slow_client_is_dropped() -> None:
    async with EmbeddedBroker(max_queued_packets=4) as broker:
        reader, writer = await raw_connect(broker, "slow")
        writer.write(b"\x82\x06\x00\x01\x00\x01#\x00")  # SUBSCRIBE "#" QoS 0, never read
        assert await asyncio.wait_for(reader.readexactly(5), 3) == b"\x90\x03\x00\x01\x00"
        async with client(broker) as pub:
            payload = b"x" * 256 * 1024
            for _ in range(200):
                await pub.publish("flood", payload)
                if "slow" not in broker.connected_clients:
                    break
            await wait_for(lambda: "slow" not in broker.connected_clients)
            assert len(broker.connected_clients) == 1
        writer.close()
        await writer.wait_closed()


async def test_stop_closes_clients_and_tasks() -> None:
    broker = EmbeddedBroker()
    port = await broker.start()
    assert broker.port == port
    readers = []
    writers = []
    for i in range(3):
        reader, writer = await raw_connect(broker, f"c{i}")
        readers.append(reader)
        writers.append(writer)
    await broker.stop()
    for reader in readers:
        assert await closed_by_broker(reader)
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(ConnectionError):
        await asyncio.open_connection("127.0.0.1", port)
