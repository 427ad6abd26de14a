"""The real Z-Wave JS stack on loopback: zwave-js `mock-server` and `@zwave-js/server`.

`mock-server` plays the controller stick and the lock nodes (see mock-locks.cjs);
`zwave-server` drives it over tcp://127.0.0.1 exactly as it would drive a USB stick and
serves the Z-Wave JS websocket API that the driver connects to. Both run with
loopback-guard.cjs preloaded (no mDNS, no UDP at all). Start and stop are blocking calls
(subprocesses and port probes), so the same stack serves the tests, from any event loop,
and `lockbridge demo`, through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.config import ZWaveSimulatorConfig

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
MOCK_SERVER = NODE_MODULES / "zwave-js" / "bin" / "mock-server.cjs"
ZWAVE_SERVER = NODE_MODULES / "@zwave-js" / "server" / "dist-esm" / "bin" / "server.js"
GUARD = HERE / "loopback-guard.cjs"
MOCK_CONFIG = HERE / "mock-locks.cjs"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


class StackError(RuntimeError):
    """The simulated Z-Wave stack could not be started."""


@dataclass(frozen=True, slots=True)
class LockSpec:
    """One simulated lock node."""

    id: int
    slots: int = 10
    masked: bool = False
    bulk: bool = False
    week_day_slots: int = 7
    year_day_slots: int = 2
    battery: int = 90
    # "plain" keeps the mocked capabilities; "yale" is a real fingerprint (Yale YRD256)
    # that makes the device config database describe the lock.
    model: str = "plain"
    codes: dict[int, str] = field(default_factory=dict, repr=False)


def missing_packages() -> str | None:
    """Why the npm stack cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (Debian package 'nodejs')"
    if not MOCK_SERVER.exists() or not ZWAVE_SERVER.exists():
        return f"the npm packages are not installed: run 'npm ci' in {HERE}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"not listening on port {port} in time; see {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ZWaveStack:
    """Both processes, on free loopback ports, with their state in a temporary folder."""

    def __init__(self, locks: list[LockSpec], workdir: Path | None = None) -> None:
        self.locks = locks
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lockbridge-zwave-"))
        self.mock_port = 0
        self.server_port = 0
        self.control_port = 0
        self._mock: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.server_port}"

    def start(self) -> None:
        reason = missing_packages()
        if reason:
            raise StackError(reason)
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mock_port, self.server_port = free_port(), free_port()
        try:
            self._start_mock(deadline)
            self._start_server(deadline)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began

    def _start_mock(self, deadline: float) -> None:
        control_file = self.workdir / "control-port"
        control_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "LOCKBRIDGE_ZWAVE_LOCKS": json.dumps([_spec_json(lock) for lock in self.locks]),
            "LOCKBRIDGE_ZWAVE_CONTROL_FILE": str(control_file),
        }
        self._mock = self._spawn(
            "mock-server",
            [str(MOCK_SERVER), "-i", LOOPBACK, "-p", str(self.mock_port), "-c", str(MOCK_CONFIG)],
            env,
        )
        _wait_for_port(self.mock_port, self._mock, self.workdir / "mock-server.log", deadline)
        while not control_file.exists() or not control_file.read_text().strip():
            if time.monotonic() > deadline:
                raise StackError("the mock's control channel did not open")
            time.sleep(0.02)
        self.control_port = int(control_file.read_text())

    def _start_server(self, deadline: float) -> None:
        config = self.workdir / "zwave-server.json"
        if not config.exists():
            config.write_text(json.dumps(server_options(self.workdir / "cache")))
        self._server = self._spawn(
            "zwave-server",
            [
                str(ZWAVE_SERVER),
                f"tcp://{LOOPBACK}:{self.mock_port}",
                "--config",
                str(config),
                "--port",
                str(self.server_port),
                "--host",
                LOOPBACK,
                "--disable-dns-sd",
            ],
            dict(os.environ),
        )
        _wait_for_port(self.server_port, self._server, self.workdir / "zwave-server.log", deadline)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            ["node", "--require", str(GUARD), *args],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def wait_interviewed(self) -> float:
        """Wait until zwave-server has interviewed every node; return how long that took."""
        import aiohttp  # noqa: PLC0415 - only the tests wait here; the demo's driver waits itself
        from zwave_js_server.client import Client  # noqa: PLC0415

        began = time.monotonic()
        async with aiohttp.ClientSession() as session:
            client = Client(self.url, session)
            async with asyncio.timeout(START_TIMEOUT):
                await client.connect()
                ready = asyncio.Event()
                listener = asyncio.create_task(client.listen(ready), name="zwave-stack-wait")
                try:
                    await ready.wait()
                    assert client.driver is not None
                    nodes = client.driver.controller.nodes.values()
                    progress = asyncio.Event()
                    for node in nodes:
                        node.on("ready", lambda _: progress.set())
                    while not all(node.ready for node in nodes):
                        await progress.wait()
                        progress.clear()
                finally:
                    await client.disconnect()
                    await listener
        return time.monotonic() - began

    def stop_server(self) -> None:
        """Stop zwave-server only (the locks keep their state), as when it is restarted."""
        _terminate(self._server)
        self._server = None

    def start_server(self) -> None:
        """Start zwave-server again on the same port, from its cache."""
        self._start_server(time.monotonic() + START_TIMEOUT)

    def stop(self) -> None:
        _terminate(self._server)
        _terminate(self._mock)
        self._server = self._mock = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        """The running processes, by name (for checks of what they have open)."""
        running = {"mock-server": self._mock, "zwave-server": self._server}
        return {name: p.pid for name, p in running.items() if p is not None and p.poll() is None}

    def log_text(self) -> str:
        return "\n".join(
            _tail(self.workdir / f"{name}.log", 200) for name in ("mock-server", "zwave-server")
        )

    def __enter__(self) -> ZWaveStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def server_options(cache_dir: Path) -> dict[str, Any]:
    """zwave-server's driver options: a private key and cache, quiet logs.

    zwave-server never turns on zwave-js usage statistics, and zwave-js looks for
    device-config updates only when asked to, so nothing here phones home.
    """
    return {
        # A random network key per simulated network (the mocks use no encryption).
        "securityKeys": {"S0_Legacy": secrets.token_hex(16)},
        "storage": {"cacheDir": str(cache_dir)},
        # zwave-js logs frames at debug level, user codes included.
        "logConfig": {"enabled": False, "level": "error"},
        # The bridge reads each lock's codes itself on first contact.
        "interview": {"queryAllUserCodes": False},
        "enableSoftReset": False,
    }


def _spec_json(lock: LockSpec) -> dict[str, Any]:
    data = asdict(lock)
    data["codes"] = {str(slot): pin for slot, pin in lock.codes.items()}
    return data


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def simulated_locks(config: ZWaveSimulatorConfig) -> list[LockSpec]:
    """The locks of the simulator section of the Z-Wave config (node ids from 2)."""
    locks = [
        LockSpec(
            id=2 + index,
            slots=config.slots,
            masked=config.masked_codes,
            bulk=config.bulk_codes,
            week_day_slots=config.week_day_schedules,
            year_day_slots=config.year_day_schedules,
        )
        for index in range(config.locks)
    ]
    if config.real_model:
        locks.append(LockSpec(id=2 + len(locks), slots=config.slots, model="yale"))
    return locks
