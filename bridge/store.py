"""The bridge's persistent state: SQLite in WAL mode in the state directory.

Every write is a committed transaction with `synchronous=FULL`, so a kill -9 or a
power loss leaves either the old or the new state, never a torn one. All SQLite
calls run on one dedicated thread so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.errors import LockbridgeError
from bridge.model import Event

SCHEMA_VERSION = 3

# Each entry migrates the schema from version N-1 to N; append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE locks (
        lock_id TEXT PRIMARY KEY,
        native_id TEXT NOT NULL UNIQUE,
        protocol TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        lock_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_lock ON events (lock_id, seq);
    """,
    """
    CREATE TABLE access_codes (access_code_id TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE code_slots (
        lock_id TEXT NOT NULL,
        slot INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (lock_id, slot)
    );
    CREATE TABLE unmanaged_codes (
        lock_id TEXT NOT NULL,
        slot INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (lock_id, slot)
    );
    """,
    """
    CREATE TABLE web_passes (web_pass_id TEXT PRIMARY KEY, data TEXT NOT NULL);
    """,
)

# The keyed tables (code-slot manager, web passes) and their keys; `Store.apply` writes several atomically.
KEYED_TABLES = {
    "access_codes": ("access_code_id",),
    "code_slots": ("lock_id", "slot"),
    "unmanaged_codes": ("lock_id", "slot"),
    "web_passes": ("web_pass_id",),
}


@dataclass(frozen=True, slots=True)
class Row:
    """Put `data` at `key` in `table`, or delete the row when `data` is None."""

    table: str
    key: tuple[str | int, ...]
    data: dict[str, Any] | None


class StoreError(LockbridgeError):
    code = "internal_error"


class Store:
    def __init__(self, path: Path, *, event_history: int = 10_000) -> None:
        self._path = path
        self._event_history = event_history
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None
        self._events_since_trim = 0

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def _run[T](self, func: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, func)
        except sqlite3.Error as err:
            raise StoreError(f"store {self._path.name}: {err}") from err

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise StoreError(
                f"{self._path} has schema version {version}, newer than this lockbridge "
                f"({SCHEMA_VERSION}); upgrade lockbridge or restore a backup"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={target}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._db = db

    def _close(self) -> None:
        assert self._db is not None
        self._db.close()
        self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def integrity_ok(self) -> bool:
        def check() -> bool:
            return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

        return await self._run(check)

    async def save_lock(
        self, lock_id: str, native_id: str, protocol: str, data: dict[str, Any]
    ) -> None:
        def write() -> None:
            self._conn.execute(
                "INSERT INTO locks (lock_id, native_id, protocol, data, updated_at) "
                "VALUES (?, ?, ?, ?, datetime('now')) ON CONFLICT(native_id) DO UPDATE SET "
                "lock_id=excluded.lock_id, data=excluded.data, updated_at=excluded.updated_at",
                (lock_id, native_id, protocol, json.dumps(data)),
            )

        await self._run(write)

    async def load_locks(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            rows = self._conn.execute("SELECT data FROM locks ORDER BY lock_id").fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._run(read)

    async def get_setting(self, key: str) -> str | None:
        def read() -> str | None:
            row = self._conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(read)

    async def set_setting(self, key: str, value: str) -> None:
        def write() -> None:
            self._conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

        await self._run(write)

    async def add_events(self, events: list[Event]) -> None:
        """Append events in one transaction; trims the history to its bound now and then."""
        rows = [
            (
                e.event_id,
                e.lock_id,
                e.event_type,
                e.occurred_at.isoformat(),
                json.dumps(e.to_json()),
            )
            for e in events
        ]
        self._events_since_trim += len(rows)
        trim = self._events_since_trim >= max(100, self._event_history // 10)
        if trim:
            self._events_since_trim = 0

        def write() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO events (event_id, lock_id, event_type, occurred_at, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                if trim:
                    conn.execute(
                        "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?",
                        (self._event_history,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def list_events(
        self,
        *,
        lock_id: str | None = None,
        event_types: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if lock_id is not None:
            clauses.append("lock_id = ?")
            params.append(lock_id)
        if event_types:
            clauses.append(f"event_type IN ({','.join('?' * len(event_types))})")
            params.extend(event_types)
        if since is not None:
            clauses.append("occurred_at >= ?")
            params.append(since.isoformat())
        if until is not None:
            clauses.append("occurred_at <= ?")
            params.append(until.isoformat())
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT data FROM events {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608 - only placeholders are interpolated

        def read() -> list[dict[str, Any]]:
            rows = self._conn.execute(query, (*params, limit)).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._run(read)

    async def apply(self, rows: list[Row]) -> None:
        """Write (or delete) several rows of the keyed tables in one transaction."""

        def write() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    columns = KEYED_TABLES[row.table]
                    where = " AND ".join(f"{column} = ?" for column in columns)
                    if row.data is None:
                        conn.execute(f"DELETE FROM {row.table} WHERE {where}", row.key)  # noqa: S608 - fixed names
                        continue
                    names = ", ".join((*columns, "data"))
                    marks = ", ".join("?" * (len(columns) + 1))
                    conn.execute(
                        f"INSERT OR REPLACE INTO {row.table} ({names}) VALUES ({marks})",  # noqa: S608 - fixed names
                        (*row.key, json.dumps(row.data)),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def load_table(self, table: str) -> list[dict[str, Any]]:
        columns = KEYED_TABLES[table]

        def read() -> list[dict[str, Any]]:
            rows = self._conn.execute(
                f"SELECT data FROM {table} ORDER BY {', '.join(columns)}"  # noqa: S608 - fixed names
            ).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._run(read)
