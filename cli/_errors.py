"""Turning trainspec's two error families into output and exit codes (CLI only).

Exit codes: 0 ok, 1 the input is wrong (every problem printed), 2 usage error (click),
3 internal error (a bug in trainspec or its catalogs; never a traceback unless
TRAINSPEC_DEBUG=1), 4 infrastructure failure (a database unreachable, a disk full: the
input may be fine; fix it and run again). A reader that stops early (`| head`) ends a
command quietly, with 0.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

EXIT_INVALID = 1
EXIT_INTERNAL = 3
EXIT_INFRASTRUCTURE = 4


# How diagnostics can be printed: text on stderr; the others on stdout, for tools.
DIAGNOSTIC_FORMATS = ("text", "json", "github", "sarif")


def print_diagnostics(diagnostics: Iterable[Any], fmt: str = "text") -> None:
    diagnostics = list(diagnostics)
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in diagnostics], indent=2))
        return
    if fmt == "github":
        from trainspec._report import github_annotations

        if diagnostics:
            click.echo(github_annotations(diagnostics))
        return
    if fmt == "sarif":
        from trainspec import __version__
        from trainspec._report import sarif

        click.echo(sarif(diagnostics, __version__))
        return
    for diagnostic in diagnostics:
        click.echo(diagnostic.format_text(), err=True)


def handle_errors(fmt_param: str | None = None) -> Callable:
    """Decorate a command: SpecError -> diagnostics and exit 1; anything else -> exit 3."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            from trainspec.compiler import InternalError, SpecError

            fmt = kwargs.get(fmt_param, "text") if fmt_param else "text"
            try:
                return command(*args, **kwargs)
            except SpecError as exc:
                print_diagnostics(exc.diagnostics, fmt if fmt in DIAGNOSTIC_FORMATS else "text")
                sys.exit(EXIT_INVALID)
            except InternalError as exc:
                click.echo(f"internal error: {exc}", err=True)
                for diagnostic in exc.diagnostics:
                    click.echo("  " + diagnostic.format_text(), err=True)
                click.echo("this is a bug in trainspec; please report it", err=True)
                sys.exit(EXIT_INTERNAL)
            except BrokenPipeError:
                _quiet_closed_pipe()
            except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
                raise
            except Exception as exc:  # never a traceback for users
                if os.environ.get("TRAINSPEC_DEBUG"):
                    raise
                click.echo(
                    f"internal error: {type(exc).__name__}: {exc}\n"
                    "this is a bug in trainspec; rerun with TRAINSPEC_DEBUG=1 for a traceback",
                    err=True,
                )
                sys.exit(EXIT_INTERNAL)

        return wrapper

    return decorate


def _quiet_closed_pipe() -> None:
    """The reader closed stdout (`trainspec catalog instances | head -1`): it has what it
    wanted, so stop with 0 and no message. stdout goes to /dev/null first, or the
    interpreter's final flush of the buffered rest fails again on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's capture): nothing to do
        pass
    sys.exit(0)
