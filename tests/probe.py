"""An MQTT client for tests: records every message and answers request/response round trips."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

_counter = itertools.count()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Probe:
    def __init__(self, client: aiomqtt.Client, base: str) -> None:
        self.client = client
        self.base = base
        self.messages: list[Received] = []
        self._changed = asyncio.Condition()

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            async with self._changed:
                self.messages.append(Received(message.topic.value, payload, bool(message.retain)))
                self._changed.notify_all()

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Any], bool] = lambda _: True,
        *,
        timeout: float = 10.0,
    ) -> Any:
        """The JSON of the first message (already received or later) on `topic` matching `predicate`."""
        seen = 0
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for message in self.messages[seen:]:
                    if message.topic == topic and message.payload:
                        value = message.json()
                        if predicate(value):
                            return value
                seen = len(self.messages)
                await self._changed.wait()

    def on(self, topic: str) -> list[Any]:
        return [m.json() for m in self.messages if m.topic == topic and m.payload]

    async def request(
        self, command: str, payload: dict[str, Any] | None = None, *, timeout: float = 15.0
    ) -> Any:
        transaction = f"t{next(_counter)}"
        body = {**(payload or {}), "transaction": transaction}
        await self.client.publish(f"{self.base}/bridge/request/{command}", json.dumps(body), qos=1)
        return await self.wait_for(
            f"{self.base}/bridge/response/{command}",
            lambda r: isinstance(r, dict) and r.get("transaction") == transaction,
            timeout=timeout,
        )

    async def sim(self, action: str, payload: dict[str, Any]) -> Any:
        transaction = f"s{next(_counter)}"
        await self.client.publish(
            f"{self.base}/simulator/request/{action}",
            json.dumps({**payload, "transaction": transaction}),
            qos=1,
        )
        response = await self.wait_for(
            f"{self.base}/simulator/response/{action}",
            lambda r: r.get("transaction") == transaction,
        )
        assert response["status"] == "ok", response
        return response["data"]


@contextlib.asynccontextmanager
async def probe(
    port: int,
    base: str = "lockbridge",
    topics: tuple[str, ...] = ("#",),
    protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5,
) -> AsyncIterator[Probe]:
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=protocol, identifier=f"probe-{next(_counter)}"
    ) as client:
        result = Probe(client, base)
        for topic in topics:
            await client.subscribe(topic if topic == "#" else f"{base}/{topic}", qos=1)
        task = asyncio.create_task(result._collect(), name="probe-collect")
        try:
            yield result
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
