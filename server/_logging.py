"""Structured logs: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys

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


def configure_logging(level: int = logging.INFO) -> None:
    """Send the `trainspec.server` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trainspec.server")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
