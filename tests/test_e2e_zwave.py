"""End to end: the daemon in a subprocess with Zigbee and Z-Wave locks side by side, over MQTT.

The daemon connects to the session's Z-Wave JS server exactly as it would to Z-Wave JS UI.
"""

from __future__ import annotations

from simulators.zwave.control import ZWaveSimulatorControl
from simulators.zwave.stack import ZWaveStack
from tests.conftest import DaemonFactory
from tests.probe import probe
from tests.services import TEST_PINS, Mosquitto

BASE = "lockbridge"


async def test_zwave_locks_next_to_zigbee_ones_over_mqtt(
    mosquitto: Mosquitto, make_daemon: DaemonFactory, fresh_zwave: ZWaveStack
) -> None:
    make_daemon(settings={"zwave": {"enabled": True, "url": fresh_zwave.url, "nodes": [2, 3]}})
    async with probe(mosquitto.port) as p:
        await p.wait_for(f"{BASE}/bridge/state", lambda s: s == {"state": "online"}, timeout=60)
        locks = (await p.request("lock/list"))["data"]["locks"]
        assert sorted(lock["protocol"] for lock in locks) == ["zigbee", "zigbee", "zwave", "zwave"]
        zwave = next(lock for lock in locks if lock["protocol"] == "zwave")
        lock_id = zwave["lock_id"]
        assert zwave["online"] is True and zwave["capabilities"]["has_keypad"] is True
        info = await p.wait_for(f"{BASE}/bridge/info", lambda i: "zwave" in i["drivers"])
        assert info["drivers"]["zwave"]["server"] == fresh_zwave.url

        response = await p.request("lock/unlock", {"lock_id": lock_id})
        assert response["data"]["confirmed"] is True
        await p.wait_for(f"{BASE}/locks/{lock_id}", lambda s: s["lock_state"] == "unlocked")
        await p.request("lock/lock", {"lock_id": lock_id})

        created = await p.request(
            "access_code/create", {"lock_id": lock_id, "code": TEST_PINS[0], "name": "guest"}
        )
        assert created["status"] == "ok", created
        code_id = created["data"]["access_code"]["access_code_id"]
        await p.wait_for(
            f"{BASE}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "access_code.set_on_device",
            timeout=30,
        )
        sim = ZWaveSimulatorControl(fresh_zwave.control_port)
        await sim.keypad_entry(zwave["lock_id"], TEST_PINS[0])
        event = await p.wait_for(
            f"{BASE}/locks/{lock_id}/event",
            lambda e: e["event_type"] == "lock.unlocked" and e["method"] == "keypad",
        )
        assert event["access_code_id"] == code_id and event["slot"] == 1
