"""Web passes end to end: the daemon, simulated Zigbee locks, a private Mosquitto, HTTP on loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.webpass.model import token_hash
from tests.conftest import DaemonFactory
from tests.probe import Probe, probe
from tests.services import LIVE_TOKENS, Mosquitto, free_port, wait_port
from tests.webclient import http, parse, path_of

BASE = "webpass"


def web_settings(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "web_pass": {
            "enabled": True,
            "port": port,
            "public_url": f"http://127.0.0.1:{port}/",
            "throttle": {"max_failures": 5, "window": 60, "block": 30},
            **extra,
        }
    }


async def online(p: Probe) -> list[str]:
    await p.wait_for(f"{BASE}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
    locks = (await p.request("lock/list"))["data"]["locks"]
    return [lock["lock_id"] for lock in locks]


async def create(p: Probe, **fields: Any) -> tuple[str, str, str]:
    """A new pass over MQTT: its id, its page's path and its token."""
    response = await p.request("web_pass/create", fields)
    assert response["status"] == "ok", response
    url: str = response["data"]["url"]
    token = urlsplit(url).path.rsplit("/", 1)[1]
    LIVE_TOKENS.update({token, token_hash(token)})
    return response["data"]["web_pass"]["web_pass_id"], path_of(url), token


def soon(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_guest_unlocks_and_locks_through_the_page(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    port = free_port()
    daemon = make_daemon(base=BASE, settings=web_settings(port))
    async with probe(mosquitto.port, base=BASE) as p:
        lock_id, other = await online(p)
        assert (await p.request("lock/lock", {"lock_id": lock_id}))["data"]["confirmed"]
        web_pass_id, path, token = await create(
            p, lock_ids=[lock_id], name="Cleaner", ends_at=soon(days=1), max_uses=3
        )
        assert path.startswith("/p/") and token in path
        await asyncio.to_thread(wait_port, port)

        page = await http(port, "GET", path)
        assert page.status == 200 and "Cleaner" in page.body and "Locked" in page.body
        assert page.headers["referrer-policy"] == "no-referrer"
        assert f"{path}/{lock_id}/unlock" in page.body

        events = f"{BASE}/locks/{lock_id}/event"
        done = await http(port, "POST", f"{path}/{lock_id}/unlock")
        assert done.status == 303
        await p.wait_for(f"{BASE}/locks/{lock_id}", lambda s: s["lock_state"] == "unlocked")
        event = await p.wait_for(events, lambda e: e["event_type"] == "lock.unlocked")
        assert event["method"] == "web_pass" and event["web_pass_id"] == web_pass_id
        shown = await http(port, "GET", done.headers["location"])
        assert "Unlocked." in shown.body and "2 of 3 uses left" in shown.body

        mark = len(p.messages)
        assert (await http(port, "POST", f"{path}/{lock_id}/lock")).status == 303
        locked = await p.wait_for(
            events,
            lambda e: e.get("web_pass_id") == web_pass_id and e["event_type"] == "lock.locked",
        )
        assert locked["method"] == "web_pass"
        await asyncio.sleep(0.3)
        # One event per use: the driver's own, attributed; no second "remote" one.
        assert [
            m.json()["method"]
            for m in p.messages[mark:]
            if m.topic == events and m.json()["event_type"] == "lock.locked"
        ] == ["web_pass"]
        # The pass covers one lock only.
        assert (await http(port, "POST", f"{path}/{other}/unlock")).status == 403

        listed = (await p.request("web_pass/list", {}))["data"]["web_passes"]
        assert listed[0]["use_count"] == 2 and listed[0]["status"] == "active"
        history = (await p.request("event/list", {"lock_id": lock_id}))["data"]["events"]
        assert any(e.get("web_pass_id") == web_pass_id for e in history)

        # The pass, its count and its hash survive a restart.
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait, 15) == 0
        daemon.start()
        await p.wait_for(f"{BASE}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        await asyncio.to_thread(wait_port, port)
        again = await http(port, "GET", path)
        assert again.status == 200 and "1 of 3 uses left" in again.body

        await p.request("web_pass/revoke", {"web_pass_id": web_pass_id})
        assert (await http(port, "GET", path)).status == 410
        assert (await http(port, "POST", f"{path}/{lock_id}/unlock")).status == 410

        carrying = [
            m.topic
            for m in p.messages
            if token.encode() in m.payload or token_hash(token).encode() in m.payload
        ]
        # Once, in the response to the request that created the pass; nowhere else.
        assert carrying == [f"{BASE}/bridge/response/web_pass/create"]
    log = daemon.log_text()
    assert token not in log and token_hash(token) not in log
    assert f"POST /p/***/{lock_id}/unlock -> 303" in log


async def test_expired_exhausted_refused_and_bad_tokens_throttled(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    port = free_port()
    make_daemon(base=BASE, settings=web_settings(port, max_duration="PT1H"))
    async with probe(mosquitto.port, base=BASE) as p:
        lock_id, _ = await online(p)
        await p.request("lock/lock", {"lock_id": lock_id})
        too_long = await p.request(
            "web_pass/create", {"lock_ids": [lock_id], "ends_at": soon(hours=2)}
        )
        assert too_long["error"]["code"] == "invalid_payload"
        assert too_long["error"]["message"].startswith("ends_at")
        _, short, _ = await create(p, lock_ids=[lock_id], ends_at=soon(seconds=1.5))
        _, once, _ = await create(
            p, lock_ids=[lock_id], ends_at=soon(minutes=30), max_uses=1, allowed_actions=["unlock"]
        )
        await asyncio.to_thread(wait_port, port)
        page = await http(port, "GET", once)
        assert "/lock" not in page.body.replace("/unlock", "")
        assert (await http(port, "POST", f"{once}/{lock_id}/lock")).status == 403
        assert (await http(port, "POST", f"{once}/{lock_id}/unlock")).status == 303
        events = f"{BASE}/locks/{lock_id}/event"
        await p.wait_for(events, lambda e: e["event_type"] == "lock.unlocked")
        await p.request("lock/lock", {"lock_id": lock_id})
        await p.wait_for(events, lambda e: e["event_type"] == "lock.locked")
        p.messages.clear()
        used_up = await http(port, "POST", f"{once}/{lock_id}/unlock")
        assert used_up.status == 410 and "used up" in used_up.body
        await asyncio.sleep(max(0.0, 1.6))
        expired = await http(port, "POST", f"{short}/{lock_id}/unlock")
        assert expired.status == 410 and "expired" in expired.body
        await asyncio.sleep(0.5)
        assert not [e for e in p.on(events) if e["event_type"] == "lock.unlocked"]
        lock = (await p.request("lock/get", {"lock_id": lock_id}))["data"]["lock"]
        assert lock["lock_state"] == "locked"

        statuses = [(await http(port, "GET", f"/p/{'A' * 42}{n}")).status for n in range(5)]
        assert statuses == [404] * 5
        throttled = await http(port, "GET", once)
        assert throttled.status == 429 and throttled.headers["retry-after"]


def test_fuzzed_http_requests_never_crash_the_server(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    port = free_port()
    daemon = make_daemon(
        base=BASE,
        settings=web_settings(port, request_timeout=0.5, throttle={"max_failures": 1000}),
    )
    wait_port(port, timeout=30)

    def send(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    token = st.text("ABCxyz019_-/%.", max_size=50)
    request_line = st.builds(
        lambda method, path, version: f"{method} {path} {version}".encode(),
        st.sampled_from(["GET", "POST", "HEAD", "PUT", "G\x00T", ""]),
        st.builds(lambda t: "/p/" + t, token) | st.text(max_size=30),
        st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""]),
    )
    headers = st.lists(
        st.sampled_from(
            [b"Host: x", b"Content-Length: 3", b"Content-Length: -1", b"Origin: null", b": x"]
        )
        | st.binary(max_size=40),
        max_size=4,
    )
    raw_requests = st.builds(
        lambda line, hs, body: line + b"\r\n" + b"\r\n".join(hs) + b"\r\n\r\n" + body,
        request_line,
        headers,
        st.binary(max_size=20),
    ) | st.binary(max_size=300)

    @settings(
        max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(raw=raw_requests)
    def exchange(raw: bytes) -> None:
        answer = send(raw)
        if answer:
            status = parse(answer).status
            assert 200 <= status < 500, (raw, answer[:200])

    started = time.monotonic()
    exchange()
    assert daemon.alive(), f"the daemon died after {time.monotonic() - started:.1f} s"
    assert parse(send(b"GET / HTTP/1.1\r\n\r\n")).status == 404
