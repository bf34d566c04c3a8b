"""`trainspec diff` and `trainspec lock`: what a spec change does to the job, for review.

Exit codes follow `git diff --exit-code`: 0 no change (or every lock current), 1 changes
(or stale locks, or an invalid spec, with its problems printed), 2 usage.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from trainspec._errors import EXIT_INVALID, handle_errors, print_diagnostics
from trainspec._options import defaults_option, set_option

if TYPE_CHECKING:
    from trainspec.compiler._plan_diff import PlanDiff

DIFF_FORMATS = ("text", "json", "markdown")
LOCK_SUFFIX = ".plan.lock.yaml"

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(DIFF_FORMATS),
    default="text",
    show_default=True,
    help="text for a terminal, json for tools, markdown for a pull-request comment.",
)


class _Problems:
    """Diagnostics of every side that failed to compile: printed together, then exit 1."""

    def __init__(self) -> None:
        self.diagnostics: list[Any] = []

    def compile(
        self,
        spec: str,
        defaults: list[str] | None,
        overrides: Sequence[str],
        rename: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
    ) -> Any:
        from trainspec.compiler import SpecError, compile_file

        try:
            return compile_file(spec, defaults=defaults, overrides=overrides)
        except SpecError as exc:
            found = rename(exc.diagnostics) if rename else exc.diagnostics
            # A mistake in a defaults file is found again with every spec using it.
            self.diagnostics.extend(d for d in found if d not in self.diagnostics)
            return None


def _plan_or_compile(
    path: str, defaults: tuple[str, ...], overrides: tuple[str, ...], problems: _Problems
) -> Any:
    from trainspec._plan import looks_like_plan, read_plan

    if looks_like_plan(path):
        return read_plan(path)
    return problems.compile(path, list(defaults) or None, overrides)


def review_policy(defaults: tuple[str, ...], near: str) -> Any:
    """The risk policy: the `review` block of the last defaults file that has one (those
    given, else the nearest trainspec.defaults.yaml above `near`)."""
    from trainspec.compiler import load_file
    from trainspec.compiler._plan_diff import ReviewPolicy
    from trainspec.compiler.check._validate import validate_layer
    from trainspec.compiler.load._layers import find_defaults_file

    files = list(defaults)
    if not files:
        found = find_defaults_file(os.path.dirname(os.path.abspath(near)) or ".")
        files = [found] if found else []
    block = None
    for name in files:
        loaded = load_file(name)
        validated = validate_layer(
            loaded.path, loaded.tree, loaded.locations, loaded.key_locations, kind="defaults"
        )
        block = validated.tree.get("review", block)
    return ReviewPolicy.from_tree(block)


def _emit(entries: list[tuple[str, PlanDiff]], old_name: str, new_name: str, fmt: str) -> None:
    from trainspec._diff_report import RENDERERS

    click.echo(RENDERERS[fmt](entries, old_name, new_name))


@click.command("diff")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--against",
    "revision",
    metavar="REV",
    default=None,
    help="Compare every spec in PATHS (default: .) with the same file at git revision REV, "
    "compiled with REV's defaults files.",
)
@format_option
@defaults_option
@set_option
@handle_errors()
def diff(
    paths: tuple[str, ...],
    revision: str | None,
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
) -> None:
    """Show what changes between two plans: OLD NEW (each a spec or a plan file), or
    every spec in PATHS against git revision REV (--against REV).

    Changes are grouped (compute, data, hyperparameters, tuning, cost envelope, security,
    job, request), each with its origin on both sides, after the worst-case cost and
    duration delta and the risks a reviewer must see (set in the defaults file's
    `review` block). Exit 0 when nothing changes, 1 when something does, 2 on usage.
    """
    if revision is None:
        if len(paths) != 2:
            raise click.UsageError("give OLD and NEW (two spec or plan files), or --against REV")
        for path in paths:
            if not os.path.isfile(path):
                raise click.UsageError(f"{path}: no such file")
        problems = _Problems()
        old, new = (_plan_or_compile(p, defaults, overrides, problems) for p in paths)
        if problems.diagnostics:
            print_diagnostics(problems.diagnostics)
            sys.exit(EXIT_INVALID)
        from trainspec.compiler._plan_diff import diff_plans

        result = diff_plans(old, new, review_policy(defaults, paths[1]))
        _emit([(paths[1], result)], paths[0], paths[1], fmt)
        sys.exit(1 if result.different else 0)
    entries = _against(paths or (".",), revision, defaults, overrides)
    _emit(entries, revision, "working tree", fmt)
    sys.exit(1 if any(d.different for _, d in entries) else 0)


def _against(
    paths: tuple[str, ...], revision: str, defaults: tuple[str, ...], overrides: tuple[str, ...]
) -> list[tuple[str, PlanDiff]]:
    """(spec, PlanDiff) for every spec in `paths` now or at `revision`, sorted by path."""
    import dataclasses

    from trainspec._cmd_validate import DEFAULTS_FILE_NAME, _spec_files
    from trainspec._revision import export_revision, repository_root
    from trainspec.compiler._plan_diff import diff_plans

    for path in paths:
        if not os.path.exists(path):
            raise click.UsageError(f"{path}: no such file or folder")
    root = repository_root(paths[0])
    for path in paths[1:]:
        if repository_root(path) != root:
            raise click.UsageError(f"{path} is not in the repository at {root}")
    problems = _Problems()
    entries = []
    with tempfile.TemporaryDirectory(prefix="trainspec-diff-") as old_root:
        export_revision(root, revision, old_root)

        def in_root(path: str, top: str) -> str | None:
            relative = os.path.relpath(os.path.realpath(path), root)
            return None if relative.startswith(os.pardir) else os.path.join(top, relative)

        copies = {old_root, os.path.realpath(old_root)}

        def rename(found):
            # Problems of the old side name files as `REV:path`, not the temporary copy
            # (which the loader may name relative to the working directory).
            out = []
            for d in found:
                loc = d.location
                absolute = os.path.abspath(loc.path) if loc is not None else ""
                top = next((c for c in copies if absolute.startswith(c + os.sep)), None)
                if top is not None:
                    shown = f"{revision}:{os.path.relpath(absolute, top)}"
                    d = dataclasses.replace(d, location=loc._replace(path=shown))
                out.append(d)
            return out

        old_paths = [p for p in (in_root(path, old_root) for path in paths) if p]
        now_files, broken = _spec_files(tuple(paths))
        then_files, _ = _spec_files(tuple(p for p in old_paths if os.path.exists(p)))
        if broken:
            print_diagnostics(broken)
            sys.exit(EXIT_INVALID)
        # Each spec by its path in the repository, as the user would name it from here.
        specs: dict[str, tuple[str | None, str | None]] = {}
        for file in now_files:
            key = os.path.relpath(os.path.realpath(file), root)
            specs[key] = (None, str(file))
        for file in then_files:
            key = os.path.relpath(file, old_root)
            specs[key] = (str(file), specs.get(key, (None, None))[1])
        old_defaults = [in_root(d, old_root) or d for d in defaults] or None
        for key in sorted(specs):
            then, now = specs[key]
            if os.path.basename(key) == DEFAULTS_FILE_NAME:
                continue
            old = problems.compile(then, old_defaults, overrides, rename) if then else None
            new = problems.compile(now, list(defaults) or None, overrides) if now else None
            if (then and old is None) or (now and new is None):
                continue
            label = os.path.relpath(os.path.join(root, key))
            policy = review_policy(defaults, now or os.path.join(root, key))
            entries.append((label, diff_plans(old, new, policy)))
    if problems.diagnostics:
        print_diagnostics(problems.diagnostics)
        sys.exit(EXIT_INVALID)
    return entries


def lock_path(spec: Path, lock_dir: str | None) -> Path:
    """Where a spec's lock lives: beside it, or under `lock_dir` at its path in the project."""
    name = spec.name[: -len(spec.suffix)] + LOCK_SUFFIX if spec.suffix else spec.name + LOCK_SUFFIX
    if lock_dir is None:
        return spec.parent / name
    from trainspec.compiler import spec_root

    relative = os.path.relpath(os.path.realpath(spec.parent), spec_root(spec))
    if relative.startswith(os.pardir):
        relative = ""
    return Path(lock_dir) / relative / name


def lock_text(spec: Path, plan: Any) -> str:
    """A lock file: a comment saying what made it and how to refresh it, then the plan as
    `compile --format yaml` prints it (byte-identical from any directory or clone)."""
    from trainspec._cmd_compile import plan_text
    from trainspec.compiler import spec_root
    from trainspec.compiler._places import plan_name

    catalogs = ", ".join(f"{k} {v}" for k, v in sorted(plan.versions.catalogs.items()))
    name = plan_name(str(spec), spec_root(spec))
    return (
        f"# trainspec lock of {name}: the plan it compiles to. Generated; do not edit.\n"
        f"# Refresh with `trainspec lock {name}`; CI checks it with `trainspec lock --check`.\n"
        f"# Made by trainspec {plan.versions.compiler} (catalogs: {catalogs}; "
        f"botocore {plan.versions.botocore}).\n" + plan_text(plan, "yaml") + "\n"
    )


@click.command("lock")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 with the diff when a lock is missing or its job, request or "
    "cost envelope differs from what the spec compiles to now.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="With --check: also fail when only provenance or versions differ.",
)
@click.option(
    "--dir",
    "lock_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep locks under DIR at each spec's path in the project, not beside the specs.",
)
@format_option
@defaults_option
@set_option
@handle_errors()
def lock(
    paths: tuple[str, ...],
    check: bool,
    strict: bool,
    lock_dir: str | None,
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
) -> None:
    """Write each spec's plan to <spec>.plan.lock.yaml (or check that it is current).

    A lock is the plan `compile` prints, with the trainspec, catalog and botocore
    versions that made it: commit it, and `lock --check` in CI catches a catalog update,
    a defaults change or a new trainspec that silently changes a job.
    """
    from trainspec._cmd_validate import DEFAULTS_FILE_NAME, _spec_files

    files, broken = _spec_files(paths)
    problems = _Problems()
    if broken:
        problems.diagnostics.extend(broken)
    planned: list[tuple[Path, Any]] = []
    for spec in files:
        if spec.name == DEFAULTS_FILE_NAME:
            continue
        plan = problems.compile(str(spec), list(defaults) or None, overrides)
        if plan is not None:
            planned.append((spec, plan))
    if problems.diagnostics:
        print_diagnostics(problems.diagnostics)
        sys.exit(EXIT_INVALID)
    targets: dict[Path, Path] = {}
    for spec, _ in planned:
        target = lock_path(spec, lock_dir)
        if target in targets:  # a.yaml and a.json in one folder
            raise click.UsageError(f"{targets[target]} and {spec} would share the lock {target}")
        targets[target] = spec
    if not check:
        for spec, plan in planned:
            target = lock_path(spec, lock_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = lock_text(spec, plan)
            state = "unchanged"
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
                state = "written"
            click.echo(f"{spec} -> {target} ({state})")
        return
    _check(planned, lock_dir, strict, fmt, defaults)


def _check(
    planned: list[tuple[Path, Any]],
    lock_dir: str | None,
    strict: bool,
    fmt: str,
    defaults: tuple[str, ...],
) -> None:
    from trainspec._plan import read_plan
    from trainspec.compiler._plan_diff import diff_plans

    entries: list[tuple[str, PlanDiff]] = []
    stale: list[str] = []
    notes: list[str] = []
    for spec, plan in planned:
        target = lock_path(spec, lock_dir)
        policy = review_policy(defaults, str(spec))
        if not target.is_file():
            entries.append((str(spec), diff_plans(None, plan, policy)))
            stale.append(f"{spec}: no lock file {target}")
            continue
        result = diff_plans(read_plan(str(target)), plan, policy)
        entries.append((str(spec), result))
        if result.different:
            stale.append(f"{spec}: {target} is stale")
        elif target.read_text(encoding="utf-8") != lock_text(spec, plan):
            message = f"{spec}: {target} has the same job; its provenance or versions differ"
            (stale if strict else notes).append(message)
    for note in notes:
        click.echo(f"note: {note} (trainspec lock refreshes it)", err=True)
    if stale:
        _emit([e for e in entries if e[1].different] or entries, "lock", "spec now", fmt)
        for line in stale:
            click.echo(line, err=True)
        click.echo("run `trainspec lock` on these specs and commit the locks", err=True)
        sys.exit(1)
    click.echo(f"{len(planned)} lock(s) current", err=True)
