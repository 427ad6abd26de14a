"""Hypothesis-generated payloads on every request topic never crash the daemon."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DaemonFactory
from tests.services import Daemon, Mosquitto

BASE = "fuzz"
COMMANDS = [
    "health_check",
    "lock/list",
    "lock/get",
    "lock/lock",
    "lock/unlock",
    "event/list",
    "no/such",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(
    st.sampled_from(
        ["lock_id", "transaction", "expires_at", "limit", "since", "event_types", "action", "x"]
    ),
    json_values,
    max_size=5,
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    objects.map(lambda v: json.dumps(v).encode()),
)


class SyncClient:
    """A paho client whose responses are counted, for use inside hypothesis' synchronous tests."""

    def __init__(self, port: int) -> None:
        self.responses = 0
        self._cond = threading.Condition()
        api_version = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]
        self.client = paho.Client(api_version, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{BASE}/bridge/response/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._cond:
            self.responses += 1
            self._cond.notify_all()

    def wait_responses(self, count: int, timeout: float = 20) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.responses >= count, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fuzz_target(
    mosquitto: Mosquitto, make_daemon: DaemonFactory
) -> Iterator[tuple[Daemon, SyncClient]]:
    daemon = make_daemon(base=BASE)
    client = SyncClient(mosquitto.port)
    try:
        # The daemon subscribes once it is up: ask until it answers.
        for _ in range(60):
            client.client.publish(f"{BASE}/bridge/request/health_check", "{}", qos=1)
            if client.wait_responses(1, timeout=0.5):
                break
        assert client.wait_responses(1, timeout=5), "the daemon never answered"
        time.sleep(0.5)  # let answers to the extra pings arrive before counting
        yield daemon, client
    finally:
        client.close()


def test_fuzzed_requests_never_crash_the_daemon(fuzz_target: tuple[Daemon, SyncClient]) -> None:
    daemon, client = fuzz_target
    sent = [client.responses]

    @settings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(command=st.sampled_from(COMMANDS), payload=payloads)
    def publish(command: str, payload: bytes) -> None:
        client.client.publish(f"{BASE}/bridge/request/{command}", payload, qos=1)
        sent[0] += 1

    publish()
    assert client.wait_responses(sent[0]), (
        f"{sent[0] - client.responses} requests were never answered"
    )
    assert daemon.alive()
    for topic in (f"{BASE}/locks/x/set", f"{BASE}/simulator/request/keypad_entry"):
        client.client.publish(topic, b"\x00garbage", qos=1)
    client.client.publish(f"{BASE}/bridge/request/health_check", "{}", qos=1)
    assert client.wait_responses(sent[0] + 1)
    assert daemon.alive()
