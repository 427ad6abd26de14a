"""Bluetooth LE (Nuki) specifics: wire formats, pairing, encryption, retries, the lock's own rules.

The driver runs unchanged on the simulated Nuki: bleak with a backend on Bumble's LocalLink.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nacl import bindings
from nacl.public import PrivateKey

from bridge.cli import main as cli_main
from bridge.codes.clock import FakeClock
from bridge.errors import LockOfflineError, TransientError
from drivers.ble.driver import BleDriver
from drivers.ble.identity import address_of, native_id
from drivers.ble.nuki import wire
from drivers.ble.nuki.const import KEYTURNER_USDIO, Command, ErrorCode, LockAction, LockState
from drivers.ble.nuki.session import NukiRefusal, NukiSession
from simulators.ble.control import BleSimulatorControl
from tests.harness import START, Harness, ble_config, harness
from tests.services import NUKI_TEST_PINS

PIN_A, PIN_B, _ = NUKI_TEST_PINS


def control(h: Harness) -> BleSimulatorControl:
    assert isinstance(h.sim, BleSimulatorControl)
    return h.sim


def ble_driver(h: Harness) -> BleDriver:
    assert isinstance(h.driver, BleDriver)
    return h.driver


# Wire formats, pinned by values computed independently of the simulated lock


def test_crc_ccitt_check_value() -> None:
    assert wire.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    frame = wire.plain(Command.REQUEST_DATA, struct.pack("<H", Command.PUBLIC_KEY))
    assert frame.hex() == "0100030027a7"  # Nuki API example: request the public key
    with pytest.raises(wire.WireError):
        wire.parse_plain(frame[:-1] + b"\x00")


def _hsalsa20(key: bytes, nonce: bytes) -> bytes:
    """HSalsa20 written out from its definition, to check the key derivation independently."""
    sigma = struct.unpack("<4I", b"expand 32-byte k")
    k, n = struct.unpack("<8I", key), struct.unpack("<4I", nonce)
    x = [sigma[0], *k[:4], sigma[1], *n, sigma[2], *k[4:], sigma[3]]

    def rotl(v: int, c: int) -> int:
        return ((v << c) | (v >> (32 - c))) & 0xFFFFFFFF

    def quarter(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
        x[c] ^= rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
        x[d] ^= rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
        x[a] ^= rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)

    for _ in range(10):
        for q in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)):
            quarter(*q)
        for q in ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            quarter(*q)
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def test_shared_key_is_hsalsa20_of_curve25519() -> None:
    ours, theirs = PrivateKey.generate(), PrivateKey.generate()
    point = bindings.crypto_scalarmult(bytes(ours), bytes(theirs.public_key))
    expected = _hsalsa20(point, bytes(16))
    assert wire.shared_key(bytes(ours), bytes(theirs.public_key)) == expected
    assert wire.shared_key(bytes(theirs), bytes(ours.public_key)) == expected


def test_sealed_messages_round_trip_and_reject_tampering() -> None:
    key, nonce = os.urandom(32), os.urandom(24)
    frame = wire.seal(key, 7, Command.LOCK_ACTION, b"\x02payload", nonce)
    assert frame[:24] == nonce and wire.envelope_auth_id(frame) == 7
    assert wire.open_sealed(key, frame) == (7, Command.LOCK_ACTION, b"\x02payload")
    tampered = frame[:-1] + bytes([frame[-1] ^ 1])
    with pytest.raises(wire.WireError):
        wire.open_sealed(key, tampered)
    with pytest.raises(wire.WireError):
        wire.open_sealed(os.urandom(32), frame)


def test_keypad_code_layout_and_time_limits() -> None:
    limit = wire.TimeLimit(
        weekdays=frozenset({0, 6}), from_minute=9 * 60 + 30, until_minute=17 * 60
    )
    entry = wire.KeypadCode(3, 735192, "cleaner", True, limit)
    raw = wire.pack_keypad_code(entry)
    assert raw[:6] == struct.pack("<HI", 3, 735192)
    # time limited, two empty dates, weekdays Monday (bit 6) and Sunday (bit 0), 09:30-17:00
    assert raw[-20:] == bytes([1]) + bytes(14) + bytes([0b1000001, 9, 30, 17, 0])
    assert wire.unpack_keypad_code(raw) == entry
    assert "735192" not in repr(entry)
    tuesday = datetime(2026, 3, 24, 10, 0)
    assert not limit.permits(tuesday)
    assert limit.permits(datetime(2026, 3, 23, 9, 30))
    assert not limit.permits(datetime(2026, 3, 23, 17, 0))


# Pairing


async def test_pairing_needs_pairing_mode(tmp_path: Path) -> None:
    async with harness(tmp_path, **ble_config(locks=1, pairing_mode=False)) as h:
        assert h.lock_ids == [], "nothing is paired with a lock that is not in pairing mode"
        air = control(h).air
        (address,) = air.locks
        driver = ble_driver(h)
        with pytest.raises(NukiRefusal, match="P_NOT_PAIRING"):
            await driver.pair(address)
        assert not air.lock(address).lock.data.authorizations

        air.lock(address).lock.pairing_mode = True  # the button is held
        native = await driver.pair(address)
        assert h.lock_ids == [native]
        assert h.registry.get(native).status.online
        assert air.lock(address).lock.pairing_mode is False
        creds = (tmp_path / "ble-credentials.json").read_text()
        assert driver.credentials(native).key.hex() not in creds, "credentials are sealed"


async def test_pairing_with_a_wrong_authenticator_is_refused(tmp_path: Path) -> None:
    async with harness(tmp_path, **ble_config(locks=1, pairing_mode=False)) as h:
        air = control(h).air
        (address,) = air.locks
        air.lock(address).lock.pairing_mode = True
        backend, _ = air.backends()
        own = PrivateKey.generate()
        async with NukiSession(address, backend=backend, timeout=2, connect_timeout=1) as session:
            await session._plain(
                Command.REQUEST_DATA, struct.pack("<H", Command.PUBLIC_KEY), Command.PUBLIC_KEY
            )
            await session._plain(Command.PUBLIC_KEY, bytes(own.public_key), Command.CHALLENGE)
            with pytest.raises(NukiRefusal, match="P_BAD_AUTHENTICATOR"):
                await session._plain(
                    Command.AUTHORIZATION_AUTHENTICATOR, os.urandom(32), Command.CHALLENGE
                )
        assert not air.lock(address).lock.data.authorizations


def test_pair_command_stores_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lockbridge.yaml"
    config.write_text(
        json.dumps(
            {
                "state_dir": str(tmp_path / "state"),
                "ble": {
                    "enabled": True,
                    "backend": "simulator",
                    "simulator": {"locks": 1, "latency_ms": 0, "seed": 5},
                },
            }
        )
    )
    assert cli_main(["ble", "pair", "--config", str(config), "--timeout", "10"]) == 0
    assert "paired: ble-d405" in capsys.readouterr().out
    sealed = json.loads((tmp_path / "state" / "ble-credentials.json").read_text())
    assert list(sealed) == ["ble-d40500000000"]
    simulated = json.loads((tmp_path / "state" / "ble-simulator.json").read_text())
    assert len(simulated["D4:05:00:00:00:00"]["authorizations"]) == 1
    # The lock has left pairing mode: a second attempt finds nothing to pair.
    assert cli_main(["ble", "pair", "--config", str(config), "--timeout", "0.5"]) == 1


# Encrypted commands


async def _raw(session: NukiSession, frame: bytes) -> tuple[int, bytes]:
    """Send a frame as it is and read the first answer (plain or sealed error)."""
    await session._send(KEYTURNER_USDIO, frame)
    return wire.parse_plain(raw) if (raw := await session._next())[:2] == b"\x12\x00" else (0, raw)


async def test_tampered_and_replayed_messages_are_rejected(tmp_path: Path) -> None:
    async with harness(tmp_path, **ble_config(locks=1)) as h:
        (lock_id,) = h.lock_ids
        driver = ble_driver(h)
        creds = driver.credentials(lock_id)
        peripheral = control(h).peripheral(h.native(lock_id))
        backend, _ = control(h).air.backends()
        assert peripheral.lock.data.lock_state == LockState.LOCKED

        async with NukiSession(creds.address, backend=backend, timeout=2, connect_timeout=1) as s:
            nonce = await s.challenge(creds)
            payload = struct.pack("<BIB", LockAction.UNLOCK, creds.app_id, 0) + nonce
            frame = wire.seal(
                creds.key, creds.auth_id, Command.LOCK_ACTION, payload, os.urandom(24)
            )
            tampered = frame[:40] + bytes([frame[40] ^ 0x01]) + frame[41:]
            await s.challenge(creds)
            _, answer = await _raw(s, tampered)
            _, command, body = wire.open_sealed(creds.key, answer)
            assert (command, body[0]) == (Command.ERROR_REPORT, ErrorCode.K_NOT_AUTHORIZED)
            assert peripheral.lock.data.lock_state == LockState.LOCKED

        async with NukiSession(creds.address, backend=backend, timeout=2, connect_timeout=1) as s:
            # The frame was never sent intact; its nonce belonged to another connection.
            await s._send(KEYTURNER_USDIO, frame)
            _, command, body = wire.open_sealed(creds.key, await s._next())
            assert (command, body[0]) == (Command.ERROR_REPORT, ErrorCode.K_BAD_NONCE)
            assert peripheral.lock.data.lock_state == LockState.LOCKED

            nonce = await s.challenge(creds)
            payload = struct.pack("<BIB", LockAction.UNLOCK, creds.app_id, 0) + nonce
            frame = wire.seal(
                creds.key, creds.auth_id, Command.LOCK_ACTION, payload, os.urandom(24)
            )
            answers = []
            await s._send(KEYTURNER_USDIO, frame)
            for _ in range(3):
                answers.append(wire.open_sealed(creds.key, await s._next())[1])
            assert answers == [Command.STATUS, Command.KEYTURNER_STATES, Command.STATUS]
            assert peripheral.lock.data.lock_state == LockState.UNLOCKED
            peripheral.lock.data.lock_state = LockState.LOCKED

            await s._send(KEYTURNER_USDIO, frame)  # the same message once more
            _, command, body = wire.open_sealed(creds.key, await s._next())
            assert (command, body[0]) == (Command.ERROR_REPORT, ErrorCode.K_BAD_NONCE)
            assert peripheral.lock.data.lock_state == LockState.LOCKED


async def test_connection_drops_mid_command_are_retried(tmp_path: Path) -> None:
    config = ble_config(locks=1, driver={"retries": 2, "retry_delay": 0.01})
    async with harness(tmp_path, **config) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        await h.settle()
        before = sim.radio_operations(native)
        sim.lose_frames(native, 2)
        assert await h.driver.unlock(native) is True
        assert sim.peripheral(native).lock.data.lock_state == LockState.UNLOCKED
        assert sim.radio_operations(native) == before + 1, "the action ran once"
        await h.wait_event("lock.unlocked", method="remote")

        sim.lose_frames(native, 3)  # more drops than retries
        with pytest.raises(TransientError, match=r"dropped|disconnected"):
            await h.driver.lock(native)
        assert sim.peripheral(native).lock.data.lock_state == LockState.UNLOCKED
        sim.lose_frames(native, 0)
        assert await h.driver.lock(native) is True


async def test_a_code_added_whose_answer_was_lost_is_not_added_twice(tmp_path: Path) -> None:
    config = ble_config(locks=1, driver={"retries": 2, "retry_delay": 0.01})
    async with harness(tmp_path, **config) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        await h.settle()
        sim.lose_answers(native, 1)
        data = await h.ok("access_code/create", lock_id=lock_id, code=PIN_A)
        await h.settle()
        slots = await sim.slots(native)
        assert [(s["slot"], s["code_id"], s["code"]) for s in slots] == [(1, 1, PIN_A)]
        stored = await h.ok("access_code/get", access_code_id=data["access_code"]["access_code_id"])
        assert stored["access_code"]["status"] == "set" and stored["access_code"]["slot"] == 1


async def test_a_code_from_the_nuki_app_is_unmanaged_in_its_slot(tmp_path: Path) -> None:
    async with harness(tmp_path, **ble_config(locks=1)) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        await h.settle()
        await h.sim.add_code(native, 3, PIN_B)
        await h.wait_event("access_code.unmanaged.detected", slot=3)
        await h.sim.keypad_entry(native, PIN_B)
        event = await h.wait_event("lock.unlocked", method="keypad")
        assert event.fields["slot"] == 3 and "unmanaged_access_code_id" in event.fields
        # The bridge's next code gets the lowest free slot and whatever id the lock picks.
        created = await h.ok("access_code/create", lock_id=lock_id, code=PIN_A)
        await h.settle()
        slots = {s["slot"]: s for s in await h.sim.slots(native)}
        code_id = created["access_code"]["access_code_id"]
        stored = await h.ok("access_code/get", access_code_id=code_id)
        assert stored["access_code"]["slot"] == 1
        assert (slots[1]["code_id"], slots[1]["code"]) == (4, PIN_A)
        assert (slots[3]["code_id"], slots[3]["code"]) == (3, PIN_B)


# What the lock does by itself


async def test_time_limited_code_is_enforced_by_the_lock(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with harness(tmp_path, clock=clock, **ble_config(locks=1)) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        sim.air.clock = clock.now  # the lock's own clock runs with the test's
        starts, ends = START + timedelta(hours=1), START + timedelta(hours=3)
        data = await h.ok(
            "access_code/create",
            lock_id=lock_id,
            code=PIN_A,
            starts_at=starts.isoformat(),
            ends_at=ends.isoformat(),
        )
        code_id = data["access_code"]["access_code_id"]
        await h.settle()
        peripheral = sim.peripheral(native)

        await sim.keypad_entry(native, PIN_A)  # too early: the lock refuses by itself
        assert peripheral.lock.data.lock_state == LockState.LOCKED
        await sim.keypad_entry(native, PIN_B)  # not a code at all
        assert peripheral.lock.data.lock_state == LockState.LOCKED

        await clock.set(starts + timedelta(minutes=5))
        await sim.keypad_entry(native, PIN_A)
        assert peripheral.lock.data.lock_state == LockState.UNLOCKED
        event = await h.wait_event("lock.unlocked", method="keypad")
        assert event.fields["access_code_id"] == code_id and event.fields["slot"] == 1
        assert "lock.unlocked" not in [e.event_type for e in h.collect() if e.occurred_at < starts]


async def test_recurring_window_is_enforced_by_the_lock(tmp_path: Path) -> None:
    clock = FakeClock(START)  # Tuesday 08:00 in Berlin
    async with harness(tmp_path, clock=clock, **ble_config(locks=1)) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        sim.air.clock = clock.now
        window = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
        await h.ok("access_code/create", lock_id=lock_id, code=PIN_A, schedule=window)
        await h.settle()
        lock = sim.peripheral(native).lock
        for moment, opens in (
            (START, False),  # 08:00
            (START + timedelta(hours=2, minutes=1), True),  # 10:01
            (START + timedelta(hours=4), False),  # 12:00
            (START + timedelta(days=1, hours=2, minutes=1), False),  # Wednesday 10:01
        ):
            lock.data.lock_state = LockState.LOCKED
            await clock.set(moment)
            await sim.keypad_entry(native, PIN_A)
            assert (lock.data.lock_state == LockState.UNLOCKED) is opens, moment


async def test_state_door_battery_and_manual_use(tmp_path: Path) -> None:
    async with harness(tmp_path, **ble_config(locks=1)) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        assert h.registry.get(lock_id).protocol == "ble"
        caps = h.registry.get(lock_id).identity.capabilities
        assert caps.code_rules is not None and caps.code_rules.forbidden_prefixes == ("12",)

        await sim.manual(native, lock=False)
        event = await h.wait_event("lock.unlocked", method="manual")
        assert "slot" not in event.fields
        await h.wait_for(lambda: h.registry.get(lock_id).status.lock_state.value == "unlocked")

        await sim.door(native, is_open=True)
        await h.wait_event("door.opened")
        await sim.battery(native, 8)
        await h.wait_event("device.low_battery")
        battery = h.registry.get(lock_id).status.battery_status
        assert battery is not None and battery.value == "critical"

        response = await h.request("lock/lock", lock_id=lock_id)
        assert response["status"] == "ok" and response["data"]["confirmed"] is True
        await h.wait_event("lock.locked", method="remote")
        assert sim.peripheral(native).lock.data.lock_state == LockState.LOCKED

        await h.settle()
        before = sim.radio_operations(native)
        await clock_idle()
        assert sim.radio_operations(native) == before, "an idle lock is not polled"

        await sim.set_online(native, online=False)
        with pytest.raises(LockOfflineError, match="unreachable"):
            await h.driver.unlock(native)
        await h.wait_online(lock_id, online=False)
        await sim.set_online(native, online=True)
        await h.wait_online(lock_id)


async def clock_idle() -> None:
    await asyncio.sleep(0.3)


def test_native_id_and_address_round_trip() -> None:
    assert address_of(native_id("D4:0B:00:00:00:01")) == "D4:0B:00:00:00:01"


async def test_a_silent_lock_goes_offline_without_radio_traffic(tmp_path: Path) -> None:
    config = ble_config(locks=1, driver={"offline_after": 0.3})
    async with harness(tmp_path, **config) as h:
        (lock_id,) = h.lock_ids
        native = h.native(lock_id)
        sim = control(h)
        await h.settle()
        before = sim.radio_operations(native)
        await sim.set_online(native, online=False)
        await h.wait_online(lock_id, online=False)
        await h.wait_event("device.disconnected")
        assert sim.radio_operations(native) == before
        await sim.set_online(native, online=True)
        await h.wait_online(lock_id)
