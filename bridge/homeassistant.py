"""Home Assistant MQTT discovery, device-based: one config message per lock."""

from __future__ import annotations

from typing import Any

from bridge import __version__
from bridge.model import EventType, Lock

# The event entity shows what a person did at the door.
DOOR_EVENTS = [
    EventType.LOCK_LOCKED,
    EventType.LOCK_UNLOCKED,
    EventType.LOCK_ACCESS_DENIED,
    EventType.LOCK_JAMMED,
    EventType.DEVICE_TAMPERED,
]


def discovery_topic(prefix: str, base: str, lock: Lock) -> str:
    return f"{prefix}/device/{base.replace('/', '_')}_{lock.lock_id}/config"


def discovery_payload(base: str, lock: Lock) -> dict[str, Any]:
    uid = f"{base.replace('/', '_')}_{lock.lock_id}"
    state_topic = f"{base}/locks/{lock.lock_id}"
    caps = lock.identity.capabilities
    components: dict[str, dict[str, Any]] = {
        "lock": {
            "platform": "lock",
            "unique_id": f"{uid}_lock",
            "name": None,
            "state_topic": state_topic,
            "value_template": "{{ value_json.lock_state }}",
            "state_locked": "locked",
            "state_unlocked": "unlocked",
            "state_locking": "locking",
            "state_unlocking": "unlocking",
            "state_jammed": "jammed",
        },
        "battery": {
            "platform": "sensor",
            "unique_id": f"{uid}_battery",
            "device_class": "battery",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "state_topic": state_topic,
            "value_template": "{{ value_json.battery_level }}",
        },
        "door": {
            "platform": "binary_sensor",
            "unique_id": f"{uid}_door",
            "device_class": "door",
            "state_topic": state_topic,
            "value_template": (
                "{% if value_json.door_open is none %}None"
                "{% elif value_json.door_open %}ON{% else %}OFF{% endif %}"
            ),
        },
        "activity": {
            "platform": "event",
            "unique_id": f"{uid}_activity",
            "name": "Activity",
            "state_topic": f"{state_topic}/event",
            "event_types": [event.value for event in DOOR_EVENTS],
        },
    }
    if caps.can_remotely_lock or caps.can_remotely_unlock:
        components["lock"].update(
            command_topic=f"{state_topic}/set", payload_lock="LOCK", payload_unlock="UNLOCK"
        )
    return {
        "device": {
            "identifiers": [uid],
            "name": lock.name,
            "manufacturer": lock.identity.manufacturer,
            "model": lock.identity.model,
        },
        "origin": {"name": "lockbridge", "sw_version": __version__},
        "availability": [
            {"topic": f"{base}/bridge/state", "value_template": "{{ value_json.state }}"},
            {"topic": f"{state_topic}/availability", "value_template": "{{ value_json.state }}"},
        ],
        "availability_mode": "all",
        "components": components,
        "qos": 1,
    }
