"""Time of a lock command and of adding a keypad code on a simulated Nuki lock.

Each operation is what the driver does on real hardware: connect, challenge, the encrypted
command and its answers, disconnect, through bleak and the Bumble-backed backend.
Run: python -m bench.ble_timing [--latency-ms 0 20] [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bridge.config import BleConfig, BleSimulatorConfig
from bridge.driver import SlotWrite
from drivers.ble.cli import _Quiet
from drivers.ble.driver import BleDriver
from drivers.ble.identity import native_id
from simulators.ble.control import BleSimulatorControl


def _pins(count: int) -> list[str]:
    digits = "3456789"
    pins: list[str] = []
    for a in digits:
        for b in digits:
            for c in digits:
                pins.append(f"{a}{b}{c}{c}{b}{a}")
                if len(pins) == count:
                    return pins
    return pins


async def measure(latency_ms: float, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="lb-ble-") as state:
        config = BleConfig(
            enabled=True,
            backend="simulator",
            pair_in_pairing_mode=True,
            keypad_slots=200,
            simulator=BleSimulatorConfig(locks=1, latency_ms=latency_ms, slots=200, seed=9),
        )
        driver = BleDriver(_Quiet(), config, Path(state))
        await driver.start()
        try:
            simulator = driver.simulator()
            assert isinstance(simulator, BleSimulatorControl)
            (native,) = [native_id(a) for a in simulator.air.locks]
            times: dict[str, list[float]] = {"lock/unlock": [], "add keypad code": []}
            for index in range(rounds):
                started = time.perf_counter()
                await (driver.unlock(native) if index % 2 else driver.lock(native))
                times["lock/unlock"].append(time.perf_counter() - started)
            for slot, pin in enumerate(_pins(rounds), start=1):
                started = time.perf_counter()
                await driver.write_slot(native, SlotWrite(slot=slot, code=pin))
                times["add keypad code"].append(time.perf_counter() - started)
            return times
        finally:
            await driver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    for latency in args.latency_ms:
        times = asyncio.run(measure(latency, args.rounds))
        for what, values in times.items():
            ms = sorted(v * 1000 for v in values)
            p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
            print(
                f"simulated Nuki, {latency:g} ms per answer: {what}: "
                f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms (n={len(ms)})"
            )


if __name__ == "__main__":
    main()
