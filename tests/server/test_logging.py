"""The JSON log handler: access lines batched, every other line at once, whole lines only."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from trainspec.server._logging import _PIPE_BUF, JsonFormatter, _BatchingHandler


class CountingStream(io.StringIO):
    """A stream that records what each write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def logged():
    """(stream, access logger, server logger) on a fresh batching handler."""
    stream = CountingStream()
    handler = _BatchingHandler(stream, delay=0.3)
    handler.setFormatter(JsonFormatter())
    server = logging.getLogger("trainspec.server")
    saved = server.handlers[:], server.level, server.propagate
    server.handlers[:] = [handler]
    server.setLevel(logging.INFO)
    server.propagate = False
    yield stream, logging.getLogger("trainspec.server.access"), server
    server.handlers[:], server.level, server.propagate = saved


def events(stream: CountingStream) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def access(logger: logging.Logger, n: int) -> None:
    logger.info("access", extra={"fields": {"event": "access", "n": n}})


def test_access_lines_wait_for_the_delay_then_come_in_one_write(logged):
    stream, access_logger, _ = logged
    for n in range(3):
        access(access_logger, n)
    assert stream.writes == []
    deadline = time.monotonic() + 5
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stream.writes) == 1 and events(stream) == ["access"] * 3


def test_any_other_line_writes_the_pending_ones_first(logged):
    stream, access_logger, server = logged
    access(access_logger, 0)
    server.info("stopped", extra={"fields": {"event": "stopped"}})
    access_logger.warning("slow", extra={"fields": {"event": "warned"}})
    assert events(stream) == ["access", "stopped", "warned"]


def test_writes_hold_whole_lines_and_at_most_pipe_buf_bytes(logged):
    stream, access_logger, server = logged
    for n in range(200):
        access(access_logger, n)
    server.info("long", extra={"fields": {"event": "long", "text": "x" * 2 * _PIPE_BUF}})
    assert events(stream) == ["access"] * 200 + ["long"]
    assert all(text.endswith("\n") for text in stream.writes)
    assert all(len(text) <= _PIPE_BUF for text in stream.writes[:-1])


def test_flush_writes_what_is_pending(logged):
    stream, access_logger, server = logged
    access(access_logger, 0)
    server.handlers[0].flush()
    assert events(stream) == ["access"]
