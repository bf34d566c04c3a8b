"""Tuning storage URLs: which databases the tuner takes, and their passwords kept out of output."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

# SQLite serves one tuning worker on one machine; PostgreSQL serves many on many machines.
SQLITE, POSTGRESQL = "sqlite", "postgresql"
_MASK = "***"


class StorageURLError(ValueError):
    """A storage URL the tuner cannot use; the message never holds the password."""


def default_storage_url(root: Path) -> str:
    return f"sqlite:///{(Path(root) / 'optuna.db').resolve()}"


def dialect(url: str) -> str:
    """`sqlite` or `postgresql`; StorageURLError for anything else."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    name = scheme.partition("+")[0]
    if name == SQLITE:
        return SQLITE
    if name in ("postgresql", "postgres"):
        return POSTGRESQL
    raise StorageURLError(
        f"tuning storage {masked(url)!r} is not a database URL the tuner takes: give "
        "sqlite:///PATH (one machine) or postgresql://USER@HOST:PORT/DATABASE (several)"
    )


def normalize(url: str) -> str:
    """The SQLAlchemy URL to open: PostgreSQL through psycopg 3 (the `postgres` extra)."""
    scheme, sep, rest = url.partition("://")
    if dialect(url) == POSTGRESQL and scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg{sep}{rest}"
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL (None for an in-memory database)."""
    path = url.partition("://")[2]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        return None
    return Path(urllib.parse.unquote(path[1:].partition("?")[0]))


def password(url: str) -> str | None:
    """The URL's password, if it has one (as written and decoded)."""
    netloc = url.partition("://")[2].partition("/")[0]
    userinfo, at, _ = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.partition(":")[2] or None


def masked(url: str) -> str:
    """The URL with its password replaced by `***`: the only form shown to anyone."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":" + _MASK
        rest = f"{userinfo}@{host}{slash}{tail}"
    # A password given as a query parameter (?password=...) is hidden too.
    base, question, query = rest.partition("?")
    if question:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{k}={_MASK if k.lower() == 'password' else v}" for k, v in pairs)
        rest = f"{base}?{query}"
    return f"{scheme}{sep}{rest}"


def scrub(text: str, url: str) -> str:
    """`text` (an error message, a log line) with every form of the URL's password hidden."""
    secrets = set()
    secret = password(url)
    if secret:
        secrets.update({secret, urllib.parse.unquote(secret), urllib.parse.quote(secret)})
    query = url.partition("?")[2]
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key.lower() == "password" and value:
            secrets.update({value, urllib.parse.quote(value)})
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text
