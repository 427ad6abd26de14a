from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from bridge.model import Event, utcnow
from bridge.store import SCHEMA_VERSION, Store, StoreError

WRITER = """
import asyncio, sys
from contextlib import closing
from pathlib import Path
from bridge.model import Event, utcnow
from bridge.store import Store

async def main():
    store = Store(Path(sys.argv[1]), event_history=500)
    await store.open()
    print("open", flush=True)
    n = 0
    while True:
        await store.add_events([Event.new("lock", "lock.locked", {"n": n + i}, utcnow()) for i in range(20)])
        await store.save_lock("lock", "zigbee-1", "zigbee", {"n": n})
        n += 20

asyncio.run(main())
"""


async def test_schema_version_and_settings(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    await store.open()
    await store.set_setting("k", "v")
    await store.set_setting("k", "w")
    assert await store.get_setting("k") == "w"
    assert await store.get_setting("missing") is None
    await store.close()
    with closing(sqlite3.connect(tmp_path / "db")) as db, db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    newer = Store(tmp_path / "db")
    with pytest.raises(StoreError, match="newer"):
        await newer.open()
    await newer.close()


async def test_event_history_is_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", event_history=100)
    await store.open()
    for batch in range(30):
        await store.add_events(
            [Event.new("l", "door.opened", {"n": batch * 10 + i}, utcnow()) for i in range(10)]
        )
    events = await store.list_events(limit=1000)
    assert 100 <= len(events) < 200
    assert events[0]["n"] == 299
    await store.close()


def test_store_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "db"
    for round_ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"open"
        time.sleep(0.05 + 0.03 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        # Whole batches only: a transaction is either in or out.
        assert count > 0 and count % 20 == 0
