"""The shipped systemd unit: Type=notify with a watchdog, and hardened to SPEC §9's exposure goal."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "lockbridge.service"
EXPOSURE_GOAL = 2.0


def test_unit_is_notify_with_watchdog_restart_and_state_directory() -> None:
    settings = {
        key: value
        for key, _, value in (
            line.partition("=") for line in UNIT.read_text().splitlines() if "=" in line
        )
    }
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert int(settings["WatchdogSec"]) > 0
    assert settings["StateDirectory"] == "lockbridge"
    assert settings["User"] == "lockbridge"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_exposure_level_meets_the_goal() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    assert float(found.group(1)) <= EXPOSURE_GOAL
