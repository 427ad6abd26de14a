"""PIN rules: validation against a lock's code rules, and generation of strong PINs."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Collection

from bridge.errors import CodeRejectedError
from bridge.model import CodeRules

# The most common PINs (published PIN-frequency studies) besides runs and repeats.
COMMON_PINS = frozenset(
    {
        "1234", "1111", "0000", "1212", "7777", "1004", "2000", "4444", "2222", "6969",
        "9999", "3333", "5555", "6666", "1122", "1313", "8888", "4321", "2001", "1010",
        "123456", "654321", "111111", "000000", "121212", "112233", "123123", "159753",
        "12345678", "87654321", "11111111", "00000000", "12341234",
    }
)  # fmt: skip


def is_weak(pin: str) -> bool:
    """All one digit, a run up or down (wrapping 9-0), a repeated pair, or a common PIN."""
    if pin in COMMON_PINS or len(set(pin)) == 1:
        return True
    if not pin.isdigit():
        return False
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {9}):
        return True
    return len(pin) % 2 == 0 and len(set(zip(pin[::2], pin[1::2], strict=True))) == 1


def check(pin: str, rules: CodeRules, *, other_lengths: Collection[int] = ()) -> None:
    """Raise `CodeRejectedError` (code_constraints_violated) when `pin` breaks the lock's rules."""

    def refuse(reason: str) -> CodeRejectedError:
        return CodeRejectedError(f"code rejected: {reason}", code="code_constraints_violated")

    if not rules.min_length <= len(pin) <= rules.max_length:
        raise refuse(f"the lock takes {rules.min_length} to {rules.max_length} characters")
    if any(char not in rules.characters for char in pin):
        raise refuse(f"the lock only takes the characters {rules.characters!r}")
    for prefix in rules.forbidden_prefixes:
        if pin.startswith(prefix):
            raise refuse(f"the lock refuses codes starting with {prefix!r}")
    if rules.same_length_for_all and other_lengths and len(pin) not in set(other_lengths):
        raise refuse("every code on this lock must have the same length")


def generate(rules: CodeRules, *, length: int | None, avoid: Collection[str]) -> str:
    """A PIN from `secrets` that fits the rules and is neither weak nor already in use."""
    size = length or max(rules.min_length, min(6, rules.max_length))
    if not rules.min_length <= size <= rules.max_length:
        raise CodeRejectedError(
            f"length {size} is outside {rules.min_length}-{rules.max_length}",
            code="code_constraints_violated",
        )
    for _ in range(10_000):
        pin = "".join(secrets.choice(rules.characters) for _ in range(size))
        if any(pin.startswith(prefix) for prefix in rules.forbidden_prefixes):
            continue
        if not is_weak(pin) and pin not in avoid:
            return pin
    raise CodeRejectedError("no code fits the lock's rules", code="code_constraints_violated")
