"""What simulated devices keep across restarts, like a real lock's flash: one JSON file each."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Changes that come together are written together.
SAVE_DELAY = 0.05


class Flash:
    """Reads the simulated devices' state at start-up and writes it soon after every change.

    `snapshot` gives the state to write, as JSON-ready data. Without a path nothing is kept.
    """

    def __init__(
        self, path: Path | None, snapshot: Callable[[], dict[str, Any]], name: str
    ) -> None:
        self.path = path
        self.dirty = False
        self._snapshot = snapshot
        self._name = name
        self._lock = threading.Lock()
        self._pending: asyncio.Task[None] | None = None

    async def read(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._read)

    def changed(self) -> None:
        self.dirty = True
        if self.path is None or (self._pending is not None and not self._pending.done()):
            return
        self._pending = asyncio.get_running_loop().create_task(
            self._write_soon(), name=f"{self._name}-save"
        )

    async def write(self) -> None:
        """Write now: what a device acknowledges must survive the process being killed."""
        self.dirty = False
        if self.path is not None:
            await asyncio.to_thread(self._write, self._snapshot())

    async def close(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        await self.write()

    async def _write_soon(self) -> None:
        await asyncio.sleep(SAVE_DELAY)
        await self.write()

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("simulator state %s unreadable (%s); starting afresh", self.path, err)
            return {}
        return data

    def _write(self, data: dict[str, Any]) -> None:
        assert self.path is not None
        with self._lock:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data), encoding="utf-8")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
