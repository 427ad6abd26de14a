"""Z-Wave specifics: the mapping, the real Z-Wave JS stack going away and coming back, dead
nodes, bulk code writes, a real device fingerprint, and proof that only loopback is used."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from zwave_js_server.const import NodeStatus
from zwave_js_server.exceptions import FailedZWaveCommand, NotConnected

from bridge.config import ZWaveConfig, ZWaveSimulatorConfig, parse_config
from bridge.driver import SlotWrite
from bridge.errors import (
    CodeSlotError,
    ConfigError,
    DeviceTimeoutError,
    LockOfflineError,
    TransientError,
)
from bridge.model import EventType, LockState, Method
from drivers.zwave import mapping
from drivers.zwave.driver import ZWaveDriver
from drivers.zwave.errors import translate
from simulators.zwave.control import ZWaveSimulatorControl
from simulators.zwave.stack import ZWaveStack
from tests.harness import harness
from tests.services import TEST_PINS
from tests.zwave_support import zwave_config

PIN_A, PIN_B, PIN_C = TEST_PINS

# Pure mapping


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0xFF, LockState.LOCKED),
        (0x00, LockState.UNLOCKED),
        (0x01, LockState.UNLOCKED),
        (0x10, LockState.UNLOCKED),  # inside handles unsecured
        (0x11, LockState.UNLOCKED),
        (0x20, LockState.UNLOCKED),  # outside handles unsecured
        (0x21, LockState.UNLOCKED),
        (0xFE, LockState.UNKNOWN),
        (None, LockState.UNKNOWN),
    ],
)
def test_door_lock_modes_as_raw_numbers(mode: int | None, expected: LockState) -> None:
    assert mapping.lock_state(mode) is expected


def test_keypad_unlock_carries_the_slot() -> None:
    meaning = mapping.notification(mapping.ACCESS_CONTROL, 0x06, {"userId": 4})
    assert meaning.event is not None
    assert meaning.event.event_type is EventType.LOCK_UNLOCKED
    assert meaning.event.fields == {"method": Method.KEYPAD.value, "slot": 4}
    assert meaning.lock_state is LockState.UNLOCKED


@pytest.mark.parametrize(
    ("kind", "event", "expected"),
    [
        (mapping.ACCESS_CONTROL, 0x01, EventType.LOCK_LOCKED),
        (mapping.ACCESS_CONTROL, 0x04, EventType.LOCK_UNLOCKED),
        (mapping.ACCESS_CONTROL, 0x09, EventType.LOCK_LOCKED),
        (mapping.ACCESS_CONTROL, 0x0B, EventType.LOCK_JAMMED),
        (mapping.ACCESS_CONTROL, 0x13, EventType.LOCK_ACCESS_DENIED),
        (mapping.HOME_SECURITY, 0x03, EventType.DEVICE_TAMPERED),
    ],
)
def test_notification_events(kind: int, event: int, expected: EventType) -> None:
    meaning = mapping.notification(kind, event, None)
    assert meaning.event is not None and meaning.event.event_type is expected


def test_codes_added_or_deleted_at_the_lock_name_the_slot() -> None:
    added = mapping.notification(mapping.ACCESS_CONTROL, 0x0E, {"userId": 7})
    assert added.codes_changed and added.slot == 7 and added.event is None
    everything = mapping.notification(mapping.ACCESS_CONTROL, 0x0C, None)
    assert everything.codes_changed and everything.slot is None


def test_library_errors_become_lockbridge_errors() -> None:
    def failed(code: int) -> FailedZWaveCommand:
        return FailedZWaveCommand("id", code, "zwave error message")

    assert isinstance(translate(failed(204), "lock", "n", 5), LockOfflineError)
    assert isinstance(translate(failed(200), "lock", "n", 5), TransientError)
    refused = translate(failed(322), "set code", "n", 5)
    assert isinstance(refused, CodeSlotError) and refused.reason == "code_constraints_violated"
    assert isinstance(translate(NotConnected(), "lock", "n", 5), LockOfflineError)
    assert isinstance(translate(TimeoutError(), "lock", "n", 5), DeviceTimeoutError)


# The real stack


async def test_server_restart_mid_operation_reconnects_and_resyncs(
    fresh_zwave: ZWaveStack, tmp_path: Path
) -> None:
    async with harness(tmp_path, **zwave_config()) as h:
        await h.settle()
        lock, other = h.lock_ids
        codes = [
            (await h.ok("access_code/create", lock_id=lock, code=pin))["access_code"]
            for pin in (PIN_A, PIN_B)
        ]
        unlocking = asyncio.create_task(h.request("lock/unlock", lock_id=other))
        await asyncio.sleep(0)
        await asyncio.to_thread(fresh_zwave.stop_server)
        answer = await unlocking
        assert answer["status"] in ("ok", "error")
        await h.wait_online(lock, online=False)
        await h.wait_online(other, online=False)
        # While the server is away, a code is programmed at the lock itself.
        await h.sim.add_code(h.native(lock), 9, PIN_C)

        await asyncio.to_thread(fresh_zwave.start_server)
        await h.wait_for(lambda: h.registry.get(lock).status.online, timeout=30)
        await h.wait_for(lambda: h.registry.get(other).status.online, timeout=30)
        await h.settle(timeout=30)
        slots = await h.true_slots(lock)
        assert sorted(s["code"] for s in slots.values()) == sorted([PIN_A, PIN_B, PIN_C])
        for code in codes:
            stored = await h.ok("access_code/get", access_code_id=code["access_code_id"])
            assert stored["access_code"]["status"] == "set"
        # The resync after reconnecting found the code programmed during the outage.
        unmanaged = (await h.ok("unmanaged_access_code/list", lock_id=lock))[
            "unmanaged_access_codes"
        ]
        assert [u["slot"] for u in unmanaged] == [9]
        assert (await h.ok("lock/unlock", lock_id=other))["confirmed"] is True


async def test_jam_and_tamper_reach_the_bridge(fresh_zwave: ZWaveStack, tmp_path: Path) -> None:
    async with harness(tmp_path, **zwave_config()) as h:
        await h.settle()
        lock, other = h.lock_ids
        sim = h.sim
        assert isinstance(sim, ZWaveSimulatorControl)
        h.collect()
        h.events.clear()
        await sim.jam(h.native(lock))
        await h.wait_event("lock.jammed")
        assert h.registry.get(lock).status.lock_state is LockState.JAMMED
        await sim.tamper(h.native(lock))
        tampered = await h.wait_event("device.tampered")
        assert tampered.lock_id == lock
        assert {e.lock_id for e in h.events} == {lock}
        assert h.registry.get(other).status.lock_state is LockState.LOCKED


async def test_a_code_the_lock_refuses_as_duplicate_is_not_confirmed(
    fresh_zwave: ZWaveStack, tmp_path: Path
) -> None:
    async with harness(tmp_path, **zwave_config()) as h:
        await h.settle()
        lock = h.lock_ids[0]
        native = h.native(lock)
        await h.sim.add_code(native, 1, PIN_A)
        await h.driver.write_slot(native, SlotWrite(slot=2, code=PIN_A))
        driver = h.driver
        assert isinstance(driver, ZWaveDriver)
        with pytest.raises(CodeSlotError) as refused:
            for _ in range(50):  # the refusal is an event that follows the write
                await driver.read_slot(native, 2)
                await asyncio.sleep(0.02)
        assert refused.value.reason == "duplicate_code_on_device"
        assert 2 not in await h.true_slots(lock)


async def test_dead_node_fails_fast_and_comes_back(fresh_zwave: ZWaveStack, tmp_path: Path) -> None:
    async with harness(tmp_path, **zwave_config()) as h:
        await h.settle()
        lock, _ = h.lock_ids
        native = h.native(lock)
        driver = h.driver
        assert isinstance(driver, ZWaveDriver)
        await h.sim.set_online(native, online=False)
        with pytest.raises(LockOfflineError, match="unreachable"):
            await driver.lock(native)
        node = driver.zwave_node(native)
        assert node is not None
        await h.wait_for(lambda: node.status == NodeStatus.DEAD)
        assert h.registry.get(lock).status.online is False
        await h.sim.set_online(native, online=True)
        await h.wait_for(lambda: node.status == NodeStatus.ALIVE)
        await h.wait_online(lock)
        assert await driver.lock(native) is True


async def test_bulk_writes_only_where_the_lock_takes_several_codes(
    fresh_zwave: ZWaveStack, tmp_path: Path
) -> None:
    writes = [
        SlotWrite(slot=slot, code=pin) for slot, pin in zip((1, 2, 3), TEST_PINS, strict=True)
    ]
    for options, frames in (({"bulk_codes": True}, 1), ({}, len(writes))):
        async with harness(tmp_path / str(frames), **zwave_config(**options)) as h:
            await h.settle()
            lock = h.lock_ids[0]
            native = h.native(lock)
            before = h.frames(lock)
            await h.driver.write_slots(native, writes)
            assert h.frames(lock) - before == frames
            slots = await h.true_slots(lock)
            assert {n: s["code"] for n, s in slots.items()} == {1: PIN_A, 2: PIN_B, 3: PIN_C}


async def test_the_manager_sends_waiting_codes_in_bulk(
    fresh_zwave: ZWaveStack, tmp_path: Path
) -> None:
    async with harness(tmp_path, **zwave_config(bulk_codes=True)) as h:
        await h.settle()
        lock = h.lock_ids[0]
        native = h.native(lock)
        await h.sim.set_online(native, online=False)
        await h.request("lock/lock", lock_id=lock)  # the bridge notices the lock is away
        await h.wait_online(lock, online=False)
        for pin in TEST_PINS:
            await h.ok("access_code/create", lock_id=lock, code=pin)
        before = h.frames(lock)
        await h.sim.set_online(native, online=True)
        await h.wait_online(lock)
        await h.settle(timeout=30)
        slots = await h.true_slots(lock)
        assert sorted(s["code"] for s in slots.values()) == sorted(TEST_PINS)
        ops = h.manager.radio_operations(lock)
        # One Extended User Code Set for all three, then a confirming read of each.
        assert ops["bulk_write"] == 1 and ops["read"] == 3 and "write" not in ops
        assert h.frames(lock) - before == 1 + 3


async def test_real_fingerprint_takes_the_device_database(
    fresh_zwave: ZWaveStack, tmp_path: Path
) -> None:
    async with harness(tmp_path, **zwave_config(real_model=True)) as h:
        lock = h.registry.get(h.lock_ids[0])
        assert lock.identity.manufacturer == "Yale"
        assert lock.identity.model is not None and "YRD256" in lock.identity.model
        # The mock says 10 slots; the device database knows this model has 251.
        assert lock.identity.capabilities.slot_range == (1, 251)


async def test_nothing_but_loopback(fresh_zwave: ZWaveStack) -> None:
    guard = await ZWaveSimulatorControl(fresh_zwave.control_port).loopback_guard()
    # mock-server tried to advertise itself over mDNS and reached the stub; no UDP at all.
    assert guard == {"mdnsStubbed": True, "udpAttempts": 0, "mdnsAdvertisements": 1}
    pids = fresh_zwave.pids()
    assert set(pids) == {"mock-server", "zwave-server"}
    for name, pid in pids.items():
        sockets = _socket_inodes(pid)
        assert sockets, f"{name} has no sockets?"
        assert not sockets & _inodes("udp") and not sockets & _inodes("udp6"), name
        for local, remote in _tcp_endpoints(sockets):
            assert local.startswith("127.0.0.1:"), f"{name} bound {local}"
            assert remote.startswith(("127.0.0.1:", "0.0.0.0:")), f"{name} talks to {remote}"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _rows(table: str) -> list[list[str]]:
    with open(f"/proc/net/{table}") as rows:
        return [line.split() for line in rows.read().splitlines()[1:]]


def _inodes(table: str) -> set[str]:
    return {row[9] for row in _rows(table)}


def _tcp_endpoints(sockets: set[str]) -> list[tuple[str, str]]:
    def address(hex_address: str) -> str:
        ip, port = hex_address.split(":")
        octets = [str(int(ip[i : i + 2], 16)) for i in range(6, -1, -2)]
        return f"{'.'.join(octets)}:{int(port, 16)}"

    found = [(address(r[1]), address(r[2])) for r in _rows("tcp") if r[9] in sockets]
    # Nothing on IPv6 either (not even ::1: the stack is told 127.0.0.1 throughout).
    assert not sockets & {r[9] for r in _rows("tcp6")}
    return found


def test_example_config_documents_the_zwave_defaults() -> None:
    root = Path(__file__).resolve().parent.parent
    config = parse_config((root / "config.example.yaml").read_text(), "config.example.yaml")
    assert config.zwave == ZWaveConfig()
    with pytest.raises(ConfigError, match=r"zwave\.url"):
        parse_config("zwave:\n  url: http://127.0.0.1:3000\n")


async def test_driver_started_simulator_as_in_the_demo(tmp_path: Path) -> None:
    """With `simulator.enabled` the driver runs the stack itself and offers its control."""
    config = ZWaveConfig(enabled=True, simulator=ZWaveSimulatorConfig(enabled=True, locks=1))
    async with harness(tmp_path, zwave=config, zigbee={"enabled": False}) as h:
        driver = h.driver
        assert isinstance(driver, ZWaveDriver)
        assert driver.status()["server"] == "simulator"
        stack = driver.stack
        assert isinstance(stack, ZWaveStack)
        pids = stack.pids()
        (lock,) = h.lock_ids
        await h.sim.add_code(h.native(lock), 4, PIN_A)
        await h.sim.keypad_entry(h.native(lock), PIN_A)
        event = await h.wait_event("lock.unlocked", method="keypad")
        assert event.fields["slot"] == 4
    assert stack.pids() == {}
    assert pids and not any(_running(pid) for pid in pids.values())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
