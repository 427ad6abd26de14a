"""Small helpers shared by the core."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, cap: float, base: float = 0.5) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))
