"""One simulated Z-Wave JS stack per test session, with lock nodes of every kind the tests need.

Starting mock-server and zwave-server and interviewing the nodes takes seconds, so the
stack is shared: each test picks the nodes of the kind it asks for (`zwave_config`) and
finds them reset (no codes or schedules, locked, closed, online) by `reset_all`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.config import ZigbeeConfig, ZWaveConfig
from simulators.zwave.control import ZWaveSimulatorControl
from simulators.zwave.stack import LockSpec, ZWaveStack

log = logging.getLogger(__name__)

HOME_ID = 0x7E570001  # the mock controller's home id
# A code the masked lock came with from the factory: it reveals that the lock hides codes.
FACTORY_CODE = "80241357"

LOCKS = [
    LockSpec(id=2),
    LockSpec(id=3),
    LockSpec(id=4, week_day_slots=0, year_day_slots=0),
    LockSpec(id=5, slots=3),
    LockSpec(id=6, masked=True, codes={10: FACTORY_CODE}),
    LockSpec(id=7, bulk=True),
    LockSpec(id=8, model="yale"),
]
# Which nodes a test gets for the simulator options it asks for.
KINDS: dict[tuple[tuple[str, Any], ...], list[int]] = {
    (): [2, 3],
    (("week_day_schedules", 0), ("year_day_schedules", 0)): [4],
    (("slots", 3),): [5],
    (("masked_codes", True),): [6],
    (("bulk_codes", True),): [7],
    (("real_model", True),): [8],
}

_stack: ZWaveStack | None = None


def native_id(node: int) -> str:
    return f"zwave-{HOME_ID:08x}-{node}"


def start_stack() -> ZWaveStack:
    global _stack  # noqa: PLW0603 - one stack per session, handed to parametrised tests
    stack = ZWaveStack(LOCKS)
    stack.start()
    try:
        interview = asyncio.run(stack.wait_interviewed())
    except BaseException:
        stack.stop()
        raise
    log.info(
        "Z-Wave stack: processes up in %.1f s, %d nodes interviewed in %.1f s",
        stack.started_in or 0.0,
        len(LOCKS),
        interview,
    )
    _stack = stack
    return stack


def stop_stack() -> None:
    global _stack  # noqa: PLW0603
    if _stack is not None:
        _stack.stop()
        _stack = None


def current() -> ZWaveStack:
    assert _stack is not None, "the zwave_stack fixture is not active"
    return _stack


def control() -> ZWaveSimulatorControl:
    return ZWaveSimulatorControl(current().control_port)


def reset_all() -> None:
    sim = control()
    for lock in LOCKS:
        sim.reset_blocking(native_id(lock.id))


def nodes_for(**options: Any) -> list[int]:
    key = tuple(sorted(options.items()))
    if key not in KINDS:
        raise AssertionError(f"no simulated Z-Wave lock kind for {options}")
    return KINDS[key]


def zwave_config(**options: Any) -> dict[str, Any]:
    """Harness settings for the session stack's nodes of the kind `options` describe."""
    stack = current()
    return {
        "zigbee": ZigbeeConfig(enabled=False),
        "zwave": ZWaveConfig(
            enabled=True,
            url=stack.url,
            command_timeout=8,
            ready_timeout=60,
            reconnect_max_delay=0.5,
            nodes=nodes_for(**options),
        ),
        "simulator": ZWaveSimulatorControl(stack.control_port),
    }
