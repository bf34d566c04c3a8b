"""The JSON part of `load`: strict JSON (RFC 8259) to a plain tree with a location per node.

A small recursive-descent parser over the text, using the json module's C string
scanner, so that every key and value keeps its offset and duplicate keys are caught
(json.loads keeps the last one silently). Recursion is bounded by the depth limit.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from typing import Any, cast

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
    format_path,
)

__all__ = ["load_json"]

# Zero or more, so it matches at every index: its match is never None.
_WS_MATCH = cast("Callable[[str, int], re.Match[str]]", re.compile(r"[ \t\n\r]*").match)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
# Digits in one number literal. Python refuses to convert more than 4300 (a guard against
# quadratic parsing); no spec value needs a tenth of this.
MAX_NUMBER_CHARS = 400
_SURROGATE = re.compile("[\ud800-\udfff]")
# The C implementation when available; json.decoder has it, typeshed's stub does not.
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def load_json(
    text: str, name: str, *, max_depth: int, max_nodes: int
) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
    """Parse one JSON document into (tree, value locations, key locations); SpecError on failure."""
    return _Parser(text, name, max_depth, max_nodes).run()


class _Fail(Exception):
    """Stops the parse at the first syntax or limit error."""

    def __init__(self, code: str, offset: int, message: str, hint: str):
        super().__init__(message)
        self.code, self.offset, self.message, self.hint = code, offset, message, hint


_SYNTAX_HINT = "check the commas, brackets and quotes around here (json allows no comments)"
# The json module's string scanner messages, reworded.
_STRING_ERRORS = {
    "Unterminated string starting at": (
        "unterminated string",
        'close the string with `"` on the same line',
    ),
    "Invalid control character at": (
        "a raw control character (newline, tab, ...) inside a string",
        'close the string with `"`, or write the character as an escape such as \\n or \\t',
    ),
    "Invalid \\escape": (
        "invalid escape in a string",
        'json escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX',
    ),
    "Invalid \\uXXXX escape": (
        "invalid \\u escape in a string",
        "write \\u followed by four hex digits",
    ),
}


class _Parser:
    def __init__(self, text: str, name: str, max_depth: int, max_nodes: int):
        self.text = text
        self.name = name
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        # (path, value offset, key offset or -1) for every node, in document order.
        self.log: list[tuple[FieldPath, int, int]] = []
        self.errors: list[tuple[int, Diagnostic]] = []
        self._line_starts: list[int] | None = None

    def run(self) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
        text = self.text
        start = _WS_MATCH(text, 0).end()
        if start == len(text):
            raise SpecError(
                [
                    Diagnostic(
                        "load.empty",
                        "",
                        "the file is empty; a spec needs `training:` or `tuning:`",
                        'write a json object such as {"training": {...}}',
                        Location(self.name, 1, 1),
                    )
                ]
            )
        try:
            if text[start] != "{":
                # Parse first so that garbage reads as a syntax error, not a wrong type.
                self._value(start, (), -1, 1)
                raise _Fail(
                    "load.not_a_mapping",
                    start,
                    f"the top level is {_kind(text[start])}, not an object",
                    'a spec is an object with one key, "training" or "tuning"',
                )
            tree, end = self._value(start, (), -1, 1)
            end = _WS_MATCH(text, end).end()
            if end != len(text):
                raise _Fail(
                    "load.syntax",
                    end,
                    "extra data after the json value",
                    "a file holds one json object; remove what follows it",
                )
        except _Fail as fail:
            diag = Diagnostic(fail.code, "", fail.message, fail.hint, self._loc(fail.offset))
            raise SpecError([d for _, d in self.errors] + [diag]) from None
        if self.errors:
            raise SpecError([d for _, d in self.errors])
        loc = self._loc
        locations = {path: loc(offset) for path, offset, _ in self.log}
        key_locations = {path: loc(key) for path, _, key in self.log if key >= 0}
        return tree, locations, key_locations

    def _loc(self, offset: int) -> Location:
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._line_starts, offset)
        return Location(self.name, line, offset - self._line_starts[line - 1] + 1)

    def _value(self, i: int, path: FieldPath, key_at: int, depth: int) -> tuple[Any, int]:
        text = self.text
        if len(self.log) >= self.max_nodes:
            raise _Fail(
                "load.too_large",
                i,
                f"the document has more than {self.max_nodes} values",
                "a spec is a small file; split it up",
            )
        self.log.append((path, i, key_at))
        char = text[i : i + 1]
        if char == '"':
            return self._string(i)
        if char == "{":
            return self._object(i, path, depth)
        if char == "[":
            return self._array(i, path, depth)
        match = _NUMBER.match(text, i)
        if match:
            number = match.group()
            if len(number) > MAX_NUMBER_CHARS:
                raise _Fail(
                    "load.number_too_long",
                    i,
                    f"a number written with {len(number)} characters; at most "
                    f"{MAX_NUMBER_CHARS} are read",
                    "write a shorter number, or a string in quotes if it is an identifier",
                )
            if match.group(1) or match.group(2):
                return float(number), match.end()
            return int(number), match.end()
        literal = _LITERALS.get(char)
        if literal and text.startswith(literal[0], i):
            return literal[1], i + len(literal[0])
        found = f"`{char}`" if char else "the end of the file"
        raise _Fail("load.syntax", i, f"expected a json value, found {found}", _SYNTAX_HINT)

    def _string(self, i: int) -> tuple[str, int]:
        try:
            value, end = _scanstring(self.text, i + 1, True)
        except json.JSONDecodeError as error:
            message, hint = _STRING_ERRORS.get(error.msg, (error.msg.lower(), _SYNTAX_HINT))
            raise _Fail("load.syntax", error.pos, message, hint) from None
        if _SURROGATE.search(value):  # `\ud800` alone: not text, and not encodable later
            raise _Fail(
                "load.syntax",
                i,
                "the string holds an unpaired surrogate escape",
                "write the character itself, or a valid \\u surrogate pair",
            )
        return value, end

    def _enter(self, i: int, depth: int) -> None:
        if depth > self.max_depth:
            raise _Fail(
                "load.too_deep",
                i,
                f"the document nests deeper than {self.max_depth} levels",
                "a spec is shallow; check for runaway brackets",
            )

    def _object(self, i: int, path: FieldPath, depth: int) -> tuple[dict, int]:
        self._enter(i, depth)
        text, ws = self.text, _WS_MATCH
        out: dict[str, Any] = {}
        first_at: dict[str, int] = {}
        i = ws(text, i + 1).end()
        if text[i : i + 1] == "}":
            return out, i + 1
        while True:
            if text[i : i + 1] != '"':
                raise self._expected(i, "a string key in double quotes")
            key_at = i
            key, i = self._string(i)
            i = ws(text, i).end()
            if text[i : i + 1] != ":":
                raise self._expected(i, "`:` after the key")
            i = ws(text, i + 1).end()
            if key in first_at:
                self._duplicate(key, key_at, first_at[key], path)
            else:
                first_at[key] = key_at
            out[key], i = self._value(i, (*path, key), key_at, depth + 1)
            i = ws(text, i).end()
            char = text[i : i + 1]
            if char == "}":
                return out, i + 1
            if char != ",":
                raise self._expected(i, "`,` or `}`")
            i = ws(text, i + 1).end()

    def _array(self, i: int, path: FieldPath, depth: int) -> tuple[list, int]:
        self._enter(i, depth)
        text, ws = self.text, _WS_MATCH
        out: list[Any] = []
        i = ws(text, i + 1).end()
        if text[i : i + 1] == "]":
            return out, i + 1
        while True:
            value, i = self._value(i, (*path, len(out)), -1, depth + 1)
            out.append(value)
            i = ws(text, i).end()
            char = text[i : i + 1]
            if char == "]":
                return out, i + 1
            if char != ",":
                raise self._expected(i, "`,` or `]`")
            i = ws(text, i + 1).end()

    def _expected(self, i: int, what: str) -> _Fail:
        char = self.text[i : i + 1]
        found = f"`{char}`" if char else "the end of the file"
        return _Fail("load.syntax", i, f"expected {what}, found {found}", _SYNTAX_HINT)

    def _duplicate(self, key: str, at: int, first: int, path: FieldPath) -> None:
        diag = Diagnostic(
            "load.duplicate_key",
            format_path((*path, key)),
            f'duplicate key "{key}"',
            f'"{key}" is already set at line {self._loc(first).line}; keep one of them',
            self._loc(at),
            value=key,
        )
        self.errors.append((at, diag))


def _kind(char: str) -> str:
    if char == "[":
        return "an array"
    if char == '"':
        return "a string"
    if char in "tf":
        return "a boolean"
    if char == "n":
        return "null"
    return "a number"
