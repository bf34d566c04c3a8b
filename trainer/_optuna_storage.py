"""Optuna's RDB storage opened for many tuning workers, and the lock they take turns with.

Every worker of a tuning job (threads, processes, machines) opens the same database. Optuna
provides the multi-worker parts: heartbeats on running trials, and a stale-trial callback
that fails a dead worker's trial and queues its parameters again. trainspec adds one lock
per tuning job, held while a worker decides whether a trial may start and creates it, so
the job's trial and parallelism limits hold across all workers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from trainspec.trainer import _storage_url as su

# A fixed advisory-lock key for creating the schema (Optuna's tables and enum types).
_SCHEMA_KEY = int.from_bytes(
    hashlib.blake2b(b"trainspec:schema", digest_size=8).digest(), "big", signed=True
)


class InfrastructureError(Exception):
    """The database or disk failed (unreachable, full, read-only); neither the user's input
    nor a bug. The message names what failed and never holds a password."""


@dataclass(frozen=True)
class Heartbeat:
    """How often a running trial says it is alive, and how long a silent one lives.

    A trial silent for `grace_seconds` is failed and its parameters queued again (up to
    `max_retry` times), by whichever worker notices first.
    """

    interval_seconds: int = 5
    grace_seconds: int = 30
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.interval_seconds < 1 or self.grace_seconds <= self.interval_seconds:
            raise ValueError(
                f"heartbeat interval {self.interval_seconds} s must be at least 1 s and "
                f"below the grace period {self.grace_seconds} s"
            )


def quiet_optuna() -> None:
    """Optuna marks heartbeats, retries and its matplotlib plots experimental; the tuner
    uses them on purpose, so their warnings would only be noise for users."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_storage(url: str, heartbeat: Heartbeat) -> optuna.storages.RDBStorage:
    """Open (creating on first use) the tuning database at `url`.

    The schema is created under a lock, so workers starting together on an empty database
    do not race (PostgreSQL's `CREATE TYPE`, SQLite's `CREATE TABLE`).
    """
    kind = su.dialect(url)
    engine_url = su.normalize(url)
    engine_kwargs: dict[str, Any] = {}
    if kind == su.SQLITE:
        path = su.sqlite_path(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise infrastructure_error(exc, url) from None
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        # Drop connections the server closed (restart, idle timeout) instead of failing.
        engine_kwargs["pool_pre_ping"] = True
    quiet_optuna()
    try:
        with _schema_lock(kind, engine_url, url):
            storage = optuna.storages.RDBStorage(
                engine_url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat.interval_seconds,
                grace_period=heartbeat.grace_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=heartbeat.max_retry
                ),
            )
    except ImportError:
        raise su.StorageURLError(
            f"no database driver for {su.masked(url)}: install the postgres extra "
            "(pip install 'trainspec[postgres]')"
        ) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise su.StorageURLError(
            f"tuning storage {su.masked(url)!r} is not a valid URL: {su.scrub(str(exc), url)}"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError, sqlite3.Error) as exc:
        raise infrastructure_error(exc, url) from None
    if kind == su.SQLITE:
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    # NOTE [SQLite transactions]: Optuna reads a row, then writes it (claiming a queued
    # trial, telling a result, a heartbeat). Under SQLite's default deferred transactions two
    # connections doing that at once deadlock, and one fails at once with "database is
    # locked" instead of waiting. BEGIN IMMEDIATE takes the write lock up front, so
    # transactions queue (up to the connect timeout) across threads and processes alike.
    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is ours to send

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners would not have them


@contextlib.contextmanager
def _schema_lock(kind: str, engine_url: str, url: str) -> Iterator[None]:
    if kind == su.SQLITE:
        path = su.sqlite_path(url)
        if path is None:
            yield
            return
        with _file_lock(path.with_name(path.name + ".lock")):
            yield
        return
    engine = sqlalchemy.create_engine(engine_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_KEY}
            )
            try:
                yield
            finally:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_KEY}
                )
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # flock locks belong to an open file: a second open in this process or another waits.
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class JobLock:
    """The tuning job's lock, shared by all its workers: a PostgreSQL advisory lock, or a
    file lock beside an SQLite database. Each thread holds it through its own connection
    or file, so it is released when the holder dies, however it dies."""

    def __init__(self, storage: optuna.storages.RDBStorage, url: str, study_name: str) -> None:
        self._url = url
        self._key = int.from_bytes(
            hashlib.blake2b(f"trainspec:job:{study_name}".encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )
        self._engine = storage.engine
        path = su.sqlite_path(url) if su.dialect(url) == su.SQLITE else None
        self._file = None if path is None else path.with_name(f"{path.name}.{study_name}.lock")
        self._local = threading.local()
        self._memory = threading.Lock()  # an in-memory SQLite database lives in one process

    def acquire(self) -> None:
        if getattr(self._local, "held", False):
            return
        try:
            if self._file is not None:
                handle = open(self._file, "a+b")  # noqa: SIM115 - held until release
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._local.handle = handle
            elif su.dialect(self._url) == su.POSTGRESQL:
                connection = getattr(self._local, "connection", None)
                if connection is None:
                    connection = self._engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    )
                    self._local.connection = connection
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key}
                )
            else:
                self._memory.acquire()
        except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
            self.close()
            raise infrastructure_error(exc, self._url) from None
        self._local.held = True

    def release(self) -> None:
        if not getattr(self._local, "held", False):
            return
        self._local.held = False
        handle = getattr(self._local, "handle", None)
        if handle is not None:
            self._local.handle = None
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        elif su.dialect(self._url) == su.POSTGRESQL:
            try:
                self._local.connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
            except sqlalchemy.exc.SQLAlchemyError:
                self.close()  # the server dropped the session, and with it the lock
        else:
            self._memory.release()

    def close(self) -> None:
        """Release and drop this thread's connection (call when the thread ends)."""
        with contextlib.suppress(OSError, sqlalchemy.exc.SQLAlchemyError):
            self.release()
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        self._local.held = False
        if connection is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                connection.close()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def is_infrastructure(exc: BaseException) -> bool:
    """Whether `exc` is the database or the disk failing rather than a bug."""
    if isinstance(exc, InfrastructureError):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return True
    return isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS


def infrastructure_error(exc: BaseException, url: str) -> InfrastructureError:
    """An InfrastructureError naming the storage (masked) and the first line of the cause."""
    if isinstance(exc, InfrastructureError):
        return exc
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig else exc
    if isinstance(cause, OSError) and cause.strerror:
        reason = f"{cause.strerror}" + (f": {cause.filename}" if cause.filename else "")
    else:
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        reason = lines[0] if lines else type(cause).__name__
    reason = su.scrub(reason, url)
    return InfrastructureError(f"tuning storage {su.masked(url)} failed: {reason}")
