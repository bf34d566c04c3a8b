"""`-` as a spec: validate and compile read it from standard input (editors, pre-commit
hooks, pipes), going by the name `--stdin-filename` gives it."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

STDIN = "-"


@dataclass(frozen=True)
class SpecInput:
    """A spec named on the command line: a file, or what was read from standard input."""

    path: str  # the file, or the name a spec from stdin goes by
    content: bytes | None = None  # the spec read from stdin; None: read the file


def spec_inputs(paths: tuple[str, ...], stdin_filename: str | None) -> list[SpecInput]:
    """The specs in the order named, standard input read (once) where `-` stands."""
    from trainspec.compiler import STDIN_NAME
    from trainspec.compiler.load._load import MAX_BYTES

    dashes = paths.count(STDIN)
    if dashes > 1:
        raise click.UsageError("`-` (standard input) can be named once")
    if stdin_filename is not None and not dashes:
        raise click.UsageError("--stdin-filename names the spec read from `-`; name `-` too")
    if stdin_filename == "":
        raise click.BadParameter("give a file name", param_hint="--stdin-filename")
    if not dashes:
        return [SpecInput(path) for path in paths]
    # One byte past the loader's limit is enough for it to report the spec as too large.
    content = sys.stdin.buffer.read(MAX_BYTES + 1) if sys.stdin else b""
    from_stdin = SpecInput(stdin_filename or STDIN_NAME, content)
    return [from_stdin if path == STDIN else SpecInput(path) for path in paths]
