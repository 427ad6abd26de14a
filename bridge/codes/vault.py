"""PINs encrypted at rest: AES-GCM under a key file (mode 0600) in the state directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.errors import LockbridgeError

KEY_FILE = "codes.key"


class Vault:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    @classmethod
    def open(cls, state_dir: Path) -> Vault:
        """Load the key, creating it (readable by the owner only) on first use."""
        path = state_dir / KEY_FILE
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            if len(key) != 32:
                raise LockbridgeError(
                    f"{path} is not a lockbridge key (expected 32 bytes)"
                ) from None
            return cls(key)
        key = AESGCM.generate_key(bit_length=256)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return cls(key)

    def seal(self, secret: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str, context: str) -> str:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise LockbridgeError(
                f"stored code {context} does not decrypt with {KEY_FILE}"
            ) from None
