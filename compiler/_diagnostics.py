"""Diagnostics: findings about a spec as data, and the two error families.

A `SpecError` means the user's input is wrong (exit 1, INVALID_ARGUMENT); an
`InternalError` means trainspec or a catalog is wrong (exit 3, INTERNAL).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# A field path inside a tree: map keys as str, list indexes as int.
FieldPath = tuple[str | int, ...]


class _Missing:
    """Marks "no value" where None would be a real (explicit null) value."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def format_path(path: Sequence[str | int]) -> str:
    """`("training", "metrics", 0, "regex")` -> `training.metrics[0].regex`."""
    path = tuple(path)
    text = _FORMATTED.get(path)
    if text is None:
        text = _format_path(path)
        # The same few hundred field paths come up on every compile; a server's caller
        # chooses the keys of the rest, so only short ones are kept, and a bounded number.
        if len(text) <= _FORMATTED_MAX_CHARS:
            if len(_FORMATTED) >= _FORMATTED_ENTRIES:
                _FORMATTED.clear()
            _FORMATTED[path] = text
    return text


_FORMATTED: dict[tuple[str | int, ...], str] = {}
_FORMATTED_ENTRIES = 8192
_FORMATTED_MAX_CHARS = 256


def _format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Location(NamedTuple):
    """A 1-based place in a source file; line 0 means the file as a whole.

    A NamedTuple, not a frozen dataclass: the loader makes one per node of every spec,
    and a frozen dataclass's __init__ costs several times a tuple's.
    """

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.column}"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Diagnostic:
    """One finding: a stable dotted `code`, the field path, a short message, a hint."""

    code: str
    field_path: str
    message: str
    hint: str = ""
    location: Location | None = None
    value: Any = field(default=MISSING, compare=False)
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        loc = self.location or Location("")
        return (loc.path, loc.line, loc.column, self.field_path, self.code)

    def format_text(self) -> str:
        """`FILE:LINE:COL: error[CODE] FIELD.PATH: MESSAGE` and an indented hint line."""
        where = f"{self.location}: " if self.location else ""
        subject = f" {self.field_path}:" if self.field_path else ""
        text = f"{where}{self.severity.value}[{self.code}]{subject} {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        """A plain dict with the proto3 JSON field names of trainspec.v1.Diagnostic."""
        out: dict[str, Any] = {
            "severity": self.severity.value,
            "code": self.code,
            "field_path": self.field_path,
            "message": self.message,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.location:
            out["location"] = {
                "path": self.location.path,
                "line": self.location.line,
                "column": self.location.column,
            }
        if self.value is not MISSING and _is_plain(self.value):
            out["value"] = self.value
        return out

    def to_proto(self):  # -> trainspec.v1.diagnostic_pb2.Diagnostic
        from google.protobuf import json_format
        from trainspec.v1 import diagnostic_pb2

        message = diagnostic_pb2.Diagnostic(
            severity=diagnostic_pb2.Severity.ValueType(_PROTO_SEVERITY[self.severity]),
            code=self.code,
            field_path=self.field_path,
            message=self.message,
            hint=self.hint,
        )
        if self.location:
            message.location.path = self.location.path
            message.location.line = self.location.line
            message.location.column = self.location.column
        if self.value is not MISSING and _is_plain(self.value):
            json_format.ParseDict(self.value, message.value)
        return message


_PROTO_SEVERITY = {Severity.ERROR: 1, Severity.WARNING: 2, Severity.NOTE: 3}


def _is_plain(value: Any) -> bool:
    """Whether a value fits google.protobuf.Value (JSON-like)."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=Diagnostic.sort_key)


class SpecError(Exception):
    """The user's input is wrong. Carries every diagnostic found, sorted by position."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sort_diagnostics(diagnostics))
        super().__init__(f"{len(self.diagnostics)} problem(s) in the spec")


class InternalError(Exception):
    """trainspec or one of its catalogs is wrong; never the user's fault."""

    def __init__(self, message: str, diagnostics: Iterable[Diagnostic] = ()):
        self.diagnostics = tuple(diagnostics)
        super().__init__(message)


def raise_if_errors(diagnostics: Iterable[Diagnostic]) -> None:
    """Raise one SpecError with all error diagnostics, if there are any."""
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise SpecError(errors)
