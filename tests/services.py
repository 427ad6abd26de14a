"""Services the tests start themselves: a private Mosquitto and the lockbridge daemon."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

# Long enough never to turn up by chance in timestamps or ids of a long log.
TEST_PINS = ("73519286", "86420975", "95162384")
# Nuki keypad codes: six digits 1-9, not starting with 12.
NUKI_TEST_PINS = ("735192", "864297", "951623")
CANARY_PINS = TEST_PINS + NUKI_TEST_PINS
# Web pass tokens (and their hashes) the tests were given: like PINs, never to be logged.
LIVE_TOKENS: set[str] = set()


def secrets_in(text: str) -> list[str]:
    return [secret for secret in (*CANARY_PINS, *LIVE_TOKENS) if secret in text]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: run scripts/test, which installs it")
    return found


class Mosquitto:
    """A private broker on a free loopback port, without persistence (a restart forgets everything)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest none\nmax_queued_messages 100000\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def daemon_config(
    workdir: Path,
    broker_port: int,
    *,
    base: str = "lockbridge",
    locks: int = 2,
    settings: dict[str, Any] | None = None,
    **zigbee: Any,
) -> Path:
    config = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "base_topic": base,
            "reconnect_max_delay": 1,
        },
        "state_dir": str(workdir / "state"),
        "log_level": "DEBUG",
        "command_timeout": 5,
        "simulator_control": True,
        "zigbee": {
            "enabled": True,
            "radio": "simulator",
            "command_timeout": 2,
            "simulator": {"locks": locks, "latency_ms": 2, "seed": 7, **zigbee},
        },
    }
    config.update(settings or {})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """`lockbridge run` in a subprocess, its log kept for the PIN canary."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env or {}
        self.log_path = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
