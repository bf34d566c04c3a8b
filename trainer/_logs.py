"""Tail a SageMaker training job's CloudWatch log streams, every host's, in time order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# A page of get_log_events holds at most 10,000 events; a poll reads at most this many
# pages of one stream, so one chatty host cannot hold the others' lines back for long.
_MAX_PAGES = 20
# SageMaker names a host's stream `<job>/<host>-<epoch seconds>`, e.g. `job/algo-1-1700000000`.
_EPOCH_SUFFIX = re.compile(r"-\d{9,}$")


@dataclass(frozen=True)
class LogLine:
    """One log event: when (ms since the epoch), which host printed it, and what."""

    timestamp: int
    host: str
    message: str


def host_of(stream: str, job: str) -> str:
    """`algo-1` for the stream `job/algo-1-1700000000`; the stream's rest if it differs."""
    rest = stream.removeprefix(job + "/")
    return _EPOCH_SUFFIX.sub("", rest) or rest


class LogTail:
    """Reads what is new in a job's streams on each `poll()`, picking up streams of hosts
    that start later.

    NOTE [resumable]: each stream's position is CloudWatch's forward token, advanced only
    after a page is in hand, and lines read but not yet returned wait in `_pending`. A call
    that fails part-way (throttled, connection lost) loses nothing: the next `poll()` goes
    on from the same tokens and returns the waiting lines first, so no line is repeated or
    skipped.
    """

    def __init__(self, client: Any, job: str, group: str = LOG_GROUP) -> None:
        self._client = client
        self._job = job
        self._group = group
        self._tokens: dict[str, str | None] = {}
        self._pending: list[LogLine] = []

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(sorted(self._tokens))

    def poll(self) -> list[LogLine]:
        """New lines of every stream, ordered by time (then host); may raise botocore's
        errors, after which calling it again resumes."""
        self._discover()
        for stream in sorted(self._tokens):
            self._read(stream)
        lines, self._pending = self._pending, []
        return sorted(lines, key=lambda line: (line.timestamp, line.host))

    def _discover(self) -> None:
        kwargs: dict[str, Any] = {
            "logGroupName": self._group,
            "logStreamNamePrefix": self._job + "/",
        }
        while True:
            try:
                response = self._client.describe_log_streams(**kwargs)
            except Exception as exc:
                if _missing(exc):  # no host has written yet: the group may not exist
                    return
                raise
            for stream in response.get("logStreams", []):
                self._tokens.setdefault(stream["logStreamName"], None)
            token = response.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return
            kwargs["nextToken"] = token

    def _read(self, stream: str) -> None:
        host = host_of(stream, self._job)
        for _ in range(_MAX_PAGES):
            token = self._tokens[stream]
            kwargs: dict[str, Any] = {
                "logGroupName": self._group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token is not None:
                kwargs["nextToken"] = token
            response = self._client.get_log_events(**kwargs)
            events = response.get("events", [])
            self._pending.extend(
                LogLine(int(e.get("timestamp", 0)), host, str(e.get("message", "")).rstrip("\n"))
                for e in events
            )
            self._tokens[stream] = response.get("nextForwardToken", token)
            # CloudWatch answers the last page again with the token it was given.
            if not events or self._tokens[stream] == token:
                return


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    return (
        isinstance(response, dict)
        and response.get("Error", {}).get("Code") == "ResourceNotFoundException"
    )
