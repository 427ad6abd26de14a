"""One short-lived connection to a Nuki lock over bleak: pairing and encrypted commands.

Answers arrive as indications on the characteristic written to; each exchange is bounded
by a timeout, and bleak's failures are translated into lockbridge errors at this boundary.
"""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError
from nacl.public import PrivateKey

from bridge.errors import DeviceError, DeviceTimeoutError, LockOfflineError, TransientError
from drivers.ble.nuki import wire
from drivers.ble.nuki.const import (
    KEYTURNER_USDIO,
    PAIRING_GDIO,
    Command,
    ErrorCode,
    IdType,
    Status,
)

APP_NAME = "lockbridge"
_DROPPED = b""  # queued when the link drops, so a waiting exchange ends at once


class NukiRefusal(DeviceError):
    """The lock answered with an error report."""

    def __init__(self, error: int, command: int, *, lock_id: str | None = None) -> None:
        try:
            name = ErrorCode(error).name
        except ValueError:
            name = f"{error:#04x}"
        super().__init__(f"the lock refused command {command:#06x}: {name}", lock_id=lock_id)
        self.error = error


@dataclass(frozen=True, slots=True)
class Credentials:
    """What pairing yields; the shared key is the secret."""

    address: str
    auth_id: int
    app_id: int
    key: bytes = field(repr=False)
    lock_public: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "auth_id": self.auth_id,
            "app_id": self.app_id,
            "key": self.key.hex(),
            "lock_public": self.lock_public.hex(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Credentials:
        return cls(
            raw["address"],
            int(raw["auth_id"]),
            int(raw["app_id"]),
            bytes.fromhex(raw["key"]),
            bytes.fromhex(raw["lock_public"]),
        )


class NukiSession:
    """An open connection; use `async with NukiSession(...)`."""

    def __init__(
        self,
        address: str,
        *,
        backend: type[BaseBleakClient] | None,
        timeout: float,
        connect_timeout: float,
        device: BLEDevice | None = None,
        adapter: str | None = None,
    ) -> None:
        self.address = address
        self._timeout = timeout
        # The device as the scanner last saw it spares BlueZ a discovery of its own.
        self._client = BleakClient(
            device or address,
            self._dropped,
            timeout=connect_timeout,
            backend=backend,
            bluez={"adapter": adapter} if adapter else {},
        )
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribed: set[str] = set()

    async def __aenter__(self) -> NukiSession:
        try:
            await self._client.connect()
        except BleakDeviceNotFoundError as err:
            raise LockOfflineError(f"Nuki {self.address} is unreachable (not found)") from err
        except TimeoutError as err:
            raise LockOfflineError(
                f"Nuki {self.address} is unreachable (connect timed out)"
            ) from err
        except BleakError as err:
            raise TransientError(f"Nuki {self.address}: connection failed: {err}") from err
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.disconnect()
        except (TimeoutError, BleakError):
            pass

    async def _send(self, uuid: str, frame: bytes) -> None:
        if not self._client.is_connected:
            raise TransientError(f"Nuki {self.address}: the connection dropped")
        try:
            async with asyncio.timeout(self._timeout):
                if uuid not in self._subscribed:
                    await self._client.start_notify(uuid, self._received)
                    self._subscribed.add(uuid)
                await self._client.write_gatt_char(uuid, frame, response=True)
        except TimeoutError as err:
            raise DeviceTimeoutError(
                f"Nuki {self.address}: write not acknowledged within {self._timeout:g} s"
            ) from err
        except BleakError as err:
            raise TransientError(f"Nuki {self.address}: write failed: {err}") from err

    def _received(self, _: Any, data: bytearray) -> None:
        self._inbox.put_nowait(bytes(data))

    def _dropped(self, _: BleakClient) -> None:
        self._inbox.put_nowait(_DROPPED)

    async def _next(self) -> bytes:
        try:
            async with asyncio.timeout(self._timeout):
                message = await self._inbox.get()
        except TimeoutError as err:
            raise DeviceTimeoutError(
                f"Nuki {self.address}: no answer within {self._timeout:g} s"
            ) from err
        if not message:
            raise TransientError(f"Nuki {self.address}: the connection dropped")
        return message

    # Pairing (unencrypted, on the pairing service)

    async def _plain(self, command: int, payload: bytes, expect: Command) -> bytes:
        await self._send(PAIRING_GDIO, wire.plain(command, payload))
        try:
            answer, body = wire.parse_plain(await self._next())
        except wire.WireError as err:
            raise TransientError(f"Nuki {self.address}: garbled answer: {err}") from err
        if answer == Command.ERROR_REPORT:
            raise NukiRefusal(body[0] if body else ErrorCode.UNKNOWN, command)
        if answer != expect:
            raise DeviceError(f"Nuki {self.address}: unexpected answer {answer:#06x}")
        return body

    async def pair(self, name: str = APP_NAME) -> Credentials:
        """Pair with a lock in pairing mode (Nuki Bluetooth API, pairing steps 1-25)."""
        secret = PrivateKey.generate()
        own_public = bytes(secret.public_key)
        lock_public = await self._plain(
            Command.REQUEST_DATA, struct.pack("<H", Command.PUBLIC_KEY), Command.PUBLIC_KEY
        )
        key = wire.shared_key(bytes(secret), lock_public)
        nonce = await self._plain(Command.PUBLIC_KEY, own_public, Command.CHALLENGE)
        mac = wire.authenticator(key, own_public, lock_public, nonce)
        nonce = await self._plain(Command.AUTHORIZATION_AUTHENTICATOR, mac, Command.CHALLENGE)
        app_id = int.from_bytes(os.urandom(4), "little")
        own_nonce = os.urandom(32)
        body = struct.pack("<BI", IdType.BRIDGE, app_id) + wire.text(name, 32) + own_nonce
        answer = await self._plain(
            Command.AUTHORIZATION_DATA,
            wire.authenticator(key, body, nonce) + body,
            Command.AUTHORIZATION_ID,
        )
        mac, ident, lock_nonce = answer[:32], answer[32:52], answer[52:84]
        if not wire.authentic(key, mac, ident, lock_nonce, own_nonce):
            raise DeviceError(f"Nuki {self.address}: the lock's authenticator is wrong")
        auth_id_bytes = ident[:4]
        status = await self._plain(
            Command.AUTHORIZATION_ID_CONFIRMATION,
            wire.authenticator(key, auth_id_bytes, lock_nonce) + auth_id_bytes,
            Command.STATUS,
        )
        if status[:1] != bytes([Status.COMPLETE]):
            raise DeviceError(f"Nuki {self.address}: pairing did not complete")
        (auth_id,) = struct.unpack("<I", auth_id_bytes)
        return Credentials(self.address, auth_id, app_id, key, lock_public)

    # Encrypted commands (keyturner service)

    async def command(
        self, creds: Credentials, command: int, payload: bytes, until: frozenset[int]
    ) -> list[tuple[int, bytes]]:
        """Send one encrypted command; collect the answers up to one whose command is in `until`."""
        frame = wire.seal(creds.key, creds.auth_id, command, payload, os.urandom(wire.NONCE_SIZE))
        await self._send(KEYTURNER_USDIO, frame)
        answers: list[tuple[int, bytes]] = []
        while True:
            raw = await self._next()
            try:
                _, answer, body = wire.open_sealed(creds.key, raw)
            except wire.WireError:
                answer, body = wire.parse_plain(raw) if _plausible_plain(raw) else (0, b"")
                if answer != Command.ERROR_REPORT:
                    raise TransientError(
                        f"Nuki {self.address}: an answer did not decrypt"
                    ) from None
            if answer == Command.ERROR_REPORT:
                raise NukiRefusal(body[0] if body else ErrorCode.UNKNOWN, command)
            answers.append((answer, body))
            if answer in until and not (
                answer == Command.STATUS and body[:1] == bytes([Status.ACCEPTED])
            ):
                return answers

    async def challenge(self, creds: Credentials) -> bytes:
        answers = await self.command(
            creds,
            Command.REQUEST_DATA,
            wire.request_data(Command.CHALLENGE),
            frozenset({Command.CHALLENGE}),
        )
        return answers[-1][1][: wire.CHALLENGE_SIZE]


def _plausible_plain(raw: bytes) -> bool:
    try:
        wire.parse_plain(raw)
    except wire.WireError:
        return False
    return True
