"""Start-up of the simulated Z-Wave JS stack and what each test pays on a running one.

Prints: the two processes up and listening; the interview of every node; a cold and a warm
zwave-server restart; and, on the warm stack, one driver connect-to-ready and one lock
round trip (Door Lock set + read-back). Run: python -m bench.zwave_stack [--locks 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from bridge.config import ZWaveConfig
from bridge.model import LockIdentity, StatusUpdate
from drivers.zwave import ZWaveDriver
from simulators.zwave.stack import LockSpec, ZWaveStack


class _Sink:
    def lock_added(self, identity: LockIdentity, status: StatusUpdate) -> None: ...
    def lock_status(self, native_id: str, update: object) -> None: ...
    def lock_event(self, native_id: str, event: object) -> None: ...
    def slot_changed(self, native_id: str, slot: int | None) -> None: ...


async def _driver_round(stack: ZWaveStack, state: Path, rounds: int) -> tuple[float, float]:
    began = time.monotonic()
    driver = ZWaveDriver(_Sink(), ZWaveConfig(enabled=True, url=stack.url, nodes=[2]), state)
    await driver.start()
    connect = time.monotonic() - began
    native = "zwave-7e570001-2"
    times = []
    for index in range(rounds):
        began = time.monotonic()
        await (driver.lock(native) if index % 2 else driver.unlock(native))
        times.append(time.monotonic() - began)
    await driver.stop()
    return connect, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locks", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    stack = ZWaveStack([LockSpec(id=2 + n) for n in range(args.locks)])
    try:
        stack.start()
        interview = asyncio.run(stack.wait_interviewed())
        print(f"processes up and listening: {stack.started_in:.2f} s")
        print(f"interview of {args.locks} lock nodes: {interview:.2f} s")
        began = time.monotonic()
        stack.stop_server()
        stack.start_server()
        asyncio.run(stack.wait_interviewed())
        print(f"zwave-server restart from its cache: {time.monotonic() - began:.2f} s")
        connect, lock = asyncio.run(_driver_round(stack, stack.workdir / "bench", args.rounds))
        print(f"per test on the running stack: driver connect to ready {connect:.2f} s")
        print(f"lock/unlock with read-back, median of {args.rounds}: {lock * 1000:.0f} ms")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
