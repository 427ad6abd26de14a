"""Nuki locks beside Zigbee ones in the daemon, over MQTT, with the simulator control API."""

from __future__ import annotations

from tests.conftest import DaemonFactory
from tests.probe import probe
from tests.services import NUKI_TEST_PINS, Mosquitto

BLE = {
    "enabled": True,
    "backend": "simulator",
    "pair_in_pairing_mode": True,
    "command_timeout": 2,
    "connect_timeout": 1,
    "simulator": {"locks": 2, "latency_ms": 2, "seed": 3},
}
CODES = {"scan_delay": 0, "retry_base_delay": 0.05, "retry_max_delay": 0.5}


async def test_nuki_locks_over_mqtt(mosquitto: Mosquitto, make_daemon: DaemonFactory) -> None:
    base = "blee2e"
    pin = NUKI_TEST_PINS[0]
    make_daemon(base=base, locks=1, settings={"ble": BLE, "codes": CODES})
    async with probe(mosquitto.port, base=base) as p:
        await p.wait_for(f"{base}/bridge/state", lambda s: s == {"state": "online"}, timeout=30)
        locks = (await p.request("lock/list"))["data"]["locks"]
        assert sorted(lock["protocol"] for lock in locks) == ["ble", "ble", "zigbee"]
        nuki = next(lock for lock in locks if lock["protocol"] == "ble")
        lock_id = nuki["lock_id"]
        assert nuki["manufacturer"] == "Nuki" and nuki["online"] is True
        assert nuki["capabilities"]["code_rules"]["forbidden_prefixes"] == ["12"]

        unlocked = await p.request("lock/unlock", {"lock_id": lock_id})
        assert unlocked["status"] == "ok" and unlocked["data"]["confirmed"] is True
        await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "lock.unlocked" and e["method"] == "remote",
        )
        await p.request("lock/lock", {"lock_id": lock_id})

        refused = await p.request("access_code/create", {"lock_id": lock_id, "code": "123456"})
        assert refused["error"]["code"] == "code_constraints_violated"
        created = await p.request("access_code/create", {"lock_id": lock_id, "code": pin})
        code_id = created["data"]["access_code"]["access_code_id"]
        await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "access_code.set_on_device",
        )
        slots = await p.sim("slots", {"lock_id": lock_id, "reveal": True})
        assert [(s["slot"], s["code"]) for s in slots["slots"]] == [(1, pin)]
        await p.sim("keypad_entry", {"lock_id": lock_id, "pin": pin})
        used = await p.wait_for(
            f"{base}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "lock.unlocked" and e.get("access_code_id") == code_id,
        )
        assert used["method"] == "keypad" and used["slot"] == 1
        state = await p.wait_for(f"{base}/locks/{lock_id}", lambda s: s["lock_state"] == "unlocked")
        assert state["protocol"] == "ble"
