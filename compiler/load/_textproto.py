"""The textproto part of `load`: protobuf text format to the same plain tree as YAML/JSON.

The text is parsed into a `trainspec.v1.JobSpec` by protobuf itself and turned into the
proto3 JSON tree with `MessageToDict`. Locations come from a second, lenient walk over
protobuf's own tokenizer that follows the message descriptors (repeated fields, maps,
google.protobuf.Value), and that walk also enforces the depth limit before protobuf's
recursive parser sees the text. Where the walk cannot tell, a node gets the file itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
)
from trainspec.compiler._tree import tree_paths

__all__ = ["load_textproto"]

_UNKNOWN_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)"')
_OPEN = {"{": "}", "<": ">"}


def load_textproto(
    text: str, name: str, *, max_depth: int
) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
    """Parse a text-format JobSpec into (tree, value locations, key locations)."""
    # Imported here: protobuf's text_format and the generated spec are only needed for
    # this format, and `trainspec validate` on YAML should not pay for them.
    from google.protobuf import json_format, text_format
    from trainspec.v1 import job_spec_pb2

    walker = _Walker(name, max_depth, text_format.Tokenizer)
    try:
        walker.walk(text, job_spec_pb2.JobSpec.DESCRIPTOR)
        walked = True
    except SpecError:
        raise
    except Exception:  # the walk is best effort: the parser below is the authority
        walked = False

    message = job_spec_pb2.JobSpec()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise SpecError([_parse_error(error, name)]) from None
    except RecursionError:
        raise SpecError([_too_deep(Location(name), max_depth)]) from None
    try:
        tree = json_format.MessageToDict(message, preserving_proto_field_name=True)
    except (ValueError, TypeError) as error:  # e.g. NaN in a google.protobuf.Value
        raise SpecError(
            [
                Diagnostic(
                    "load.syntax",
                    "",
                    f"the spec cannot be written as json: {error}".lower(),
                    "use finite numbers and plain values",
                    Location(name),
                )
            ]
        ) from None
    if not tree:
        raise SpecError(
            [
                Diagnostic(
                    "load.empty",
                    "",
                    "the file is empty; a spec needs `training:` or `tuning:`",
                    "start the file with `training { ... }` or `tuning { ... }`",
                    Location(name, 1, 1),
                )
            ]
        )
    whole_file = Location(name)
    locations: dict[FieldPath, Location] = {}
    key_locations: dict[FieldPath, Location] = {}
    found = walker.locations if walked else {}
    found_keys = walker.key_locations if walked else {}
    for path in tree_paths(tree):
        locations[path] = found.get(path, whole_file)
        if path and isinstance(path[-1], str):
            key_locations[path] = found_keys.get(path, whole_file)
    locations[()] = Location(name, 1, 1)
    return tree, locations, key_locations


def _parse_error(error: Any, name: str) -> Diagnostic:
    line, column = error.GetLine() or 0, error.GetColumn() or 0
    message = re.sub(r"^\d+:\d+ : ", "", str(error)).rstrip(".")
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        from google.protobuf import descriptor_pool

        type_name, field = unknown.groups()
        try:
            fields = descriptor_pool.Default().FindMessageTypeByName(type_name).fields_by_name
        except KeyError:
            fields = {}
        close = difflib.get_close_matches(field, list(fields), n=1)
        hint = f"did you mean `{close[0]}`?" if close else "remove it or fix its spelling"
        short = type_name.rsplit(".", 1)[-1]
        return Diagnostic(
            "load.unknown_field",
            "",
            f"unknown field `{field}` in {short}",
            hint,
            Location(name, line, column),
            value=field,
        )
    return Diagnostic(
        "load.syntax",
        "",
        f"invalid textproto: {message[:1].lower()}{message[1:]}",
        "check the field names, colons, quotes and braces around here",
        Location(name, line, column),
    )


def _too_deep(loc: Location, max_depth: int) -> Diagnostic:
    return Diagnostic(
        "load.too_deep",
        "",
        f"the document nests deeper than {max_depth} levels",
        "a spec is shallow; check for runaway braces",
        loc,
    )


class _Walker:
    """Maps tree paths to token positions, following the descriptors."""

    def __init__(self, name: str, max_depth: int, tokenizer: Any):
        self.name = name
        self.max_depth = max_depth
        self.tokenizer_class = tokenizer
        self.locations: dict[FieldPath, Location] = {}
        self.key_locations: dict[FieldPath, Location] = {}

    def walk(self, text: str, descriptor: Any) -> None:
        self.tok = self.tokenizer_class(text.split("\n"))
        self._message_body(descriptor, (), "", 0)

    # -- tokens ---------------------------------------------------------------------------

    def _here(self) -> Location:
        return Location(self.name, self.tok._line + 1, self.tok._column + 1)

    def _next(self) -> str:
        token = self.tok.token
        self.tok.NextToken()
        return token

    def _open(self, depth: int) -> str:
        """Consume `{` or `<` (checking depth) and return the matching closer."""
        if depth > self.max_depth:
            raise SpecError([_too_deep(self._here(), self.max_depth)])
        closer = _OPEN[self.tok.token]
        self._next()
        return closer

    def _skip_value(self, depth: int) -> None:
        """Skip one value of unknown shape, still checking depth."""
        token = self.tok.token
        if token in _OPEN:
            closer = self._open(depth + 1)
            while self.tok.token != closer:
                if self.tok.AtEnd():
                    raise ValueError("unbalanced")
                self._skip_field(depth + 1)
            self._next()
        elif token == "[":
            for _ in self._list_items():
                self._skip_value(depth)
        else:
            self._scalar()

    def _list_items(self) -> Iterator[None]:
        """Step through a `[a, b, ...]` list, yielding at each item for the caller to read."""
        self._next()
        while self.tok.token != "]":
            if self.tok.AtEnd():
                raise ValueError("unbalanced")
            if self.tok.token == ",":
                self._next()
            else:
                yield
        self._next()

    def _skip_field(self, depth: int) -> None:
        if self.tok.token == "[":  # an extension or Any type URL
            while self._next() != "]":
                if self.tok.AtEnd():
                    raise ValueError("unbalanced")
        else:
            self._next()
        self.tok.TryConsume(":")
        self._skip_value(depth)
        self._separator()

    def _scalar(self) -> None:
        token = self._next()
        if token == "-":
            self._next()
        elif token[:1] in "\"'":
            while self.tok.token[:1] in "\"'" and self.tok.token:
                self._next()  # adjacent strings are concatenated

    def _separator(self) -> None:
        if self.tok.token in (",", ";"):
            self._next()

    # -- messages -------------------------------------------------------------------------

    def _message_body(self, descriptor: Any, path: FieldPath, closer: str, depth: int) -> None:
        counts: dict[str, int] = {}
        while self.tok.token != closer:
            if self.tok.AtEnd():
                if closer:
                    raise ValueError("unbalanced")
                return
            field = descriptor.fields_by_name.get(self.tok.token)
            if field is None:
                self._skip_field(depth)
                continue
            key_loc = self._here()
            self._next()
            self.tok.TryConsume(":")
            if _is_map(field):
                self._map_entries(field, (*path, field.name), key_loc, depth)
            elif field.is_repeated:
                base = (*path, field.name)
                self.key_locations.setdefault(base, key_loc)
                self.locations.setdefault(base, key_loc)
                for _ in self._list_items() if self.tok.token == "[" else (None,):
                    index = counts.get(field.name, 0)
                    counts[field.name] = index + 1
                    self._field_value(field, (*base, index), depth)
            else:
                self.key_locations[(*path, field.name)] = key_loc
                self._field_value(field, (*path, field.name), depth)
            self._separator()
        if closer:
            self._next()

    def _field_value(self, field: Any, path: FieldPath, depth: int) -> None:
        self.locations[path] = self._here()
        if field.message_type is None:
            self._scalar()
            return
        full_name = field.message_type.full_name
        if full_name == "google.protobuf.Value":
            self._value(path, depth)
        elif full_name == "google.protobuf.Struct":
            self._struct(path, depth)
        elif full_name == "google.protobuf.ListValue":
            self._list(path, depth)
        elif full_name.startswith("google.protobuf."):
            self._skip_value(depth)
        else:
            closer = self._open(depth + 1)
            self._message_body(field.message_type, path, closer, depth + 1)

    def _map_entries(self, field: Any, path: FieldPath, key_loc: Location, depth: int) -> None:
        self.key_locations.setdefault(path, key_loc)
        self.locations.setdefault(path, key_loc)
        for _ in self._list_items() if self.tok.token == "[" else (None,):
            self._map_entry(field, path, depth)

    def _block(self, depth: int) -> Iterator[tuple[str, Location]]:
        """Open a `{...}` or `<...>` block and yield each field name in it with where it is
        written, positioned at its value for the caller to read or skip; then close it."""
        closer = self._open(depth)
        while self.tok.token != closer:
            if self.tok.AtEnd():
                raise ValueError("unbalanced")
            word_loc = self._here()
            word = self._next()
            self.tok.TryConsume(":")
            yield word, word_loc
            self._separator()
        self._next()

    def _map_entry(self, field: Any, path: FieldPath, depth: int) -> None:
        """`{ key: "k" value: ... }`: the key must come first for its value to be placed."""
        entry = field.message_type
        key: str | None = None
        for word, key_loc in self._block(depth + 1):
            if word == "key":
                raw = self.tok.token
                self._scalar()
                key = _unquote(raw)
                self.key_locations[(*path, key)] = key_loc
            elif word == "value" and key is not None:
                self._field_value(entry.fields_by_name["value"], (*path, key), depth + 1)
            else:
                self._skip_value(depth + 1)

    # -- google.protobuf.Value and friends --------------------------------------------------

    def _value(self, path: FieldPath, depth: int) -> None:
        for word, _ in self._block(depth + 1):
            if word == "struct_value":
                self._struct(path, depth + 1)
            elif word == "list_value":
                self._list(path, depth + 1)
            else:
                self._skip_value(depth + 1)

    def _struct(self, path: FieldPath, depth: int) -> None:
        for word, _ in self._block(depth + 1):
            if word == "fields":
                self._struct_entry(path, depth + 1)
            else:
                self._skip_value(depth + 1)

    def _struct_entry(self, path: FieldPath, depth: int) -> None:
        key: str | None = None
        for word, word_loc in self._block(depth + 1):
            if word == "key":
                raw = self.tok.token
                self._scalar()
                key = _unquote(raw)
                self.key_locations[(*path, key)] = word_loc
            elif word == "value" and key is not None:
                self.locations[(*path, key)] = self._here()
                self._value((*path, key), depth + 1)
            else:
                self._skip_value(depth + 1)

    def _list(self, path: FieldPath, depth: int) -> None:
        index = 0
        for word, _ in self._block(depth + 1):
            if word == "values":
                self.locations[(*path, index)] = self._here()
                self._value((*path, index), depth + 1)
                index += 1
            else:
                self._skip_value(depth + 1)


def _is_map(field: Any) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry


def _unquote(token: str) -> str:
    if token[:1] in "\"'" and token[-1:] == token[:1] and len(token) >= 2:
        return token[1:-1]  # escapes are rare in keys; an escaped key just loses its line
    return token
