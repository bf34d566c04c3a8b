"""Cooperative cancellation: a compile whose caller gave up stops at the next pass.

A server sets the test for the call it serves (`cancel_when`); the driver asks between
passes (`checkpoint`). A context variable keeps it per call without threading it through
every pass's signature; the CLI sets none, so its checkpoints cost one lookup each.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator


class Cancelled(Exception):
    """The caller gave up (cancelled the call or let its deadline pass)."""


_is_cancelled: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "trainspec_is_cancelled", default=None
)


@contextlib.contextmanager
def cancel_when(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    """Within the block, `checkpoint()` raises Cancelled once `is_cancelled()` is true."""
    token = _is_cancelled.set(is_cancelled)
    try:
        yield
    finally:
        _is_cancelled.reset(token)


def checkpoint() -> None:
    is_cancelled = _is_cancelled.get()
    if is_cancelled is not None and is_cancelled():
        raise Cancelled
