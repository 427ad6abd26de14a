"""The simulator control API for simulated Z-Wave locks (SPEC §8), over the mock's control channel.

The channel is a loopback TCP socket opened by mock-locks.cjs inside mock-server: one JSON
request per line, one JSON answer per line. Locks are named by their bridge native id
(`zwave-<home id>-<node id>`); the mock knows them by node id.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from bridge.driver import SimulatorControl
from bridge.errors import InvalidPayloadError, LockNotFoundError

LOOPBACK = "127.0.0.1"
TIMEOUT = 10.0


def node_of(native_id: str) -> int:
    prefix, _, node = native_id.rpartition("-")
    if not prefix.startswith("zwave-") or not node.isdigit():
        raise LockNotFoundError(f"no simulated Z-Wave lock {native_id}")
    return int(node)


def _answer(line: bytes) -> dict[str, Any]:
    if not line:
        raise InvalidPayloadError("the Z-Wave simulator closed its control channel")
    answer: dict[str, Any] = json.loads(line)
    if not answer.get("ok"):
        message = str(answer.get("error", "refused"))
        if message.startswith("no simulated node"):
            raise LockNotFoundError(message)
        raise InvalidPayloadError(f"the simulated lock refused: {message}")
    result: dict[str, Any] = answer.get("result", {})
    return result


class ZWaveSimulatorControl(SimulatorControl):
    def __init__(self, control_port: int) -> None:
        self._port = control_port

    async def request(self, action: str, native_id: str, **fields: Any) -> dict[str, Any]:
        message = json.dumps({"action": action, "node": node_of(native_id), **fields}) + "\n"
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(LOOPBACK, self._port)
            try:
                writer.write(message.encode())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                await writer.wait_closed()
        return _answer(line)

    async def keypad_entry(self, native_id: str, pin: str) -> None:
        await self.request("keypad", native_id, pin=pin)

    async def manual(self, native_id: str, *, lock: bool) -> None:
        await self.request("manual", native_id, lock=lock)

    async def door(self, native_id: str, *, is_open: bool) -> None:
        await self.request("door", native_id, open=is_open)

    async def set_online(self, native_id: str, *, online: bool) -> None:
        await self.request("online", native_id, online=online)

    async def battery(self, native_id: str, level: int) -> None:
        await self.request("battery", native_id, level=level)

    async def add_code(self, native_id: str, slot: int, pin: str) -> None:
        await self.request("add_code", native_id, slot=slot, pin=pin)

    async def slots(self, native_id: str) -> list[dict[str, Any]]:
        slots: list[dict[str, Any]] = (await self.request("slots", native_id))["slots"]
        return slots

    async def jam(self, native_id: str) -> None:
        await self.request("jam", native_id)

    async def tamper(self, native_id: str) -> None:
        await self.request("tamper", native_id)

    async def reset(self, native_id: str) -> None:
        """A fresh lock: no codes or schedules, locked, door closed, online."""
        await self.request("reset", native_id)

    def reset_blocking(self, native_id: str) -> None:
        """`reset`, for callers outside an event loop (e.g. between tests)."""
        self._sync("reset", native_id)

    async def loopback_guard(self) -> dict[str, Any]:
        """What the guard preloaded into mock-server saw (mDNS stubbed, UDP attempts)."""
        guard: dict[str, Any] = (await self.request("guard", "zwave-0-0"))["guard"]
        return guard

    def lose_frames(self, native_id: str, count: int) -> None:
        """Radio trouble on demand: the lock acknowledges, then ignores, the next frames."""
        self._sync("lose", native_id, count=count)

    def radio_operations(self, native_id: str) -> int:
        frames: int = self._sync("frames", native_id)["frames"]
        return frames

    def _sync(self, action: str, native_id: str, **fields: Any) -> dict[str, Any]:
        # The SimulatorControl API makes these two synchronous; a loopback round trip.
        message = json.dumps({"action": action, "node": node_of(native_id), **fields}) + "\n"
        with socket.create_connection((LOOPBACK, self._port), timeout=TIMEOUT) as sock:
            sock.sendall(message.encode())
            with sock.makefile("rb") as stream:
                return _answer(stream.readline())
