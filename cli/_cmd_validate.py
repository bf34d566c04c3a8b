"""`trainspec validate` and `trainspec schema`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from trainspec._errors import EXIT_INVALID, handle_errors, print_diagnostics

SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".textproto", ".txtpb")
DEFAULTS_FILE_NAME = "trainspec.defaults.yaml"


def _spec_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix in SPEC_SUFFIXES
                    and p.is_file()
                    and "node_modules" not in p.parts
                    and not any(part.startswith(".") for part in p.parts)
                    and (p.suffix != ".json" or _looks_like_spec(p))
                )
            )
        else:
            files.append(path)
    return files


def _looks_like_spec(path: Path) -> bool:
    """Folders hold other JSON too (package.json...): take JSON that names a job."""
    head = path.read_bytes()[:4096]
    return b'"training"' in head or b'"tuning"' in head


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints a JSON array of diagnostics on stdout.",
)
@handle_errors("fmt")
def validate(paths: tuple[str, ...], fmt: str) -> None:
    """Check spec files (or folders of them) for every mistake, in one run.

    Each problem is printed as FILE:LINE:COL: error[CODE] FIELD.PATH: MESSAGE with a
    hint. Files named trainspec.defaults.yaml are checked as defaults files. Exit 0 when
    every file is valid, 1 when any is not.
    """
    from trainspec.compiler import SpecError, load_file
    from trainspec.compiler._validate import validate_layer

    diagnostics = []
    files = _spec_files(paths)
    for path in files:
        try:
            loaded = load_file(path)
            kind = "defaults" if path.name == DEFAULTS_FILE_NAME else "spec"
            validate_layer(
                loaded.path, loaded.tree, loaded.locations, loaded.key_locations, kind=kind
            )
        except SpecError as exc:
            diagnostics.extend(exc.diagnostics)
    if fmt == "json":
        print_diagnostics(diagnostics, "json")
    else:
        print_diagnostics(diagnostics)
        bad = len({d.location.path for d in diagnostics if d.location})
        summary = f"{len(files)} file(s) checked, {len(diagnostics)} problem(s)"
        click.echo(summary + (f" in {bad} file(s)" if diagnostics else ""), err=True)
    if diagnostics:
        sys.exit(EXIT_INVALID)


@click.command()
@click.option("--indent", type=int, default=2, show_default=True)
def schema(indent: int) -> None:
    """Print the JSON Schema of spec files, for editors (yaml-language-server).

    Generated from the same field model as the validator, so the two always agree.
    Use it with a `# yaml-language-server: $schema=trainspec.schema.json` comment.
    """
    from trainspec.compiler._jsonschema import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=indent, sort_keys=True))
