"""The `load` pass: a spec file (YAML, JSON or textproto) to a plain tree and a source map.

Everything that can go wrong with the bytes themselves (unreadable, too large, binary,
not UTF-8, unknown extension) is caught here, before any parser runs; the format modules
catch the rest. Every failure is a `SpecError` with located diagnostics.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Location, SpecError

__all__ = [
    "FORMATS",
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "STDIN_NAME",
    "LoadedSource",
    "load_file",
    "load_source",
]

# A spec is a few kilobytes; 1 MiB leaves room for huge hyperparameter maps while keeping
# a stray log file or dataset from being parsed at all (its size is read before its bytes).
MAX_BYTES = 1 << 20
# Nesting levels of mappings and lists; the deepest real spec (a tuning job holding a
# training job holding a data channel's file system) is under 10.
MAX_DEPTH = 64
# YAML alias references per file; each is also counted by what it expands to (below).
MAX_ALIASES = 1_000
# Values in the document after alias expansion: this is what stops a "billion laughs" bomb,
# which stays tiny as text and as an event stream until its aliases are expanded.
MAX_NODES = 100_000

# The file is stat-ed as a regular file before it is opened; O_BINARY matters on Windows.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

# The name of a spec read from standard input with no file name to go by: YAML (which
# reads JSON too), and named as is in messages and plans.
STDIN_NAME = "<stdin>"

FORMATS: Mapping[str, str] = MappingProxyType(
    {
        ".yaml": "yaml",
        ".yml": "yaml",
        ".json": "json",
        ".textproto": "textproto",
        ".txtpb": "textproto",
    }
)


@dataclass(frozen=True)
class LoadedSource:
    """A loaded spec: its tree and where each node of it was written."""

    path: str  # as the user named it
    format: str  # "yaml" | "json" | "textproto"
    tree: Any  # dict (str keys) / list / str / int / float / bool / None
    # The location of the value at each path, for every node; the root is ().
    locations: Mapping[FieldPath, Location]
    # The location of the key of each mapping entry, by the entry's path.
    key_locations: Mapping[FieldPath, Location]


def load_file(path: str | os.PathLike) -> LoadedSource:
    """Read and load one spec file; the format comes from the extension (see FORMATS)."""
    name, data = read_file(path)
    return _load(name, _format_of(name), data)


def read_file(path: str | os.PathLike) -> tuple[str, bytes]:
    """The name and bytes of a spec file, refusing what is not a readable spec file."""
    name = os.fsdecode(path)
    try:
        info = os.stat(name)
    except OSError as error:
        raise SpecError([_unreadable(name, error)]) from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(
            [
                _file_error(
                    name,
                    "load.unreadable",
                    "this is a folder, not a spec file",
                    "name a .yaml, .yml, .json, .textproto or .txtpb file",
                )
            ]
        )
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO or device could block or never end.
        raise SpecError(
            [
                _file_error(
                    name,
                    "load.unreadable",
                    "this is not a regular file",
                    "name a spec file on disk",
                )
            ]
        )
    _format_of(name)  # an unknown extension fails before the file is read
    if info.st_size > MAX_BYTES:
        raise SpecError([_too_large(name, info.st_size)])
    try:
        data = _read_regular_file(name, info.st_size)
    except OSError as error:
        raise SpecError([_unreadable(name, error)]) from None
    if len(data) > MAX_BYTES:  # it grew since stat
        raise SpecError([_too_large(name, len(data))])
    return name, data


def _read_regular_file(name: str, size: int) -> bytes:
    """The file's bytes, up to MAX_BYTES + 1. Buffers are sized from `size`: a read into
    a MAX_BYTES buffer maps and faults in a megabyte, which cost more than parsing a spec."""
    fd = os.open(name, _READ_FLAGS)
    try:
        chunks = []
        want = size + 1  # one byte more, to see the end or that the file grew
        total = 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, min(want, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = 1 << 16
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def load_source(path: str, content: str | bytes) -> LoadedSource:
    """Load a spec given in memory (e.g. a gRPC SourceFile); `path` names it and its format."""
    name = os.fsdecode(path)
    fmt = _format_of(name)
    if len(content) > MAX_BYTES:
        raise SpecError([_too_large(name, len(content))])
    return _load(name, fmt, content)


def _load(name: str, fmt: str, content: str | bytes) -> LoadedSource:
    text = _decode(name, content)
    if fmt == "yaml":
        from trainspec.compiler.load._yaml import load_yaml

        tree, locations, key_locations = load_yaml(
            text, name, max_depth=MAX_DEPTH, max_nodes=MAX_NODES, max_aliases=MAX_ALIASES
        )
    elif fmt == "json":
        from trainspec.compiler.load._json import load_json

        tree, locations, key_locations = load_json(
            text, name, max_depth=MAX_DEPTH, max_nodes=MAX_NODES
        )
    else:
        from trainspec.compiler.load._textproto import load_textproto

        tree, locations, key_locations = load_textproto(text, name, max_depth=MAX_DEPTH)
    return LoadedSource(
        path=name,
        format=fmt,
        tree=tree,
        locations=MappingProxyType(locations),
        key_locations=MappingProxyType(key_locations),
    )


def _format_of(name: str) -> str:
    if name == STDIN_NAME:
        return "yaml"
    extension = os.path.splitext(name)[1].lower()
    fmt = FORMATS.get(extension)
    if fmt is None:
        shown = f"`{extension}`" if extension else "no extension"
        raise SpecError(
            [
                _file_error(
                    name,
                    "load.unknown_format",
                    f"unknown spec format ({shown})",
                    "name the file .yaml, .yml, .json, .textproto or .txtpb",
                )
            ]
        )
    return fmt


def _decode(name: str, content: str | bytes) -> str:
    """UTF-8 text without a BOM, or a located load.binary / load.encoding diagnostic."""
    if isinstance(content, str):
        nul = content.find("\0")
        if nul >= 0:
            raise SpecError([_binary(name, *_text_position(content, nul))])
        try:
            content.encode("utf-8")
        except UnicodeEncodeError as error:  # lone surrogates from a lax decoder
            line, column = _text_position(content, error.start)
            raise SpecError(
                [_encoding(name, line, column, f"U+{ord(content[error.start]):04X}")]
            ) from None
        text = content
    else:
        nul = content.find(b"\0")
        if nul >= 0:
            raise SpecError([_binary(name, *_byte_position(content, nul))])
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            line, column = _byte_position(content, error.start)
            raise SpecError(
                [_encoding(name, line, column, f"byte 0x{content[error.start]:02x}")]
            ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _text_position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _binary(name: str, line: int, column: int) -> Diagnostic:
    return Diagnostic(
        "load.binary",
        "",
        "the file is binary (it contains a NUL byte), not a text spec",
        "name a UTF-8 text spec file; UTF-16 files must be saved as UTF-8",
        Location(name, line, column),
    )


def _encoding(name: str, line: int, column: int, what: str) -> Diagnostic:
    return Diagnostic(
        "load.encoding",
        "",
        f"the file is not valid UTF-8 ({what})",
        "save the file as UTF-8",
        Location(name, line, column),
    )


def _too_large(name: str, size: int) -> Diagnostic:
    return _file_error(
        name,
        "load.too_large",
        f"the file is {size} bytes, over the {MAX_BYTES}-byte limit for a spec",
        "a spec is a small text file; check that this is the file you meant",
    )


def _unreadable(name: str, error: OSError) -> Diagnostic:
    reason = (error.strerror or str(error)).lower()
    hint = "check the path" if isinstance(error, FileNotFoundError) else "check its permissions"
    return _file_error(name, "load.unreadable", f"cannot read the file: {reason}", hint)


def _file_error(name: str, code: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(code, "", message, hint, Location(name))
