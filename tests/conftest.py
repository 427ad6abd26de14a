from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.zwave.stack import ZWaveStack, missing_packages
from tests import zwave_support
from tests.services import Daemon, Mosquitto, daemon_config, secrets_in


class _PinCanary(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if secrets_in(text):
            self.leaks.append(f"{record.name}: {text}")


@pytest.fixture(autouse=True)
def pin_canary() -> Iterator[None]:
    """Fails the test if a known test PIN or web pass token reaches any log record."""
    handler = _PinCanary()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert not handler.leaks, f"test PIN or token in log records: {handler.leaks}"


@pytest.fixture
async def no_task_leak() -> AsyncIterator[None]:
    yield
    # Let cancelled tasks finish unwinding before judging.
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"tasks left running: {[t.get_name() for t in leftover]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("asyncio") is not None:
            item.fixturenames.insert(0, "no_task_leak")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def make_daemon(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[DaemonFactory]:
    """Configure (and on request start) lockbridge daemons on simulated Zigbee locks."""
    started: list[Daemon] = []

    def factory(*, start: bool = True, env: dict[str, str] | None = None, **options: Any) -> Daemon:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = Daemon(daemon_config(workdir, mosquitto.port, **options), env)
        if start:
            daemon.start()
        started.append(daemon)
        return daemon

    yield factory
    for daemon in started:
        daemon.stop()
        log = daemon.log_text()
        assert not secrets_in(log), f"test PIN or token in the daemon log {daemon.log_path}"
        assert "Traceback" not in log, f"the daemon logged a traceback:\n{log[-4000:]}"


@pytest.fixture(scope="session")
def zwave_stack() -> Iterator[ZWaveStack]:
    """The simulated Z-Wave JS stack, started once per session (see tests/zwave_support.py)."""
    reason = missing_packages()
    assert reason is None, (
        f"the Z-Wave tests need the npm stack: {reason}; run scripts/setup --test"
    )
    stack = zwave_support.start_stack()
    try:
        yield stack
    finally:
        zwave_support.stop_stack()


@pytest.fixture
def protocol_stack(protocol: str, request: pytest.FixtureRequest) -> None:
    """Whatever a parametrised `protocol`'s simulator needs running (Z-Wave: the npm stack)."""
    if protocol == "zwave":
        request.getfixturevalue("fresh_zwave")


@pytest.fixture
def fresh_zwave(zwave_stack: ZWaveStack) -> ZWaveStack:
    """The session's stack, its locks reset for this test."""
    zwave_support.reset_all()
    return zwave_stack
