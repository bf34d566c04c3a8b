"""`trainspec validate` and `trainspec schema`.

`validate` is `compile` without the output: it runs the same driver to the end, so it
fails exactly when `compile` would (AIP-163's validate_only, on the command line).
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from trainspec._errors import (
    DIAGNOSTIC_FORMATS,
    EXIT_INVALID,
    handle_errors,
    print_diagnostics,
)
from trainspec._options import (
    autotune_mode_option,
    defaults_option,
    set_option,
    stdin_filename_option,
)
from trainspec._stdin import SpecInput, spec_inputs

if TYPE_CHECKING:
    from trainspec.compiler import CompileOptions, Diagnostic

SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".textproto", ".txtpb")
DEFAULTS_FILE_NAME = "trainspec.defaults.yaml"


def _spec_files(paths: tuple[str, ...]) -> tuple[list[Path], list]:
    """The spec files named or found in folders, and diagnostics for broken links found."""
    files: list[Path] = []
    broken = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            files.append(path)  # a file the user named: the loader reports what is wrong
            continue
        for found in sorted(path.rglob("*")):
            inside = found.relative_to(path).parts  # the folder itself may be hidden
            if "node_modules" in inside or any(part.startswith(".") for part in inside):
                continue
            if found.is_symlink() and not found.exists():
                # A folder's specs may be links; one that leads nowhere must not pass as
                # "0 file(s) checked". A name without a suffix may have been a folder.
                if found.suffix in SPEC_SUFFIXES or not found.suffix:
                    broken.append(_broken_link(found))
                continue
            if (
                found.suffix in SPEC_SUFFIXES
                and not _is_plan_output(found)
                and found.is_file()
                and (found.suffix != ".json" or _looks_like_spec(found))
            ):
                files.append(found)
    return files, broken


def _is_plan_output(path: Path) -> bool:
    """`compile --out` writes <spec>.plan.<format>: trainspec's output, not a spec."""
    return ".plan." in path.name


def _broken_link(path: Path) -> Diagnostic:
    from trainspec.compiler import Diagnostic, Location

    try:
        os.stat(path)
        reason = "cannot be followed"
    except OSError as error:
        reason = "loops back on itself" if error.errno == errno.ELOOP else "points to nothing"
    return Diagnostic(
        "load.broken_link",
        "",
        f"this symbolic link {reason} (-> {os.readlink(path)})",
        hint="fix the link's target or remove the link",
        location=Location(str(path)),
    )


def _looks_like_spec(path: Path) -> bool:
    """Folders hold other JSON too (package.json...): take JSON that names a job."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return True  # the loader says why it cannot be read
    return b'"training"' in head or b'"tuning"' in head


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(DIAGNOSTIC_FORMATS),
    default="text",
    show_default=True,
    help="json: a JSON array of diagnostics on stdout; github: GitHub Actions workflow "
    "annotations (::error file=...) on stdout; sarif: a SARIF 2.1.0 log on stdout, for "
    "code scanning.",
)
@defaults_option
@set_option
@click.option(
    "--max-cost",
    type=float,
    default=None,
    metavar="USD",
    help="Fail when a job's worst-case cost exceeds this (as compile does).",
)
@autotune_mode_option()
@stdin_filename_option
@handle_errors("fmt")
def validate(
    paths: tuple[str, ...],
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    max_cost: float | None,
    autotune_mode: str,
    stdin_filename: str | None,
) -> None:
    """Check spec files (or folders of them) for every mistake, in one run.

    Runs every offline check `compile` runs (the same passes, the same defaults files
    and options), so it exits 0 exactly when `compile` would succeed. Each problem is
    printed as FILE:LINE:COL: error[CODE] FIELD.PATH: MESSAGE with a hint. Files named
    trainspec.defaults.yaml are checked as defaults files; in folders, compile's own
    outputs (*.plan.*) are skipped and broken symbolic links are errors. Exit 0 when
    every file is valid, 1 when any is not. `-` reads a spec from standard input (see
    --stdin-filename).
    """
    from trainspec.compiler import CompileOptions, SpecError

    options = CompileOptions(autotune_mode=autotune_mode, max_cost_usd=max_cost)
    inputs = spec_inputs(paths, stdin_filename)
    found, diagnostics = _spec_files(tuple(s.path for s in inputs if s.content is None))
    files = [SpecInput(str(p)) for p in found] + [s for s in inputs if s.content is not None]
    for spec in files:
        try:
            _validate_file(spec, defaults, overrides, options)
        except SpecError as exc:
            diagnostics.extend(exc.diagnostics)
    # A mistake in a defaults file (or --set) is found again with every spec using it.
    diagnostics = list(dict.fromkeys(diagnostics))
    if fmt != "text":
        print_diagnostics(diagnostics, fmt)
    else:
        print_diagnostics(diagnostics)
        bad = len({d.location.path for d in diagnostics if d.location})
        checked = len(files) + sum(d.code == "load.broken_link" for d in diagnostics)
        summary = f"{checked} file(s) checked, {len(diagnostics)} problem(s)"
        click.echo(summary + (f" in {bad} file(s)" if diagnostics else ""), err=True)
    if diagnostics:
        sys.exit(EXIT_INVALID)


def _validate_file(
    spec: SpecInput, defaults: tuple[str, ...], overrides: tuple[str, ...], options: CompileOptions
) -> None:
    """Raise SpecError with every problem of one file, as compile would find them."""
    from trainspec.compiler import compile_file, load_file, load_source
    from trainspec.compiler.check._validate import validate_layer

    if Path(spec.path).name == DEFAULTS_FILE_NAME:
        if spec.content is None:
            loaded = load_file(spec.path)
        else:
            loaded = load_source(spec.path, spec.content)
        validate_layer(
            loaded.path, loaded.tree, loaded.locations, loaded.key_locations, kind="defaults"
        )
        return
    compile_file(
        spec.path,
        content=spec.content,
        defaults=list(defaults) or None,
        overrides=overrides,
        options=options,
    )


@click.command()
@click.option("--indent", type=int, default=2, show_default=True)
@handle_errors()
def schema(indent: int) -> None:
    """Print the JSON Schema of spec files, for editors (yaml-language-server).

    Generated from the same field model as the validator, so the two always agree.
    Use it with a `# yaml-language-server: $schema=trainspec.schema.json` comment.
    """
    from trainspec.compiler._jsonschema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=indent, sort_keys=True))
