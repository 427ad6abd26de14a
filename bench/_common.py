"""Shared by the benchmarks: a private broker, a daemon on simulated Zigbee locks, /proc readings."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.services import Daemon, Mosquitto, daemon_config

BASE = "lockbridge"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    # Short, so that the notify socket's path stays far below the 108-byte limit.
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as name:
        yield Path(name)


@contextlib.contextmanager
def broker(workdir: Path, *, nodelay: bool = False) -> Iterator[Mosquitto]:
    """tests.services.Mosquitto; with `nodelay`, its sockets get TCP_NODELAY (set_tcp_nodelay)."""
    mosquitto = Mosquitto(workdir)
    if nodelay:
        with (workdir / "mosquitto.conf").open("a") as conf:
            conf.write("set_tcp_nodelay true\n")
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


def write_config(
    workdir: Path, port: int, *, locks: int, log_level: str = "INFO", **simulator: Any
) -> Path:
    """tests.services.daemon_config, with the log level a benchmark asks for."""
    path = daemon_config(workdir, port, base=BASE, locks=locks, **simulator)
    config = yaml.safe_load(path.read_text())
    config["log_level"] = log_level
    path.write_text(yaml.safe_dump(config))
    return path


class NotifySocket:
    """What systemd listens on: a unix datagram socket handed over as $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(self, message: str, timeout: float, daemon: Daemon | None = None) -> float:
        """time.monotonic() when a datagram with the line `message` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if daemon is not None and not daemon.alive():
                raise TimeoutError(f"the daemon exited before {message}")
            self.sock.settimeout(0.05)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if message in data.decode(errors="replace").splitlines():
                return time.monotonic()
        raise TimeoutError(f"no {message} on {self.path} within {timeout} s")

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def start_until_ready(daemon: Daemon, notify: NotifySocket, timeout: float = 60.0) -> float:
    """Start the daemon; seconds from just before the process is spawned to its READY=1."""
    daemon.env["NOTIFY_SOCKET"] = str(notify.path)
    started = time.monotonic()
    daemon.start()
    try:
        return notify.wait_for("READY=1", timeout, daemon) - started
    except TimeoutError as err:
        daemon.stop()
        raise RuntimeError(f"{err}; log tail:\n{daemon.log_text()[-3000:]}") from None


def pid_of(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" that ends comm, field 3 (state) is index 0: utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def log_problems(daemon: Daemon) -> list[str]:
    """Lines of the daemon's log worth a look: warnings, errors, tracebacks."""
    keys = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    return [line for line in daemon.log_text().splitlines() if any(k in line for k in keys)]
