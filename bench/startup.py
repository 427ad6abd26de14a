"""Start-up to READY=1, resident memory and idle CPU of the daemon on simulated Zigbee locks.

SPEC §10: start-up to READY with simulators < 3 s; RSS <= 80 MB with 50 simulated locks;
idle CPU <= 0.5 %.  Run: python -m bench.startup [--locks 5 50] [--idle 3] [--window 10]
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import (
    NotifySocket,
    broker,
    cpu_seconds,
    log_problems,
    pid_of,
    rss_kib,
    start_until_ready,
    workspace,
    write_config,
)
from tests.services import Daemon

READY_GOAL_S = 3.0
RSS_GOAL_MB = 80.0
CPU_GOAL_PCT = 0.5
_READY_LOG = re.compile(r"ready in ([0-9.]+) s with (\d+) locks")


@dataclass
class Start:
    to_ready: float  # spawn to READY=1, as systemd sees it
    reported: float | None  # the daemon's own "ready in" (from Bridge.run, without imports)
    locks_seen: int | None
    stop: float  # SIGTERM to exit
    exit_code: int | None


@dataclass
class Row:
    locks: int
    fresh: Start
    again: Start
    rss_mb: float
    rss_after_mb: float
    hwm_mb: float
    cpu_pct: float
    problems: list[str]


def reported_ready(daemon: Daemon) -> tuple[float | None, int | None]:
    found = _READY_LOG.findall(daemon.log_text())
    if not found:
        return None, None
    seconds, locks = found[-1]
    return float(seconds), int(locks)


def stop_timed(daemon: Daemon) -> tuple[float, int | None]:
    began = time.monotonic()
    code = daemon.stop()
    return time.monotonic() - began, code


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(locks: int, idle: float, window: float, log_level: str) -> Row:
    with workspace("lbb-") as workdir, broker(workdir) as mosquitto:
        config = write_config(workdir, mosquitto.port, locks=locks, log_level=log_level)
        notify = NotifySocket(workdir / "notify.sock")
        try:
            daemon = Daemon(config)
            to_ready = start_until_ready(daemon, notify)
            reported, seen = reported_ready(daemon)
            stop, code = stop_timed(daemon)
            fresh = Start(to_ready, reported, seen, stop, code)

            daemon = Daemon(config)  # same state dir: the second start finds its database
            to_ready = start_until_ready(daemon, notify)
            reported, seen = reported_ready(daemon)
            pid = pid_of(daemon)
            time.sleep(idle)
            rss = rss_kib(pid)
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            time.sleep(window)
            cpu_pct = 100 * (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
            rss_after, hwm = rss_kib(pid), hwm_kib(pid)
            stop, code = stop_timed(daemon)
            again = Start(to_ready, reported, seen, stop, code)
            problems = log_problems(daemon)
        finally:
            notify.close()
    return Row(locks, fresh, again, rss / 1024, rss_after / 1024, hwm / 1024, cpu_pct, problems)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(rows: list[Row], idle: float, window: float) -> None:
    print("\nlockbridge start-up and footprint (simulated Zigbee locks, zigbee driver only)")
    header = (
        f"{'locks':>5} | {'start':>7} | {'to READY':>8} | {'in-daemon':>9} | {'stop':>6} | "
        f"{'exit':>4} | {'RSS':>8} | {'RSS+win':>8} | {'HWM':>8} | {'idle CPU':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        for label, start in (("fresh", row.fresh), ("again", row.again)):
            reported = "-" if start.reported is None else f"{start.reported:.2f} s"
            memory = (
                f"{row.rss_mb:6.1f}MB | {row.rss_after_mb:6.1f}MB | {row.hwm_mb:6.1f}MB | "
                f"{row.cpu_pct:7.3f}%"
                if label == "again"
                else f"{'':>8} | {'':>8} | {'':>8} | {'':>8}"
            )
            print(
                f"{row.locks:>5} | {label:>7} | {start.to_ready:6.2f} s | {reported:>9} | "
                f"{start.stop:4.2f} s | {start.exit_code!s:>4} | {memory}"
            )
    print(
        f"\nto READY: spawn to the READY=1 datagram on $NOTIFY_SOCKET; in-daemon: the daemon's "
        f"own 'ready in' log figure (no interpreter start or imports).\nRSS: VmRSS {idle:g} s "
        f"after READY; RSS+win and HWM (VmHWM, peak): after the {window:g} s idle CPU window."
    )
    for row in rows:
        slowest = max(row.fresh.to_ready, row.again.to_ready)
        print(
            f"goals, {row.locks} locks: start-up < {READY_GOAL_S:g} s {verdict(slowest < READY_GOAL_S)}"
            f"; RSS <= {RSS_GOAL_MB:g} MB {verdict(row.rss_after_mb <= RSS_GOAL_MB)}"
            f"; idle CPU <= {CPU_GOAL_PCT:g} % {verdict(row.cpu_pct <= CPU_GOAL_PCT)}"
        )
        if row.fresh.locks_seen not in (None, row.locks):
            print(f"  note: the daemon reported {row.fresh.locks_seen} locks at READY")
        for line in row.problems[:10]:
            print(f"  daemon log: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--locks", type=int, nargs="+", default=[5], metavar="N")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds after READY (first slot scan) before RSS"
    )
    parser.add_argument("--window", type=float, default=10.0, help="idle CPU window, seconds")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args()
    rows = [measure(n, args.idle, args.window, args.log_level) for n in args.locks]
    report(rows, args.idle, args.window)


if __name__ == "__main__":
    main()
