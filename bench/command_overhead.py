"""SPEC §10 command overhead: lock/unlock through the bridge minus a raw broker round trip.

With a zero-latency Zigbee simulator, N `<base>/bridge/request/lock/<action>` → response round trips
and N raw round trips (publish to a topic this client subscribes to) are timed, interleaved.
Goal: bridge minus raw, p50 <= 2 ms and p99 <= 10 ms (reported, never failed on).
Scenarios (--scenario, default all): see SCENARIOS; "nodelay" is the figure for the daemon as is.
Warm-up plus N stays under 256: zigpy drops a frame identical to one seen in the last 10 s, and
a lock's answer repeats byte for byte once the 8-bit ZCL sequence number wraps around.
Run: python -m bench.command_overhead [-n 200] [--warmup 30] [--qos 1] [--scenario nodelay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import time
from typing import Any

import aiomqtt

from bench._common import (
    BASE,
    NotifySocket,
    broker,
    log_problems,
    start_until_ready,
    workspace,
    write_config,
)
from tests.services import Daemon

ECHO = "bench/echo"
P50_GOAL_MS = 2.0
P99_GOAL_MS = 10.0
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
SCENARIOS = {
    "stock": "stock Mosquitto and clients (Nagle on everywhere, as in tests/)",
    "nodelay": "TCP_NODELAY on the broker and this client, as on the daemon's MQTT socket",
}


class Timer:
    """One client; a reader task stamps each awaited message the moment it comes off the socket."""

    def __init__(self, client: aiomqtt.Client, qos: int) -> None:
        self.client = client
        self.qos = qos
        self.waiting: dict[tuple[str, str], asyncio.Future[tuple[float, Any]]] = {}
        self.serial = 0

    async def read(self) -> None:
        async for message in self.client.messages:
            arrived = time.perf_counter()
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            body: Any
            if topic == ECHO:
                body, key = None, payload.decode()
            else:
                body = json.loads(payload)
                key = str(body.get("transaction"))
            future = self.waiting.pop((topic, key), None)
            if future is not None and not future.done():
                future.set_result((arrived, body))

    async def _round_trip(
        self, topic: str, payload: str, reply: str, key: str
    ) -> tuple[float, Any]:
        future: asyncio.Future[tuple[float, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[(reply, key)] = future
        began = time.perf_counter()
        await self.client.publish(topic, payload, qos=self.qos)
        async with asyncio.timeout(10):
            arrived, body = await future
        return arrived - began, body

    async def raw(self) -> float:
        self.serial += 1
        key = f"e{self.serial}"
        seconds, _ = await self._round_trip(ECHO, key, ECHO, key)
        return seconds

    async def request(self, command: str, payload: dict[str, Any]) -> tuple[float, Any]:
        self.serial += 1
        key = f"b{self.serial}"
        return await self._round_trip(
            f"{BASE}/bridge/request/{command}",
            json.dumps({**payload, "transaction": key}),
            f"{BASE}/bridge/response/{command}",
            key,
        )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def measure(
    port: int, count: int, warmup: int, qos: int, nodelay: bool
) -> tuple[list[float], list[float], list[str]]:
    options = [NODELAY] if nodelay else None
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier="bench-overhead",
        protocol=aiomqtt.ProtocolVersion.V5,
        socket_options=options,
    ) as client:
        timer = Timer(client, qos)
        await client.subscribe(ECHO, qos=qos)
        await client.subscribe(f"{BASE}/bridge/response/#", qos=qos)
        reader = asyncio.create_task(timer.read(), name="bench-reader")
        try:
            _, listing = await timer.request("lock/list", {})
            lock_id = listing["data"]["locks"][0]["lock_id"]
            raw: list[float] = []
            bridge: list[float] = []
            failures: list[str] = []
            for i in range(warmup + count):
                action = "lock" if i % 2 == 0 else "unlock"
                raw_s = await timer.raw()
                bridge_s, response = await timer.request(f"lock/{action}", {"lock_id": lock_id})
                ok = response.get("status") == "ok" and response["data"].get("confirmed")
                if not ok:
                    failures.append(f"{action} after {bridge_s * 1000:.0f} ms: {response}")
                if i >= warmup:
                    raw.append(raw_s * 1000)
                    bridge.append(bridge_s * 1000)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return raw, bridge, failures


def report(
    scenario: str, raw: list[float], bridge: list[float], failures: list[str], qos: int
) -> None:
    print(f"\n[{scenario}] {SCENARIOS[scenario]}")
    print(
        f"{len(bridge)} lock/unlock round trips, zero-latency simulator, MQTT 5, QoS {qos}, loopback"
    )
    print(f"{'':>22} | {'p50':>9} | {'p99':>9} | {'mean':>9} | {'max':>9}")
    for name, values in {"raw broker": raw, "bridge": bridge}.items():
        print(
            f"{name:>22} | {percentile(values, 50):6.3f} ms | {percentile(values, 99):6.3f} ms | "
            f"{sum(values) / len(values):6.3f} ms | {max(values):6.3f} ms"
        )
    p50 = percentile(bridge, 50) - percentile(raw, 50)
    p99 = percentile(bridge, 99) - percentile(raw, 99)
    print(f"{'overhead (bridge-raw)':>22} | {p50:6.3f} ms | {p99:6.3f} ms |")
    verdict = "met" if p50 <= P50_GOAL_MS and p99 <= P99_GOAL_MS else "NOT met"
    print(f"goal overhead p50 <= {P50_GOAL_MS:g} ms, p99 <= {P99_GOAL_MS:g} ms: {verdict}")
    if failures:
        print(f"warning: {len(failures)} responses were not ok/confirmed, e.g.:")
        for failure in failures[:3]:
            print(f"  {failure}")


def run(scenario: str, args: argparse.Namespace) -> None:
    nodelay = scenario != "stock"
    with workspace("lbo-") as workdir, broker(workdir, nodelay=nodelay) as mosquitto:
        config = write_config(
            workdir, mosquitto.port, locks=args.locks, log_level=args.log_level, latency_ms=0
        )
        notify = NotifySocket(workdir / "notify.sock")
        daemon = Daemon(config)
        try:
            start_until_ready(daemon, notify)
            raw, bridge, failures = asyncio.run(
                measure(mosquitto.port, args.count, args.warmup, args.qos, nodelay)
            )
        finally:
            daemon.stop()
            notify.close()
        problems = log_problems(daemon)
    report(scenario, raw, bridge, failures, args.qos)
    for line in problems[:10]:
        print(f"daemon log: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--qos", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--locks", type=int, default=1, help="simulated locks (one is used)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument(
        "--scenario", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS), metavar="S"
    )
    args = parser.parse_args()
    for scenario in args.scenario:
        run(scenario, args)


if __name__ == "__main__":
    main()
