"""SQLite result store of a sweep: one row per finished cell, written atomically.

A cell's *key* is ``sha256`` of the canonical JSON (sorted keys, no whitespace) of the parts of
its resolved configuration that determine the result: the checkpoint's content hash, what
produced the value (the pcm-sim version, the cell code version and the hashes of the fully
resolved device profile and of the recipe; see :func:`pcm_sim.studies.cells.producer`), the
drift time, the chip seed and the evaluation settings.  The same cell therefore has the same key
in every run, on every machine, whatever the checkpoint path or the sweep's name; a re-run skips
every key already stored, and recomputes a cell whose code, profile or recipe has changed
(:meth:`ResultStore.add` then replaces the stale row in the same transaction).

Each row is inserted in its own transaction (SQLite rollback journal, ``synchronous=FULL``), so a
process killed at any instant leaves either the whole row or nothing, and ``key`` is the primary
key, so no cell is ever stored twice.

Schema (format :data:`FORMAT`)::

    pcm_sim_meta(name TEXT PRIMARY KEY, value TEXT)        -- format, created_utc
    cells(key TEXT PRIMARY KEY, sweep TEXT, model TEXT, profile TEXT, overrides TEXT,
          t_s REAL, seed INTEGER, metric TEXT, value REAL, config TEXT, result TEXT,
          finished_utc TEXT)

``config`` is the cell's full resolved configuration as JSON (including the whole device
profile), ``result`` the JSON of everything the cell measured (all scores, seconds, worker).
A file that is not SQLite, a corrupt database, or a SQLite database without this schema is
refused with :class:`StoreError` before anything is written.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "ResultStore", "StoreError", "canonical_json", "cell_key"]

FORMAT = "pcm-sim-sweep-db/1"
SQLITE_MAGIC = b"SQLite format 3\x00"
KEY_FIELDS = ("checkpoint_sha256", "producer", "t_s", "seed", "evaluation")
CELL_COLUMNS = (
    "key",
    "sweep",
    "model",
    "profile",
    "overrides",
    "t_s",
    "seed",
    "metric",
    "value",
    "config",
    "result",
    "finished_utc",
)
_SCHEMA = (
    "CREATE TABLE pcm_sim_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE cells (
    key TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    model TEXT NOT NULL,
    profile TEXT NOT NULL,
    overrides TEXT NOT NULL,
    t_s REAL NOT NULL,
    seed INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    config TEXT NOT NULL,
    result TEXT NOT NULL,
    finished_utc TEXT NOT NULL
)""",
)


class StoreError(ValueError):
    """A result database is unreadable, corrupt, or not a pcm-sim sweep database."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cell_key(key_parts: dict[str, Any]) -> str:
    """The stable key of a cell: ``sha256(canonical_json(parts))`` as 64 hex digits.

    ``key_parts`` must hold exactly :data:`KEY_FIELDS`.
    """
    if set(key_parts) != set(KEY_FIELDS):
        raise ValueError(f"cell key: expected fields {sorted(KEY_FIELDS)}, got {sorted(key_parts)}")
    return hashlib.sha256(canonical_json(key_parts).encode()).hexdigest()


def _check_file(path: Path) -> None:
    """Refuse a non-SQLite file by its 16-byte header before SQLite touches it."""
    if not path.is_file():
        raise StoreError(f"{path}: not a regular file")
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise StoreError(f"{path}: not a SQLite database (foreign or corrupt file)")


class ResultStore:
    """A sweep's result database; use as a context manager.

    Args:
        path: the SQLite file.  A missing (or empty) file is created if ``create``.
        create: create a missing database (``sweep``); otherwise (``plot``) a missing file is an
            error.  An existing file is opened read-write and written only by :meth:`add`, so
            SQLite can roll back a transaction interrupted by a kill (a hot journal) on open.
    """

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not create and not exists:
            raise FileNotFoundError(f"{self.path}: no such sweep database")
        if exists:
            _check_file(self.path)
        elif self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a regular file")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"{self.path.resolve().as_uri()}?mode={'rw' if exists else 'rwc'}"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
            if exists:
                self._check_schema()
            else:
                self._create()
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise StoreError(
                f"{self.path}: corrupt or unreadable SQLite database ({exc})"
            ) from None
        except StoreError:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    def _create(self) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                self.conn.execute(statement)
            self.conn.executemany(
                "INSERT INTO pcm_sim_meta(name, value) VALUES (?, ?)",
                [("format", FORMAT), ("created_utc", now)],
            )
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            self.conn.execute("ROLLBACK")
            raise

    def _check_schema(self) -> None:
        check = self.conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise StoreError(f"{self.path}: corrupt SQLite database (quick_check: {check})")
        tables = {
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "pcm_sim_meta" not in tables:
            raise StoreError(f"{self.path}: a SQLite database but not a pcm-sim sweep database")
        row = self.conn.execute("SELECT value FROM pcm_sim_meta WHERE name='format'").fetchone()
        if row is None or row[0] != FORMAT:
            found = row[0] if row else "none"
            raise StoreError(f"{self.path}: database format {found!r}, expected {FORMAT!r}")
        columns = tuple(r[1] for r in self.conn.execute("PRAGMA table_info(cells)"))
        if columns != CELL_COLUMNS:
            raise StoreError(
                f"{self.path}: table 'cells' has columns {columns}, expected {CELL_COLUMNS}"
            )

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (every row is already committed)."""
        self.conn.close()

    def finished_keys(self) -> set[str]:
        """Keys of every stored cell."""
        return {r[0] for r in self.conn.execute("SELECT key FROM cells")}

    def configs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, config)`` of every stored cell, ``config`` decoded."""
        for key, config in self.conn.execute("SELECT key, config FROM cells ORDER BY rowid"):
            yield key, json.loads(config)

    def add(
        self, config: dict[str, Any], result: dict[str, Any], replaces: Sequence[str] = ()
    ) -> bool:
        """Store one finished cell in its own transaction; False if its key was already stored.

        ``config`` is the cell configuration built by :func:`pcm_sim.studies.cells.expand_cells`,
        ``result`` what :func:`pcm_sim.studies.cells.run_cell` returned for it; the rows of
        ``replaces`` (stale versions of the cell) are deleted in the same transaction.
        """
        if result["key"] != config["key"]:
            raise ValueError(f"result of cell {result['key']} stored for cell {config['key']}")
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        row = (
            config["key"],
            config["sweep"],
            config["model"]["label"],
            config["profile"]["name"],
            canonical_json(config["profile"]["overrides"]),
            float(config["t_s"]),
            int(config["seed"]),
            result["metric"],
            float(result["value"]),
            canonical_json(config),
            canonical_json(result),
            now,
        )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("DELETE FROM cells WHERE key = ?", [(k,) for k in replaces])
            cursor = self.conn.execute(
                f"INSERT OR IGNORE INTO cells({', '.join(CELL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CELL_COLUMNS))})",
                row,
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cursor.rowcount == 1

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every stored cell as a dict, ``config`` and ``result`` decoded, in insertion order."""
        query = f"SELECT {', '.join(CELL_COLUMNS)} FROM cells ORDER BY rowid"
        for values in self.conn.execute(query):
            row = dict(zip(CELL_COLUMNS, values, strict=True))
            for name in ("overrides", "config", "result"):
                row[name] = json.loads(row[name])
            yield row

    def count(self) -> int:
        """Number of stored cells."""
        return int(self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
