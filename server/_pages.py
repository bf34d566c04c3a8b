"""AIP-158 pagination over a sorted list: opaque page tokens bound to the query."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

MAX_PAGE_SIZE = 1000


class PageError(ValueError):
    """A page request is malformed; `field` names the request field at fault."""

    def __init__(self, field: str, reason: str, message: str):
        self.field = field
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Page:
    start: int
    stop: int
    next_page_token: str


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_token(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def page(total: int, page_size: int, page_token: str, query: str) -> Page:
    """The slice of a `total`-long sorted list for one request.

    `query` identifies everything else about the request (filters, catalog version); a
    token made for another query is refused, as AIP-158 asks.
    """
    if page_size < 0:
        raise PageError("page_size", "page.size_negative", f"must not be negative, got {page_size}")
    size = MAX_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
    start = 0
    if page_token:
        try:
            padded = page_token + "=" * (-len(page_token) % 4)
            decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            start, fingerprint = decoded["o"], decoded["q"]
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise ValueError(start)
        except (ValueError, KeyError, TypeError, UnicodeError) as exc:
            raise PageError(
                "page_token", "page.token_invalid", "is not a token from an earlier response"
            ) from exc
        if fingerprint != _fingerprint(query):
            raise PageError(
                "page_token",
                "page.token_mismatch",
                "was made for a request with other parameters or another catalog version",
            )
    stop = min(start + size, total)
    next_token = encode_token(stop, query) if stop < total else ""
    return Page(start=min(start, total), stop=stop, next_page_token=next_token)
