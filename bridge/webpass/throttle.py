"""Slowing down clients that guess tokens, with a bounded memory of clients."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.config import WebPassThrottleConfig


@dataclass(slots=True)
class _Client:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class Throttle:
    """After `max_failures` misses within `window` seconds, a client is blocked for `block` s.

    At most `max_clients` addresses are remembered; the least recently seen go first, so a
    flood of addresses costs bounded memory (and at worst forgets an old offender).
    """

    def __init__(
        self, config: WebPassThrottleConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def blocked_for(self, client: str) -> float:
        """Seconds the client must still wait; 0 when it may ask."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def failure(self, client: str) -> None:
        now = self._clock()
        entry = self._clients.pop(client, None) or _Client()
        self._clients[client] = entry
        while entry.failures and entry.failures[0] <= now - self._config.window:
            entry.failures.popleft()
        entry.failures.append(now)
        if len(entry.failures) >= self._config.max_failures:
            entry.failures.clear()
            entry.blocked_until = now + self._config.block
        while len(self._clients) > self._config.max_clients:
            self._clients.popitem(last=False)
