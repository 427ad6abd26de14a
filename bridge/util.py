"""Small helpers shared by the core."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def backoff_delay(attempt: int, cap: float, base: float = 0.5) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name; ValueError with a hint for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"
        ) from None
