"""SPEC §10 scale: `access_code/plan` over 200 locks x 30 codes, and 1000 events/s published.

plan: 200 locks with 30 desired codes each (half of them already on the lock, so the plan mixes
writes, confirming reads and clears), one `access_code/plan` request for every lock through the
API, timed. Goal < 1 s.
events: the bridge in process against a private Mosquitto; events are raised at a fixed rate
through the lock registry (as drivers raise them) and a subscriber counts what arrives on
`<base>/locks/+/event`. Goal: 1000 events/s without loss.
Run: python -m bench.scale [--locks 200] [--codes 30] [--rate 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path

import aiomqtt

from bench._common import broker, workspace
from bridge.api import Api
from bridge.codes.api import CodeApi
from bridge.codes.manager import CodeManager
from bridge.codes.model import AccessCode
from bridge.codes.plan import SlotState
from bridge.codes.vault import Vault
from bridge.config import Config, MqttConfig, ZigbeeConfig, ZigbeeSimulatorConfig
from bridge.daemon import Bridge
from bridge.model import Capabilities, CodeRules, LockIdentity, StatusUpdate, utcnow
from bridge.registry import LockRegistry
from bridge.store import Store

PLAN_GOAL_S = 1.0
EVENT_GOAL_PER_S = 1000


async def time_plan(state_dir: Path, locks: int, codes: int) -> tuple[float, int]:
    """Seconds for one `access_code/plan` over every lock, and the operations it listed."""
    store = Store(state_dir / "lockbridge.db")
    await store.open()
    try:
        registry = LockRegistry({})
        config = Config(state_dir=state_dir)
        manager = CodeManager(registry, store, Vault.open(state_dir), config)
        caps = Capabilities(
            has_keypad=True,
            can_program_access_codes=True,
            can_read_access_codes=True,
            slot_range=(1, codes + 10),
            code_rules=CodeRules(),
        )
        now = utcnow()
        for n in range(locks):
            identity = LockIdentity(f"bench-{n:04d}", "bench", None, None, caps)
            registry.lock_added(identity, StatusUpdate(online=True))
            lock_id = identity.native_id
            for i in range(codes):
                code = AccessCode(
                    access_code_id=f"{lock_id}-{i}",
                    lock_id=lock_id,
                    code=f"{10000000 + 7919 * i}",
                    created_at=now + timedelta(microseconds=i),
                    updated_at=now,
                )
                manager.codes[code.access_code_id] = code
                if i % 2 == 0:
                    code.slot = i + 1
                    manager.slots.setdefault(lock_id, {})[i + 1] = SlotState(
                        i + 1, code.access_code_id, code.revision, "written"
                    )
            # A slot whose code was deleted meanwhile: the plan clears it.
            manager.slots[lock_id][codes + 5] = SlotState(codes + 5, "gone", 0, "confirmed")
        api = Api(
            registry,
            store,
            command_timeout=5,
            config_summary={},
            is_connected=lambda: True,
            extra_commands=CodeApi(manager, expose_codes=False).commands(),
        )
        began = time.perf_counter()
        response = await api.handle("access_code/plan", b"{}")
        elapsed = time.perf_counter() - began
        assert response["status"] == "ok", response
        operations = sum(len(plan) for plan in response["data"]["plans"].values())
        return elapsed, operations
    finally:
        await store.close()


async def publish_events(state_dir: Path, port: int, rate: int, seconds: float) -> tuple[int, int]:
    """Events raised and events a subscriber received."""
    config = Config(
        mqtt=MqttConfig(port=port, base_topic="scale"),
        state_dir=state_dir,
        log_level="WARNING",
        zigbee=ZigbeeConfig(
            enabled=True,
            radio="simulator",
            simulator=ZigbeeSimulatorConfig(locks=1, latency_ms=0, seed=1),
        ),
    )
    bridge = Bridge(config)
    runner = asyncio.create_task(bridge.run(), name="bench-bridge")
    received = 0
    marker = "bench.scale"
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-scale") as client:
        await client.subscribe("scale/locks/+/event", qos=1)
        await asyncio.wait_for(bridge.ready.wait(), 30)
        lock_id = bridge.registry.locks()[0].lock_id
        total = int(rate * seconds)
        batch = max(1, rate // 100)

        async def produce() -> None:
            began = time.perf_counter()
            for sent in range(0, total, batch):
                for n in range(sent, min(total, sent + batch)):
                    bridge.registry.emit(lock_id, "device.tampered", {"bench": marker, "n": n})
                delay = began + (sent + batch) / rate - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))

        async def consume() -> None:
            nonlocal received
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes) and json.loads(payload).get("bench") == marker:
                    received += 1
                    if received == total:
                        return

        consumer = asyncio.create_task(consume(), name="bench-consumer")
        await produce()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer, timeout=max(10.0, seconds))
    bridge.stop()
    await runner
    return total, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--locks", type=int, default=200)
    parser.add_argument("--codes", type=int, default=30)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with workspace("lbs-") as workdir:
        (workdir / "plan").mkdir()
        elapsed, operations = asyncio.run(time_plan(workdir / "plan", args.locks, args.codes))
        verdict = "met" if elapsed < PLAN_GOAL_S else "NOT met"
        print(
            f"plan: {args.locks} locks x {args.codes} codes: {elapsed * 1000:.0f} ms for "
            f"{operations} operations (goal < {PLAN_GOAL_S:g} s: {verdict})"
        )
        with broker(workdir) as mosquitto:
            (workdir / "events").mkdir()
            began = time.perf_counter()
            total, received = asyncio.run(
                publish_events(workdir / "events", mosquitto.port, args.rate, args.seconds)
            )
            elapsed = time.perf_counter() - began
        ok = received == total and args.rate >= EVENT_GOAL_PER_S
        print(
            f"events: {total} raised at {args.rate}/s, {received} received, {total - received} "
            f"lost (goal {EVENT_GOAL_PER_S}/s without loss: {'met' if ok else 'NOT met'}); "
            f"{elapsed:.1f} s with start and stop"
        )


if __name__ == "__main__":
    main()
