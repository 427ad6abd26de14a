"""Web passes in process: tokens, the MQTT commands, the HTTP server, expiry and throttling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from bridge.api import Api
from bridge.config import WebPassConfig, WebPassThrottleConfig, parse_config
from bridge.errors import ConfigError
from bridge.logs import redact
from bridge.model import LockState
from bridge.webpass import pages
from bridge.webpass.api import WebPassApi
from bridge.webpass.http import WebPassServer, masked
from bridge.webpass.manager import WebPassManager
from bridge.webpass.model import WebPass, new_token, token_hash, well_formed
from bridge.webpass.throttle import Throttle
from tests.harness import Harness, harness
from tests.protocols import PROTOCOLS, sim_config
from tests.services import LIVE_TOKENS
from tests.webclient import Reply, exchange, http, parse, path_of


@dataclass
class Bench:
    h: Harness
    passes: WebPassManager
    api: Api
    server: WebPassServer
    monotonic: list[float]

    @property
    def port(self) -> int:
        return self.server.port

    async def request(self, command: str, **payload: Any) -> dict[str, Any]:
        return await self.api.handle(command, json.dumps(payload, default=str).encode())

    async def create(self, lock_ids: list[str] | None = None, **fields: Any) -> tuple[str, str]:
        """A new pass: its id and its page's path (which carries the token)."""
        now = self.h.clock.now()
        payload = {
            "lock_ids": lock_ids or self.h.lock_ids[:1],
            "name": "Guest <b>&</b>",
            "ends_at": (now + timedelta(days=2)).isoformat(),
            **fields,
        }
        response = await self.request("web_pass/create", **payload)
        assert response["status"] == "ok", response
        url: str = response["data"]["url"]
        # Port 0 and no public_url: the link names the port the server got.
        assert url.startswith(f"http://127.0.0.1:{self.port}/p/"), url
        token = urlsplit(url).path.rsplit("/", 1)[1]
        LIVE_TOKENS.update({token, token_hash(token)})
        return response["data"]["web_pass"]["web_pass_id"], path_of(url)

    async def get(self, path: str, **headers: str) -> Reply:
        return await http(self.port, "GET", path, headers=headers)

    async def post(self, path: str, **headers: str) -> Reply:
        return await http(self.port, "POST", path, headers=headers)

    def lock_state(self, lock_id: str) -> LockState:
        return self.h.registry.get(lock_id).status.lock_state


@contextlib.asynccontextmanager
async def bench(
    tmp_path: Path, simulated: dict[str, Any] | None = None, **web: Any
) -> AsyncIterator[Bench]:
    settings = {"enabled": True, "port": 0, **web}
    async with harness(tmp_path, web_pass=settings, **(simulated or {})) as h:
        passes = WebPassManager(h.registry, h.store, h.config.web_pass, clock=h.clock)
        await passes.load()
        api = Api(
            h.registry,
            h.store,
            command_timeout=5,
            config_summary={},
            is_connected=lambda: True,
            extra_commands=WebPassApi(passes).commands(),
        )
        monotonic = [1000.0]
        throttle = Throttle(h.config.web_pass.throttle, clock=lambda: monotonic[0])
        server = WebPassServer(passes, api.actuate, ZoneInfo("Europe/Berlin"), throttle=throttle)
        await server.start()
        try:
            yield Bench(h, passes, api, server, monotonic)
        finally:
            await server.stop()


def test_tokens_are_long_random_and_hashed() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(well_formed(t) and len(t) == 43 for t in tokens)
    token = next(iter(tokens))
    assert token_hash(token) != token and len(token_hash(token)) == 64
    for bad in ("", "short", token + "x", token[:-1] + "!", "../" + token[3:]):
        assert not well_formed(bad)


def test_logs_and_access_lines_hide_tokens() -> None:
    token = new_token()
    assert token not in redact(f"GET http://host/p/{token}/lock-1/unlock")
    assert token not in masked(f"/p/{token}/lock-1/unlock?x=1")
    assert masked(f"/p/{token}/lock-1/unlock") == "/p/***/lock-1/unlock"
    assert token not in masked(f"/p/{token}/x/y/z")
    assert token not in masked(f"/x/p/{token}") and token not in masked(f"//p/{token}")
    assert masked("/favicon.ico") == "/favicon.ico"
    assert "\n" not in masked("/a\nforged log line") and "\x1b" not in masked("/\x1b[2J")


def test_throttle_blocks_after_misses_and_forgets_old_clients() -> None:
    now = [0.0]
    throttle = Throttle(
        WebPassThrottleConfig(max_failures=3, window=60, block=300, max_clients=16),
        clock=lambda: now[0],
    )
    throttle.failure("a")
    now[0] = 61.0  # the first miss leaves the window
    throttle.failure("a")
    throttle.failure("a")
    assert throttle.blocked_for("a") == 0
    throttle.failure("a")
    assert throttle.blocked_for("a") == 300
    assert throttle.blocked_for("b") == 0
    now[0] += 299.5
    assert 0 < throttle.blocked_for("a") <= 0.5
    now[0] += 1
    assert throttle.blocked_for("a") == 0
    for n in range(1000):
        throttle.failure(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 16


async def test_create_list_revoke_over_the_api(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        lock_id = b.h.lock_ids[0]
        web_pass_id, path = await b.create(max_uses=3)
        token = path.rsplit("/", 1)[1]
        listed = (await b.request("web_pass/list"))["data"]["web_passes"]
        assert [p["web_pass_id"] for p in listed] == [web_pass_id]
        entry = listed[0]
        assert entry["status"] == "active" and entry["use_count"] == 0
        assert entry["allowed_actions"] == ["unlock", "lock"]
        assert "token_hash" not in entry and token not in str(listed)
        assert token_hash(token) not in str(listed)
        assert token not in repr(b.passes.get(web_pass_id))
        assert token_hash(token) not in repr(b.passes.get(web_pass_id))
        filtered = await b.request("web_pass/list", lock_id=b.h.lock_ids[1])
        assert filtered["data"]["web_passes"] == []
        revoked = await b.request("web_pass/revoke", web_pass_id=web_pass_id)
        assert revoked["data"]["web_pass"]["status"] == "revoked"
        created = await b.h.wait_event("web_pass.created", web_pass_id=web_pass_id)
        assert created.lock_id == lock_id
        await b.h.wait_event("web_pass.revoked", web_pass_id=web_pass_id)
        assert all(token not in str(e.to_json()) for e in b.h.events)
        # Only the hash is stored, and it survives a restart.
        db = tmp_path / "lockbridge.db"
        with closing(sqlite3.connect(db)) as conn:
            rows = " ".join(r[0] for r in conn.execute("SELECT data FROM web_passes"))
        assert token not in rows and token_hash(token) in rows
        again = WebPassManager(b.h.registry, b.h.store, b.h.config.web_pass, clock=b.h.clock)
        await again.load()
        found = again.find(token)
        assert found is not None and found.revoked_at is not None


async def test_create_refuses_bad_requests_with_located_errors(tmp_path: Path) -> None:
    async with bench(tmp_path, max_duration="P7D") as b:
        lock_id = b.h.lock_ids[0]
        now = b.h.clock.now()
        later = (now + timedelta(days=1)).isoformat()

        async def refused(code: str, where: str, **payload: Any) -> None:
            response = await b.request("web_pass/create", **payload)
            assert response["status"] == "error", response
            assert response["error"]["code"] == code, response
            assert where in response["error"]["message"], response

        await refused("invalid_payload", "lock_ids", ends_at=later)
        await refused("invalid_payload", "lock_ids", lock_ids=[], ends_at=later)
        await refused("invalid_payload", "ends_at", lock_ids=[lock_id])
        await refused(
            "invalid_payload", "ends_at", lock_ids=[lock_id], ends_at=(now + timedelta(days=8))
        )
        await refused(
            "invalid_payload", "ends_at", lock_ids=[lock_id], ends_at=(now - timedelta(hours=1))
        )
        await refused(
            "invalid_payload",
            "starts_at must be before ends_at",
            lock_ids=[lock_id],
            starts_at=later,
            ends_at=later,
        )
        await refused(
            "invalid_payload",
            "allowed_actions",
            lock_ids=[lock_id],
            ends_at=later,
            allowed_actions=["open"],
        )
        await refused("invalid_payload", "max_uses", lock_ids=[lock_id], ends_at=later, max_uses=0)
        await refused("invalid_payload", "unknown field", lock_ids=[lock_id], ends_at=later, x=1)
        await refused("lock_not_found", "nope", lock_ids=["nope"], ends_at=later)
        response = await b.request("web_pass/revoke", web_pass_id="nope")
        assert response["error"]["code"] == "web_pass_not_found"
        assert (await b.request("web_pass/list", lock_id="nope"))["error"]["code"] == (
            "lock_not_found"
        )


async def test_disabled_web_passes_cannot_be_created(tmp_path: Path) -> None:
    async with bench(tmp_path, enabled=False) as b:
        response = await b.request(
            "web_pass/create",
            lock_ids=b.h.lock_ids[:1],
            ends_at=(b.h.clock.now() + timedelta(days=1)).isoformat(),
        )
        assert response["error"]["code"] == "unsupported"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.usefixtures("protocol_stack")
async def test_page_and_unlock_with_the_event_attributed(protocol: str, tmp_path: Path) -> None:
    async with bench(tmp_path, sim_config(protocol)) as b:
        lock_id = b.h.lock_ids[0]
        await b.request("lock/lock", lock_id=lock_id)
        web_pass_id, path = await b.create(max_uses=5)
        page = await b.get(path)
        assert page.status == 200
        assert page.headers["content-security-policy"] == pages.CSP
        assert "script" not in pages.CSP and "default-src 'none'" in pages.CSP
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "Guest &lt;b&gt;&amp;&lt;/b&gt;" in page.body and "<b>" not in page.body
        assert "Locked" in page.body and "<script" not in page.body and "http" not in page.body
        assert f'action="{path}/{lock_id}/unlock"' in page.body
        b.h.collect()
        b.h.events.clear()

        done = await b.post(f"{path}/{lock_id}/unlock")
        assert done.status == 303
        assert done.headers["location"] == f"{path}?r=unlocked&l={lock_id}"
        assert b.lock_state(lock_id) is LockState.UNLOCKED
        event = await b.h.wait_event("lock.unlocked")
        assert event.fields["method"] == "web_pass"
        assert event.fields["web_pass_id"] == web_pass_id
        await asyncio.sleep(0.2)
        unlocked = [e for e in b.h.collect() if e.event_type == "lock.unlocked"]
        assert len(unlocked) == 1, [e.fields for e in unlocked]
        after = await b.get(done.headers["location"])
        assert "Unlocked." in after.body and "4 of 5 uses left" in after.body

        await b.post(f"{path}/{lock_id}/lock")
        assert b.lock_state(lock_id) is LockState.LOCKED
        locked = await b.h.wait_event("lock.locked", web_pass_id=web_pass_id)
        assert locked.fields["method"] == "web_pass"
        assert b.passes.get(web_pass_id).use_count == 2
        # An API unlock afterwards is remote again: the attribution does not linger.
        await b.request("lock/unlock", lock_id=lock_id)
        remote = await b.h.wait_event("lock.unlocked", method="remote")
        assert "web_pass_id" not in remote.fields


async def test_refusals_leave_the_lock_alone(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        lock_id, other = b.h.lock_ids[:2]
        await b.request("lock/lock", lock_id=lock_id)
        await b.h.settle()  # the code manager's first slot scan is radio traffic too
        now = b.h.clock.now()
        frames = b.h.frames(lock_id)

        async def refused(path: str, status: int, text: str) -> None:
            for reply in (await b.get(path), await b.post(f"{path}/{lock_id}/unlock")):
                assert reply.status == status, reply
                assert text in reply.body
            assert b.lock_state(lock_id) is LockState.LOCKED
            assert b.h.frames(lock_id) == frames

        _, later = await b.create(starts_at=(now + timedelta(hours=1)).isoformat())
        await refused(later, 403, "works from")
        revoked_id, revoked = await b.create()
        await b.request("web_pass/revoke", web_pass_id=revoked_id)
        await refused(revoked, 410, "revoked")
        _, once = await b.create(max_uses=1, allowed_actions=["lock"])
        assert (await b.post(f"{once}/{lock_id}/unlock")).status == 403
        assert (await b.post(f"{once}/{other}/lock")).status == 403
        assert (await b.post(f"{once}/{lock_id}/lock")).status == 303
        frames = b.h.frames(lock_id)
        await refused(once, 410, "used up")
        _, short = await b.create(ends_at=(now + timedelta(hours=2)).isoformat())
        assert (await b.get(short)).status == 200
        await b.h.clock.advance(timedelta(hours=2))
        await refused(short, 410, "expired")
        assert (await b.get(later)).status == 200


async def test_offline_lock_costs_no_use(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        lock_id = b.h.lock_ids[0]
        web_pass_id, path = await b.create(max_uses=1)
        await b.h.sim.set_online(b.h.native(lock_id), online=False)
        await b.h.wait_online(lock_id, False)
        reply = await b.post(f"{path}/{lock_id}/unlock")
        assert reply.headers["location"].endswith(f"r=offline&l={lock_id}")
        assert "offline" in (await b.get(reply.headers["location"])).body
        assert b.passes.get(web_pass_id).use_count == 0


async def test_bad_tokens_are_throttled(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        _, path = await b.create()
        for guess in ("/p/" + new_token(), "/p/short", "/p/x/y/z/w", "/p/" + new_token() + "/a/b"):
            assert (await b.get(guess)).status in (404, 405)
        assert (await b.get("/p/" + new_token())).status == 404
        blocked = await b.get(path)
        assert blocked.status == 429 and int(blocked.headers["retry-after"]) > 0
        assert (await b.post(f"{path}/{b.h.lock_ids[0]}/unlock")).status == 429
        b.monotonic[0] += 301
        assert (await b.get(path)).status == 200
        # Other paths are no token guesses.
        assert (await b.get("/")).status == 404
        assert (await b.get("/favicon.ico")).status == 404
        assert b.server.throttle.blocked_for("127.0.0.1") == 0


async def test_garbage_and_oversized_requests_are_answered_and_survived(tmp_path: Path) -> None:
    async with bench(tmp_path, request_timeout=0.3) as b:
        _, path = await b.create()
        cases = [
            (b"\x00\xff garbage\r\n\r\n", 400),
            (b"GET /p/x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
            (b"GET / HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\n", 408),
            (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 408),
        ]
        for raw, status in cases:
            assert parse(await exchange(b.port, raw)).status == status, raw
        # A silent client is dropped after the timeout; one that hangs up is no trouble.
        assert parse(await exchange(b.port, b"")).status == 408
        for raw in (b"", b"GET /p/"):
            _, writer = await asyncio.open_connection("127.0.0.1", b.port)
            writer.write(raw)
            writer.close()
            await writer.wait_closed()
        many = await b.get(f"{path}?r=unlocked&l=x&a=1&b=2&c=3&d=4")
        assert many.status == 200 and "role=status" not in many.body
        head = await http(b.port, "HEAD", path)
        assert head.status == 200 and head.body == ""
        assert (await http(b.port, "PUT", path)).status == 405
        assert (await b.get(f"{path}/{b.h.lock_ids[0]}/unlock")).status == 405
        assert (await b.post(f"{path}/{b.h.lock_ids[0]}/open")).status == 404
        cross = await b.post(f"{path}/{b.h.lock_ids[0]}/unlock", Origin="https://evil.example")
        assert cross.status == 403
        sec = await b.post(f"{path}/{b.h.lock_ids[0]}/unlock", **{"Sec-Fetch-Site": "cross-site"})
        assert sec.status == 403
        assert (await b.get(path)).status == 200


async def test_two_guests_at_once_cannot_exceed_max_uses(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        lock_id = b.h.lock_ids[0]
        web_pass_id, path = await b.create(max_uses=1)
        replies = await asyncio.gather(*(b.post(f"{path}/{lock_id}/unlock") for _ in range(5)))
        assert sorted(r.status for r in replies) == [303, 410, 410, 410, 410]
        assert b.passes.get(web_pass_id).use_count == 1


def test_config_section_defaults_and_located_errors() -> None:
    example = parse_config(
        (Path(__file__).parent.parent / "config.example.yaml").read_text(), "example"
    )
    assert example.web_pass == WebPassConfig()
    assert example.web_pass.max_duration == timedelta(days=30)
    assert example.web_pass.base_url() == "http://127.0.0.1:8380"
    config = parse_config(
        "web_pass:\n  enabled: true\n  public_url: https://door.example.net/\n  max_duration: 3600\n"
    )
    assert config.web_pass.base_url() == "https://door.example.net"
    assert WebPassConfig(host="::", port=1).base_url(8380) == "http://[::]:8380"
    assert config.web_pass.max_duration == timedelta(hours=1)
    assert config.summary()["web_pass"] is True
    for text, where in (
        ("web_pass:\n  public_url: ftp://x\n", "<config>:2: web_pass.public_url:"),
        ("web_pass:\n  max_duration: -5\n", "<config>:2: web_pass.max_duration:"),
        (
            "web_pass:\n  throttle:\n    max_failures: 0\n",
            "<config>:3: web_pass.throttle.max_failures:",
        ),
        ("web_pass:\n  listen: x\n", "<config>:2: web_pass.listen: unknown option"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(text)
        assert caught.value.message.startswith(where), caught.value.message


async def test_a_use_is_stored_before_the_lock_moves(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        lock_id = b.h.lock_ids[0]
        web_pass_id, path = await b.create(max_uses=2)
        stored_counts: list[int] = []

        async def actuate(lock: str, action: Literal["lock", "unlock"]) -> dict[str, Any]:
            rows = await b.h.store.load_table("web_passes")
            stored_counts.extend(r["use_count"] for r in rows if r["web_pass_id"] == web_pass_id)
            return await b.api.actuate(lock, action)

        web_pass = b.passes.get(web_pass_id)
        result = await b.passes.use(web_pass, lock_id, "unlock", actuate)
        assert result["confirmed"] is True
        assert stored_counts == [1]
        # A driver that reports no event of its own: the bridge emits the use itself.
        b.h.collect()
        b.h.events.clear()

        async def silent(lock: str, action: Literal["lock", "unlock"]) -> dict[str, Any]:
            return {"lock_id": lock, "action": action, "confirmed": True, "lock_state": "locked"}

        await b.passes.use(b.passes.get(web_pass_id), lock_id, "lock", silent)
        event = await b.h.wait_event("lock.locked", web_pass_id=web_pass_id)
        assert event.fields["method"] == "web_pass"
        assert (await b.get(path)).status == 410


async def test_an_unexpected_failure_answers_500_and_logs_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bench(tmp_path) as b:
        _, path = await b.create()
        token = path.rsplit("/", 1)[1]

        def broken(seen: str) -> WebPass | None:
            raise KeyError(seen)

        monkeypatch.setattr(b.passes, "find", broken)
        reply = await b.get(path)
        assert reply.status == 500 and token not in reply.body
        assert "web pass request failed: KeyError at test_webpass.py" in caplog.text
        assert token not in caplog.text
