"""End to end: the daemon in a subprocess, simulated Zigbee locks, a private Mosquitto."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import DaemonFactory
from tests.probe import Probe, probe
from tests.services import TEST_PINS, Mosquitto

BASE = "lockbridge"


def error_with(code: str) -> Callable[[Any], bool]:
    return lambda r: r.get("status") == "error" and r["error"]["code"] == code


def field_is(name: str, value: Any) -> Callable[[Any], bool]:
    return lambda r: r.get(name) == value


async def ready(p: Probe) -> list[dict[str, Any]]:
    await p.wait_for(f"{BASE}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
    response = await p.request("lock/list")
    assert response["status"] == "ok"
    locks: list[dict[str, Any]] = response["data"]["locks"]
    return locks


async def test_bridge_online_info_and_lock_list(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        locks = await ready(p)
        assert len(locks) == 2
        for lock in locks:
            assert lock["protocol"] == "zigbee"
            assert lock["lock_id"].startswith("zigbee-")
            assert lock["online"] is True
            assert lock["lock_state"] in ("locked", "unlocked")
            assert lock["capabilities"]["has_keypad"] is True
        info = await p.wait_for(f"{BASE}/bridge/info", lambda i: i["lock_count"] == 2)
        assert info["drivers"]["zigbee"]["state"] == "running"
        assert "lock/unlock" in info["commands"]
        availability = await p.wait_for(f"{BASE}/locks/{locks[0]['lock_id']}/availability")
        assert availability == {"state": "online"}
        health = await p.request("health_check")
        assert health["status"] == "ok" and health["data"]["healthy"] is True


async def test_lock_and_unlock_through_requests_and_set(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        lock_id = (await ready(p))[0]["lock_id"]
        state_topic = f"{BASE}/locks/{lock_id}"

        response = await p.request("lock/lock", {"lock_id": lock_id})
        assert response["status"] == "ok", response
        assert response["data"] == {
            "lock_id": lock_id,
            "action": "lock",
            "confirmed": True,
            "lock_state": "locked",
        }
        await p.wait_for(state_topic, lambda s: s["lock_state"] == "locked")

        response = await p.request("lock/unlock", {"lock_id": lock_id})
        assert response["data"]["confirmed"] is True
        assert response["data"]["lock_state"] == "unlocked"
        await p.wait_for(state_topic, lambda s: s["lock_state"] == "unlocked")

        p.messages.clear()
        await p.client.publish(f"{state_topic}/set", json.dumps({"action": "lock"}), qos=1)
        await p.wait_for(state_topic, lambda s: s["lock_state"] == "locked")
        assert (await p.request("lock/get", {"lock_id": lock_id}))["data"]["lock"][
            "lock_state"
        ] == "locked"

        p.messages.clear()
        await p.client.publish(f"{state_topic}/set", "UNLOCK", qos=1)
        await p.wait_for(f"{state_topic}", lambda s: s["lock_state"] == "unlocked")
        p.messages.clear()
        await p.client.publish(f"{state_topic}/set", "LOCK", qos=1)
        await p.wait_for(f"{state_topic}", lambda s: s["lock_state"] == "locked")

        events = await p.request("event/list", {"lock_id": lock_id, "limit": 50})
        types = [e["event_type"] for e in events["data"]["events"]]
        assert "lock.locked" in types and "lock.unlocked" in types


async def test_mqtt5_response_topic_and_correlation_data(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        await ready(p)
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = "client/42/replies"
        properties.CorrelationData = b"\x01corr"
        await p.client.publish(
            f"{BASE}/bridge/request/health_check", "{}", qos=1, properties=properties
        )
        response = await p.wait_for("client/42/replies")
        assert response["status"] == "ok"
        reply = next(m for m in p.messages if m.topic == "client/42/replies")
        assert reply.payload
        # aiomqtt hides the properties of recorded messages: ask once more, reading them live.
        async with aiomqtt.Client(
            "127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe("client/43/replies", qos=1)
            properties.ResponseTopic = "client/43/replies"
            await client.publish(
                f"{BASE}/bridge/request/health_check", "{}", qos=1, properties=properties
            )
            async with asyncio.timeout(10):
                message = await anext(aiter(client.messages))
            assert message.properties is not None
            assert getattr(message.properties, "CorrelationData", None) == b"\x01corr"


async def test_keypad_entry_and_wrong_pin(mosquitto: Mosquitto, make_daemon: DaemonFactory) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        lock_id = (await ready(p))[1]["lock_id"]
        event_topic = f"{BASE}/locks/{lock_id}/event"
        await p.request("lock/lock", {"lock_id": lock_id})
        await p.sim("add_code", {"lock_id": lock_id, "slot": 3, "pin": TEST_PINS[0]})
        await p.sim("keypad_entry", {"lock_id": lock_id, "pin": TEST_PINS[0]})
        event = await p.wait_for(event_topic, lambda e: e["event_type"] == "lock.unlocked")
        assert event["method"] == "keypad"
        assert event["slot"] == 3
        assert event["lock_id"] == lock_id
        assert {"event_id", "occurred_at"} <= event.keys()
        await p.wait_for(f"{BASE}/locks/{lock_id}", lambda s: s["lock_state"] == "unlocked")

        await p.sim("keypad_entry", {"lock_id": lock_id, "pin": TEST_PINS[1]})
        denied = await p.wait_for(event_topic, lambda e: e["event_type"] == "lock.access_denied")
        assert denied["lock_id"] == lock_id
        slots = await p.sim("slots", {"lock_id": lock_id})
        assert all("code" not in slot for slot in slots["slots"])
        everything = b"".join(
            m.payload for m in p.messages if not m.topic.startswith(f"{BASE}/simulator/request/")
        )
        # The PIN went out once, in our own simulator request; the bridge never repeats it.
        assert all(pin.encode() not in everything for pin in TEST_PINS)


async def test_door_battery_and_offline_events(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        lock_id = (await ready(p))[0]["lock_id"]
        events = f"{BASE}/locks/{lock_id}/event"
        await p.sim("door", {"lock_id": lock_id, "open": True})
        await p.wait_for(events, lambda e: e["event_type"] == "door.opened")
        await p.sim("door", {"lock_id": lock_id, "open": False})
        await p.wait_for(events, lambda e: e["event_type"] == "door.closed")
        await p.sim("battery", {"lock_id": lock_id, "level": 8})
        await p.wait_for(events, lambda e: e["event_type"] == "device.low_battery")
        await p.wait_for(f"{BASE}/locks/{lock_id}", lambda s: s["battery_status"] == "critical")
        await p.sim("manual_unlock", {"lock_id": lock_id})
        manual = await p.wait_for(events, lambda e: e["event_type"] == "lock.unlocked")
        assert manual["method"] == "manual"

        await p.sim("set_online", {"lock_id": lock_id, "online": False})
        response = await p.request("lock/lock", {"lock_id": lock_id})
        assert response["status"] == "error"
        assert response["error"]["code"] in ("lock_offline", "timeout")
        await p.wait_for(
            f"{BASE}/locks/{lock_id}/availability", lambda a: a == {"state": "offline"}
        )
        await p.sim("set_online", {"lock_id": lock_id, "online": True})
        response = await p.request("lock/lock", {"lock_id": lock_id})
        assert response["status"] == "ok", response
        await p.wait_for(f"{BASE}/locks/{lock_id}/availability", lambda a: a == {"state": "online"})


async def test_malformed_payloads_get_error_codes(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon()
    async with probe(mosquitto.port) as p:
        lock_id = (await ready(p))[0]["lock_id"]
        past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        cases: list[tuple[str, bytes, str]] = [
            ("lock/list", b"not json", "invalid_payload"),
            ("lock/list", b"\xff\xfe", "invalid_payload"),
            ("lock/list", b"[1, 2]", "invalid_payload"),
            ("lock/list", b'"text"', "invalid_payload"),
            ("lock/get", b"{}", "invalid_payload"),
            ("lock/get", b'{"lock_id": 5}', "invalid_payload"),
            ("lock/get", b'{"lock_id": "nope"}', "lock_not_found"),
            ("lock/lock", b'{"lock_id": "nope"}', "lock_not_found"),
            (
                "lock/unlock",
                json.dumps({"lock_id": lock_id, "expires_at": past}).encode(),
                "command_expired",
            ),
            (
                "lock/unlock",
                json.dumps({"lock_id": lock_id, "expires_at": "soon"}).encode(),
                "invalid_payload",
            ),
            ("event/list", b'{"limit": 0}', "invalid_payload"),
            ("lock/list", b'{"surprise": true}', "invalid_payload"),
            ("no/such/command", b"{}", "unknown_command"),
        ]
        for command, payload, code in cases:
            await p.client.publish(f"{BASE}/bridge/request/{command}", payload, qos=1)
            response = await p.wait_for(
                f"{BASE}/bridge/response/{command}",
                error_with(code),
            )
            assert response["error"]["message"]
            p.messages.clear()
        response = await p.request("lock/get", {"lock_id": "nope"})
        assert response["transaction"] is not None
        # A stale or malformed /set never actuates, and the bridge keeps going.
        state = (await p.request("lock/get", {"lock_id": lock_id}))["data"]["lock"]["lock_state"]
        for bad in (
            b"OPEN",
            b"{}",
            b'{"action": "unlock", "expires_at": "' + past.encode() + b'"}',
        ):
            await p.client.publish(f"{BASE}/locks/{lock_id}/set", bad, qos=1)
        await asyncio.sleep(0.5)
        assert (await p.request("lock/get", {"lock_id": lock_id}))["data"]["lock"][
            "lock_state"
        ] == state
        assert (await p.request("health_check"))["status"] == "ok"


async def test_retained_commands_never_actuate(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    first = make_daemon()
    async with probe(mosquitto.port) as p:
        lock_id = (await ready(p))[0]["lock_id"]
        assert (await p.request("lock/lock", {"lock_id": lock_id}))["data"]["confirmed"]
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    async with probe(mosquitto.port, topics=()) as p:
        await p.client.publish(
            f"{BASE}/locks/{lock_id}/set", '{"action": "unlock"}', qos=1, retain=True
        )
        await p.client.publish(
            f"{BASE}/bridge/request/lock/unlock",
            json.dumps({"lock_id": lock_id}),
            qos=1,
            retain=True,
        )
    first.start()
    try:
        async with probe(mosquitto.port) as p:
            await ready(p)
            await asyncio.sleep(1.0)
            lock = (await p.request("lock/get", {"lock_id": lock_id}))["data"]["lock"]
            assert lock["lock_state"] == "locked"
            assert not [
                e
                for e in p.on(f"{BASE}/locks/{lock_id}/event")
                if e["event_type"] == "lock.unlocked"
            ]
            assert not p.on(f"{BASE}/bridge/response/lock/unlock")
    finally:
        async with probe(mosquitto.port, topics=()) as p:
            await p.client.publish(f"{BASE}/locks/{lock_id}/set", b"", qos=1, retain=True)
            await p.client.publish(f"{BASE}/bridge/request/lock/unlock", b"", qos=1, retain=True)


async def test_kill_9_leaves_offline_from_the_will(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    daemon = make_daemon(base="killed")
    async with probe(mosquitto.port, base="killed", topics=("bridge/state",)) as p:
        await p.wait_for("killed/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        await p.wait_for("killed/bridge/state", lambda s: s == {"state": "offline"}, timeout=15)


async def test_sigterm_exits_cleanly_and_publishes_offline(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    daemon = make_daemon(base="termed")
    async with probe(mosquitto.port, base="termed", topics=("bridge/state",)) as p:
        await p.wait_for("termed/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait, 10) == 0
        assert loop.time() - started < 10
        await p.wait_for("termed/bridge/state", lambda s: s == {"state": "offline"})
    assert "stopped" in daemon.log_text()


async def test_broker_restart_brings_retained_topics_back(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    make_daemon(base="restart")
    async with probe(mosquitto.port, base="restart") as p:
        await p.wait_for("restart/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        locks = (await p.request("lock/list"))["data"]["locks"]
    await asyncio.to_thread(mosquitto.restart)
    async with probe(mosquitto.port, base="restart") as p:
        await p.wait_for("restart/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        await p.wait_for("restart/bridge/info", lambda i: i["lock_count"] == len(locks))
        for lock in locks:
            await p.wait_for(
                f"restart/locks/{lock['lock_id']}",
                field_is("lock_id", lock["lock_id"]),
            )
            await p.wait_for(f"restart/locks/{lock['lock_id']}/availability")
        assert (await p.request("lock/list"))["status"] == "ok"


async def test_systemd_notify_ready_watchdog_stopping(
    mosquitto: Mosquitto, make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        daemon = make_daemon(
            base="notify", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
        )
        messages: list[str] = []

        def receive_until(wanted: str) -> None:
            while wanted not in messages:
                messages.append(sock.recv(256).decode())

        await asyncio.to_thread(receive_until, "READY=1")
        await asyncio.to_thread(receive_until, "WATCHDOG=1")
        daemon.signal(signal.SIGTERM)
        await asyncio.to_thread(receive_until, "STOPPING=1")
        assert await asyncio.to_thread(daemon.wait, 10) == 0
    assert messages.index("READY=1") < messages.index("STOPPING=1")
