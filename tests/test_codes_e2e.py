"""Access codes end to end: the daemon killed mid-sync, and the PIN canary over MQTT."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from contextlib import closing
from typing import Any

from tests.conftest import DaemonFactory
from tests.probe import Probe, probe
from tests.services import TEST_PINS, Daemon, Mosquitto

CODES = {"scan_delay": 0, "retry_base_delay": 0.05, "retry_max_delay": 0.5}


async def online(p: Probe, base: str) -> str:
    await p.wait_for(f"{base}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
    locks = (await p.request("lock/list"))["data"]["locks"]
    lock_id: str = locks[0]["lock_id"]
    return lock_id


async def restart_after_kill(daemon: Daemon, p: Probe, base: str) -> None:
    daemon.signal(signal.SIGKILL)
    await asyncio.to_thread(daemon.wait, 10)
    await p.wait_for(f"{base}/bridge/state", lambda s: s == {"state": "offline"}, timeout=15)
    p.messages.clear()
    daemon.start()
    await p.wait_for(f"{base}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)


async def test_kill_9_during_sync_loses_and_orphans_nothing(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    base = "crash"
    rng = random.Random(5)
    daemon = make_daemon(base=base, locks=1, latency_ms=8, settings={"codes": CODES})
    async with probe(mosquitto.port, base=base) as p:
        lock_id = await online(p, base)
        pins = [f"{rng.randrange(10**7, 10**8)}" for _ in range(40)]
        wanted: dict[str, str] = {}
        for pin in pins[:20]:
            response = await p.request("access_code/create", {"lock_id": lock_id, "code": pin})
            assert response["status"] == "ok", response
            wanted[response["data"]["access_code"]["access_code_id"]] = pin
        spare = pins[20:]
        for round_ in range(50):
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            await restart_after_kill(daemon, p, base)
            # Keep the sync going: now and then a code goes or a new one comes.
            if round_ % 5 == 0 and spare:
                response = await p.request(
                    "access_code/create", {"lock_id": lock_id, "code": spare.pop()}
                )
                assert response["status"] == "ok", response
                wanted[response["data"]["access_code"]["access_code_id"]] = response["data"][
                    "access_code"
                ]["code"]
            elif round_ % 5 == 2:
                victim = rng.choice(sorted(wanted))
                response = await p.request("access_code/delete", {"access_code_id": victim})
                assert response["status"] == "ok", response
                del wanted[victim]

        async def converged() -> list[dict[str, Any]]:
            while True:
                listed = (await p.request("access_code/list", {"lock_id": lock_id}))["data"]
                codes: list[dict[str, Any]] = listed["access_codes"]
                if {c["access_code_id"] for c in codes} == set(wanted) and all(
                    c["status"] == "set" for c in codes
                ):
                    return codes
                await asyncio.sleep(0.2)

        codes = await asyncio.wait_for(converged(), 60)
        slots = (await p.sim("slots", {"lock_id": lock_id, "reveal": True}))["slots"]
        on_device = sorted(slot["code"] for slot in slots)
        # Every wanted code exactly once, nothing else: no loss, no orphan, no duplicate.
        assert on_device == sorted(wanted.values())
        assert {c["slot"] for c in codes} == {slot["slot"] for slot in slots}
    assert daemon.stop() == 0
    db = daemon.config.parent / "state" / "lockbridge.db"
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_pin_never_leaves_except_in_the_create_response(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> None:
    base = "canary"
    pin = TEST_PINS[2]
    make_daemon(base=base, locks=1, settings={"codes": CODES})
    async with probe(mosquitto.port, base=base) as p:
        lock_id = await online(p, base)
        created = await p.request(
            "access_code/create", {"lock_id": lock_id, "code": pin, "max_uses": 2}
        )
        assert created["data"]["access_code"]["code"] == pin
        code_id = created["data"]["access_code"]["access_code_id"]
        await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "access_code.set_on_device",
        )
        await p.sim("keypad_entry", {"lock_id": lock_id, "pin": pin})
        used = await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "lock.unlocked" and e.get("access_code_id") == code_id,
        )
        assert used["method"] == "keypad"
        got = await p.request("access_code/get", {"access_code_id": code_id})
        assert (
            got["data"]["access_code"]["use_count"] == 1
            and "code" not in got["data"]["access_code"]
        )
        await p.request("access_code/list", {})
        await p.request("health_check")
        await p.request("access_code/delete", {"access_code_id": code_id})
        await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "access_code.deleted",
        )
        carrying = [
            m.topic
            for m in p.messages
            if pin.encode() in m.payload
            # The probe's own requests come back to it through its '#' subscription.
            and not m.topic.startswith((f"{base}/simulator/request/", f"{base}/bridge/request/"))
        ]
        # Once, in the response to the request that created it; nowhere else.
        assert carrying == [f"{base}/bridge/response/access_code/create"]
