"""SPEC §10 radio efficiency: frames the simulated lock receives to converge K code changes.

Meets a new simulated Zigbee lock (a readable one reads its slots once), creates K codes on it, lets an hour pass on the simulated clock, then
deletes them, and prints the frames each phase cost next to the lower bound: on a lock that can
be read, one write plus one confirming read per code; on a masked (write-only) lock, one write; a
delete is one clear; an idle hour is zero.
Run: python -m bench.radio_efficiency [-k 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from bridge.codes.clock import FakeClock
from tests.harness import START, harness, zigbee_config


async def measure(k: int, *, masked: bool) -> dict[str, tuple[int, int]]:
    """Frames per phase, each with its lower bound."""
    clock = FakeClock(START)
    with tempfile.TemporaryDirectory(prefix="lockbridge-bench-") as state_dir:
        simulator = zigbee_config(locks=1, slots=max(30, k), masked_codes=masked)
        async with harness(Path(state_dir), clock=clock, **simulator) as h:
            await h.settle()
            lock = h.lock_ids[0]
            scans = h.manager.radio_operations(lock).get("scan", 0)
            interview = h.frames(lock) - scans
            start = h.frames(lock)
            pins = [f"{40000000 + 7919 * i:08d}" for i in range(k)]
            ids = [
                (await h.ok("access_code/create", lock_id=lock, code=pin))["access_code"][
                    "access_code_id"
                ]
                for pin in pins
            ]
            await h.settle(timeout=120)
            created = h.frames(lock) - start
            start = h.frames(lock)
            await clock.advance(timedelta(hours=1))
            await h.settle()
            idle = h.frames(lock) - start
            start = h.frames(lock)
            for access_code_id in ids:
                await h.ok("access_code/delete", access_code_id=access_code_id)
            await h.settle(timeout=120)
            deleted = h.frames(lock) - start
            assert await h.true_slots(lock) == {}, "the lock was not left empty"
    create_bound = k if masked else 2 * k
    slots = max(30, k)
    return {
        # Once per lock, ever: zigpy's interview, then a readable lock's slots are read one by
        # one for unmanaged codes.
        "interview": (interview, interview),
        "first scan": (scans, 0 if masked else slots),
        "create": (created, create_bound),
        "idle hour": (idle, 0),
        "delete": (deleted, k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", type=int, default=20, help="codes to create, then delete")
    args = parser.parse_args()
    for masked in (False, True):
        kind = "masked (write-only) lock" if masked else "readable lock"
        figures = asyncio.run(measure(args.k, masked=masked))
        print(f"{args.k} codes on one simulated Zigbee {kind}:")
        for phase, (frames, bound) in figures.items():
            verdict = "= lower bound" if frames == bound else f"lower bound {bound}"
            if phase == "interview":
                verdict = "zigpy's, once per lock"
            print(f"  {phase:<10} {frames:>4} frames  ({verdict})")
        total = sum(frames for frames, _ in figures.values())
        print(f"  total      {total:>4} frames")


if __name__ == "__main__":
    main()
