"""The local job store: one SQLite file per runs root holding training and tuning jobs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# SageMaker's job statuses; a job whose runner died without a verdict becomes Failed.
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = (
    "InProgress",
    "Completed",
    "Failed",
    "Stopping",
    "Stopped",
)
_ACTIVE = (IN_PROGRESS, STOPPING)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    secondary_status TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    job_dir TEXT NOT NULL DEFAULT '',
    artifact TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    pgid INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    objective REAL,
    created REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS jobs_parent ON jobs(parent);
"""


@dataclass(frozen=True)
class JobRecord:
    """One job as stored. `kind` is `training`, `tuning` or `trial`."""

    name: str
    kind: str
    parent: str
    status: str
    secondary_status: str
    message: str
    job_dir: str
    artifact: str
    host: str
    pid: int
    pgid: int
    stop_requested: bool
    hyperparameters: Mapping[str, str]
    metrics: Mapping[str, float]
    objective: float | None
    created: float
    ended: float | None

    @property
    def active(self) -> bool:
        return self.status in _ACTIVE


def _record(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    data["stop_requested"] = bool(data["stop_requested"])
    data["hyperparameters"] = json.loads(data["hyperparameters"])
    data["metrics"] = json.loads(data["metrics"])
    return JobRecord(**data)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """Jobs under one runs root, in `<root>/jobs.db` (WAL, so readers never block runs)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Switching a new file to WAL does not wait for another process's lock (it fails
        # at once with "database is locked"), so two runs starting together on one root
        # take turns on a file lock to set the store up.
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            db = sqlite3.connect(self.path, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            finally:
                db.close()

    @classmethod
    def for_root(cls, root: Path) -> JobStore:
        return cls(Path(root) / "jobs.db")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def start(
        self,
        name: str,
        kind: str,
        *,
        parent: str = "",
        job_dir: str = "",
        hyperparameters: Mapping[str, str] | None = None,
    ) -> JobRecord:
        """Record `name` as InProgress, owned by this process (a rerun replaces the record)."""
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE name = ?", (name,))
            db.execute(
                "INSERT INTO jobs (name, kind, parent, status, job_dir, host, pid, "
                "hyperparameters, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    kind,
                    parent,
                    IN_PROGRESS,
                    job_dir,
                    socket.gethostname(),
                    os.getpid(),
                    json.dumps(dict(hyperparameters or {}), sort_keys=True),
                    time.time(),
                ),
            )
            # Read back in the same transaction: a rerun elsewhere may replace it after.
            row = db.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
        return _record(row)

    def set_process_group(self, name: str, pgid: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET pgid = ? WHERE name = ?", (pgid, name))

    def finish(
        self,
        name: str,
        status: str,
        *,
        secondary_status: str = "",
        message: str = "",
        artifact: str = "",
        metrics: Mapping[str, float] | None = None,
        objective: float | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, secondary_status = ?, message = ?, artifact = ?, "
                "metrics = ?, objective = ?, ended = ?, pgid = 0 WHERE name = ?",
                (
                    status,
                    secondary_status or status,
                    message,
                    artifact,
                    json.dumps(dict(metrics or {}), sort_keys=True),
                    objective,
                    time.time(),
                    name,
                ),
            )

    def get(self, name: str) -> JobRecord | None:
        self._reconcile()
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
        return _record(row) if row else None

    def list(self, *, kind: str | None = None, parent: str | None = None) -> list[JobRecord]:
        self._reconcile()
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if kind is not None:
            query += " AND kind = ?"
            args.append(kind)
        if parent is not None:
            query += " AND parent = ?"
            args.append(parent)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created, name", args).fetchall()
        return [_record(row) for row in rows]

    def stop_requested(self, name: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT stop_requested FROM jobs WHERE name = ?", (name,)).fetchone()
        return bool(row and row[0])

    def request_stop(self, name: str) -> JobRecord | None:
        """Mark `name` (and a tuning job's running trials) Stopping and signal their processes.

        The runner that owns a job turns Stopping into Stopped when its process ends.
        """
        record = self.get(name)
        if record is None or not record.active:
            return record
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET stop_requested = 1, status = ? "
                "WHERE (name = ? OR parent = ?) AND status IN (?, ?)",
                (STOPPING, name, name, *_ACTIVE),
            )
            rows = db.execute(
                "SELECT pgid, host FROM jobs WHERE (name = ? OR parent = ?) AND pgid > 0",
                (name, name),
            ).fetchall()
        for pgid, host in rows:
            if host == socket.gethostname():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
        return self.get(name)

    def _reconcile(self) -> None:
        # A runner killed outright (SIGKILL, power loss) cannot record its verdict; a job
        # of this host whose owning process is gone is Failed, so the store never shows a
        # dead job as running.
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, pid FROM jobs WHERE host = ? AND status IN (?, ?)",
                (host, *_ACTIVE),
            ).fetchall()
            for name, pid in rows:
                if not _alive(pid):
                    db.execute(
                        "UPDATE jobs SET status = ?, secondary_status = 'Interrupted', "
                        "message = ?, ended = ?, pgid = 0 WHERE name = ?",
                        (
                            FAILED,
                            "the runner process ended without recording a result "
                            "(killed?); run the job again to resume from its checkpoints",
                            time.time(),
                            name,
                        ),
                    )
