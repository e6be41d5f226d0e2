"""SQLite storage for accepted data points, custom events, alarm rules, contacts and contact groups, and
for the log of every API request.

One connection guarded by a lock: simple, thread-safe under ThreadingHTTPServer, and it makes a
``:memory:`` database private to one emulator instance. Type=1 points are upserted on
(group, name, dimensions, period, time) because real CMS keeps only the last write for that key; each
overwrite is counted so tests can detect a client that double-sends an aggregate.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

from .validation import Entry, Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    name TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    type INTEGER NOT NULL,
    period INTEGER,
    time_ms INTEGER NOT NULL,
    "values" TEXT NOT NULL,
    received_at REAL NOT NULL,
    request_id TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    overwrites INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_series ON entries (name, group_id, dimensions, type, period, time_ms);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT,
    code TEXT NOT NULL,
    http_status INTEGER,
    entries INTEGER NOT NULL,
    access_key_id TEXT,
    request_id TEXT NOT NULL,
    fault TEXT,
    delivered INTEGER NOT NULL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    group_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    received_at REAL NOT NULL,
    request_id TEXT NOT NULL,
    access_key_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_name ON events (name, time_ms);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
"""
"""``objects`` holds the control-plane resources as JSON documents keyed by (kind, key): kind ``rule``
(key RuleId), ``event_rule`` (RuleName), ``contact`` (ContactName) and ``contact_group``
(ContactGroupName)."""


def canonical_dimensions(dimensions: dict[str, str]) -> str:
    """Key-sorted compact JSON, so equal dimension sets compare equal in SQL."""
    return json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Store:
    """Entries and request log; every public method is safe to call from any thread."""

    def __init__(self, path: str | None = None) -> None:
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        with self._lock:
            self._conn.executescript(
                "DELETE FROM entries; DELETE FROM requests; DELETE FROM events; DELETE FROM objects;"
            )

    def add_entries(self, entries: list[Entry], *, request_id: str, access_key_id: str) -> None:
        """Store one call's entries atomically (a PutCustomMetric call is all-or-nothing)."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for entry in entries:
                    self._add(entry, now, request_id, access_key_id)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _add(self, entry: Entry, now: float, request_id: str, access_key_id: str) -> None:
        dims = canonical_dimensions(entry.dimensions)
        values = json.dumps(entry.values, sort_keys=True)
        if entry.type == 1:
            row = self._conn.execute(
                "SELECT id FROM entries WHERE name=? AND group_id=? AND dimensions=? AND type=1"
                " AND period=? AND time_ms=?",
                (entry.name, entry.group_id, dims, entry.period, entry.time_ms),
            ).fetchone()
            if row is not None:
                self._conn.execute(
                    'UPDATE entries SET "values"=?, received_at=?, request_id=?, access_key_id=?,'
                    " overwrites=overwrites+1 WHERE id=?",
                    (values, now, request_id, access_key_id, row["id"]),
                )
                return
        self._conn.execute(
            'INSERT INTO entries (group_id, name, dimensions, type, period, time_ms, "values", received_at,'
            " request_id, access_key_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                entry.group_id,
                entry.name,
                dims,
                entry.type,
                entry.period,
                entry.time_ms,
                values,
                now,
                request_id,
                access_key_id,
            ),
        )

    def entries(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored points in arrival order (an overwritten point keeps its first position)."""
        sql = "SELECT * FROM entries" + (" WHERE name=?" if name is not None else "") + " ORDER BY id"
        with self._lock:
            rows = self._conn.execute(sql, (name,) if name is not None else ()).fetchall()
        return [_entry_dict(row) for row in rows]

    def overwrites(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(SUM(overwrites), 0) FROM entries").fetchone()[0])

    # --- custom events ---------------------------------------------------------------------------------

    def add_events(self, events: list[Event], *, request_id: str, access_key_id: str) -> None:
        """Store one PutCustomEvent call's events atomically."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for event in events:
                    self._conn.execute(
                        "INSERT INTO events (event_id, group_id, name, content, time_ms, received_at,"
                        " request_id, access_key_id) VALUES (?,?,?,?,?,?,?,?)",
                        (
                            event.event_id,
                            event.group_id,
                            event.name,
                            event.content,
                            event.time_ms,
                            now,
                            request_id,
                            access_key_id,
                        ),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored events in arrival order."""
        sql = "SELECT * FROM events" + (" WHERE name=?" if name is not None else "") + " ORDER BY id"
        with self._lock:
            rows = self._conn.execute(sql, (name,) if name is not None else ()).fetchall()
        return [
            {
                "id": row["event_id"],
                "group_id": row["group_id"],
                "name": row["name"],
                "content": row["content"],
                "time": row["time_ms"],
                "received_at": row["received_at"],
                "request_id": row["request_id"],
                "access_key_id": row["access_key_id"],
            }
            for row in rows
        ]

    # --- control-plane objects -----------------------------------------------------------------------

    def put_object(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Create or replace one object; True if it was created. Its creation time survives updates."""
        now = int(time.time() * 1000)
        with self._lock:
            existed = self._conn.execute(
                "SELECT 1 FROM objects WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            self._conn.execute(
                "INSERT INTO objects (kind, key, doc, created_ms, updated_ms) VALUES (?,?,?,?,?)"
                " ON CONFLICT(kind, key) DO UPDATE SET doc=excluded.doc, updated_ms=excluded.updated_ms",
                (kind, key, json.dumps(doc, sort_keys=True), now, now),
            )
        return existed is None

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """``[{"key", "doc", "created_ms", "updated_ms"}]`` in creation order."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM objects WHERE kind=? ORDER BY rowid", (kind,)).fetchall()
        return [
            {
                "key": row["key"],
                "doc": json.loads(row["doc"]),
                "created_ms": row["created_ms"],
                "updated_ms": row["updated_ms"],
            }
            for row in rows
        ]

    def delete_objects(self, kind: str, keys: list[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM objects WHERE kind=? AND key=?", [(kind, k) for k in keys])

    def log_request(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO requests (at, action, code, http_status, entries, access_key_id, request_id,"
                " fault, delivered, message) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    record.get("action"),
                    record["code"],
                    record.get("http_status"),
                    record.get("entries", 0),
                    record.get("access_key_id"),
                    record["request_id"],
                    record.get("fault"),
                    int(record.get("delivered", True)),
                    record.get("message"),
                ),
            )

    def requests(self, action: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM requests" + (" WHERE action=?" if action is not None else "") + " ORDER BY id"
        with self._lock:
            rows = self._conn.execute(sql, (action,) if action is not None else ()).fetchall()
        return [{**dict(row), "delivered": bool(row["delivered"])} for row in rows]


def _entry_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "group_id": row["group_id"],
        "dimensions": json.loads(row["dimensions"]),
        "type": row["type"],
        "period": row["period"],
        "time": row["time_ms"],
        "values": json.loads(row["values"]),
        "received_at": row["received_at"],
        "request_id": row["request_id"],
        "access_key_id": row["access_key_id"],
        "overwrites": row["overwrites"],
    }
