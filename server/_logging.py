"""Structured logs: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import TextIO

# Fields on every line of this process: the processes of `serve --processes N` share one
# stderr, so each tags its lines with its pid (and a worker its index).
_PROCESS_FIELDS: dict[str, object] = {}


def tag_process(**fields: object) -> None:
    """Add `fields` to every line this process logs from now on (replacing earlier tags)."""
    _PROCESS_FIELDS.clear()
    _PROCESS_FIELDS.update(fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `fields` extra."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            **_PROCESS_FIELDS,
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# Lines of this logger are held back briefly and written together (see _BatchingHandler).
BATCHED_LOGGER = "trainspec.server.access"
# Writes to a pipe of at most this many bytes are atomic: the lines of the processes of
# `serve --processes N`, which share one stderr, never interleave mid-line.
_PIPE_BUF = 4096


class _BatchingHandler(logging.StreamHandler):
    """A StreamHandler that writes access lines in batches, every other line at once.

    NOTE [batched access lines]: one write per access line cost a write(2) per call, and
    the GIL released around it handed the process to another thread: measured, about a
    sixth of a no-op call's server CPU. Access lines now wait until `delay` seconds have
    passed or about PIPE_BUF bytes are pending; any other line writes the pending ones
    first and then itself, so a process's lines keep their order and lifecycle lines
    ("listening", "draining", "stopped") still appear at once. Each write holds whole
    lines and at most PIPE_BUF bytes (one longer line goes alone, as before). A process
    killed outright loses at most `delay` seconds of access lines.
    """

    def __init__(self, stream: TextIO | None = None, delay: float = 0.1):
        super().__init__(stream)
        self._delay = delay
        self._pending: list[str] = []
        self._pending_size = 0
        self._owner = os.getpid()  # a forked child drops what its parent had pending
        self._timer_armed = False

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record) + self.terminator
            if self._owner != os.getpid():
                self._owner, self._timer_armed = os.getpid(), False
                self._pending.clear()
                self._pending_size = 0
            self._pending.append(line)
            self._pending_size += len(line)
            batched = record.name == BATCHED_LOGGER and record.levelno < logging.WARNING
            if not batched or self._pending_size >= _PIPE_BUF:
                self._write_pending()
            elif not self._timer_armed:
                self._timer_armed = True
                timer = threading.Timer(self._delay, self._on_timer)
                timer.daemon = True
                timer.start()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _on_timer(self) -> None:
        self.acquire()
        try:
            self._timer_armed = False
            if self._owner == os.getpid():
                self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        chunk: list[str] = []
        size = 0
        for line in self._pending:
            if chunk and size + len(line) > _PIPE_BUF:
                self._write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(chunk)
        self._pending.clear()
        self._pending_size = 0

    def _write(self, lines: list[str]) -> None:
        self.stream.write("".join(lines))
        self.stream.flush()

    def flush(self) -> None:
        self.acquire()  # Handler's lock, held as emit() holds it
        try:
            if self._pending and self._owner == os.getpid():
                self._write_pending()
            super().flush()
        finally:
            self.release()


def configure_logging(level: int = logging.INFO) -> None:
    """Send the `trainspec.server` loggers to stderr as JSON lines (access lines batched)."""
    handler = _BatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trainspec.server")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
