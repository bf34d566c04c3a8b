"""`trainspec run --local` and `trainspec jobs`: run plans on this machine and follow them."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from trainspec._errors import EXIT_INFRASTRUCTURE, EXIT_INTERNAL, EXIT_INVALID, handle_errors
from trainspec._options import defaults_option, root_option, set_option


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _user_errors() -> tuple[type[Exception], ...]:
    from trainspec.trainer._artifacts import ArtifactError
    from trainspec.trainer._container import ContainerError
    from trainspec.trainer._local_tune import TuningError

    return ContainerError, TuningError, ArtifactError


@click.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--local", "local", is_flag=True, help="Run on this machine (required for now).")
@root_option
@defaults_option
@set_option
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    envvar="TRAINSPEC_STORAGE",
    help="Tuning: the database of the tuning job, shared by every worker that runs it: "
    "sqlite:///PATH (one machine) or postgresql://USER@HOST:PORT/DATABASE (several "
    "machines; the postgres extra). Default: $TRAINSPEC_STORAGE, then local.tuning_storage "
    "in the defaults file, then <root>/optuna.db. Keep the password out of the URL "
    "(PGPASSWORD or ~/.pgpass): a command line shows in `ps`.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME=PATH",
    callback=lambda _ctx, _param, values: _channel_paths(values),
    help="Read channel NAME from a local file or folder instead of its S3 URI, e.g. a "
    "pretrained model's weights (`model`) or script archive (`code`) fetched elsewhere; "
    "nothing is downloaded for it. Repeatable.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not stream the training log.")
@handle_errors()
def run(
    spec: str,
    local: bool,
    root: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    storage: str | None,
    channels: dict[str, Path],
    quiet: bool,
) -> None:
    """Compile SPEC and run it on this machine as SageMaker's container would.

    A training job writes <root>/<job>/output/model.tar.gz; a tuning job runs its trials
    with Optuna and writes the best trial, a table and plots to <root>/<job>/. Several
    runs of one tuning job with the same --storage (shells, machines) work as one job.
    Rerunning a stopped or killed job resumes it (checkpoints, finished trials). S3
    inputs (channels, a pretrained model's weights and script) are downloaded with your
    AWS credentials into <root>/.cache/s3, checked against S3's ETags, and downloaded
    again only when they change. Exit 0 when the job completed, 1 when it failed or was
    stopped, 4 when the database, the disk or S3 failed.
    """
    if not local:
        raise click.UsageError(
            "give --local to run on this machine; `trainspec submit SPEC` sends it to SageMaker"
        )
    from trainspec.compiler import CompileOptions, compile_file

    plan = compile_file(
        spec, defaults=list(defaults) or None, overrides=overrides, options=CompileOptions()
    )
    for warning in plan.warnings:
        click.echo(f"note: {warning.message}", err=True)
    echo = (lambda line: None) if quiet else None
    from trainspec.compiler import spec_root

    base = Path(spec_root(spec))  # the plan's local paths are relative to it
    tuning = plan.sagemaker_operation == "CreateHyperParameterTuningJob"
    if tuning and storage is None:
        storage = _defaults_storage(spec, defaults)
    from trainspec.trainer._storage_url import scrub

    def shown(text: str) -> str:  # no output ever holds the storage password
        return scrub(text, storage) if storage else text

    from trainspec.trainer._s3_inputs import InputsUnavailable

    try:
        if tuning:
            ok = _run_tuning(plan, base, Path(root), storage, echo, channels)
        else:
            ok = _run_training(plan, base, Path(root), echo, channels)
    except InputsUnavailable as exc:  # before the user errors: it is one of them as well
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INFRASTRUCTURE)
    except _user_errors() as exc:
        _fail(shown(str(exc)))
    except Exception as exc:
        from trainspec.trainer._optuna_storage import InfrastructureError

        if isinstance(exc, InfrastructureError):
            click.echo(f"error: {shown(str(exc))}", err=True)
            click.echo(
                "the database or the disk failed, not the spec: fix it and run the same "
                "command again to resume",
                err=True,
            )
            sys.exit(EXIT_INFRASTRUCTURE)
        if not storage or os.environ.get("TRAINSPEC_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {shown(str(exc))}\n"
            "this is a bug in trainspec; rerun with TRAINSPEC_DEBUG=1 for a traceback",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0 if ok else EXIT_INVALID)


def _channel_paths(values: tuple[str, ...]) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r} is not NAME=PATH", param_hint="--channel")
        if not Path(path).exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="--channel")
        paths[name] = Path(path)
    return paths


def _defaults_storage(spec: str, defaults: tuple[str, ...]) -> str | None:
    """`local.tuning_storage` of the defaults files (the last that sets it wins)."""
    import yaml
    from trainspec.compiler.load._layers import find_defaults_file

    paths = list(defaults) or [p for p in [find_defaults_file(Path(spec).parent)] if p]
    found = None
    for path in paths:
        # compile_file has read and validated these files already
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        value = (tree.get("local") or {}).get("tuning_storage")
        found = value or found
    return found


def _run_training(
    plan: Any, base: Path, root: Path, echo: Any, channels: Mapping[str, Path]
) -> bool:
    from trainspec.trainer._local_run import (
        run_training,
        training_run_from_plan,
        with_local_channels,
    )

    job = with_local_channels(training_run_from_plan(plan, base), channels)
    click.echo(f"==> local training job {job.name} in {root.resolve() / job.name}", err=True)
    result = run_training(job, root, echo=echo)
    click.echo(f"==> {job.name}: {result.secondary_status} after {result.seconds:.1f} s", err=True)
    for name, value in sorted(result.metrics.items()):
        click.echo(f"    {name} = {value:g}")
    if result.artifact is not None:
        click.echo(f"    model artifact: {result.artifact}")
    if not result.ok:
        click.echo(f"error: {result.message}", err=True)
    return result.ok


def _run_tuning(
    plan: Any,
    base: Path,
    root: Path,
    storage: str | None,
    echo: Any,
    channels: Mapping[str, Path],
) -> bool:
    from trainspec.trainer._local_run import with_local_channels
    from trainspec.trainer._local_tune import run_tuning, tuning_from_plan
    from trainspec.trainer._storage_url import default_storage_url, masked

    settings, template = tuning_from_plan(plan, base)
    template = with_local_channels(template, channels)
    click.echo(
        f"==> local tuning job {settings.name}: {settings.strategy}, up to "
        f"{settings.max_jobs} trials, {settings.max_parallel_jobs} at a time (over all "
        f"workers), in {masked(storage or default_storage_url(root))}",
        err=True,
    )
    for note in settings.notes:
        click.echo(f"note: {note}", err=True)
    started = time.monotonic()
    result = run_tuning(settings, template, root, storage_url=storage, echo=echo)
    click.echo(
        f"==> {settings.name}: {result.status} ({result.message}) after "
        f"{time.monotonic() - started:.1f} s",
        err=True,
    )
    click.echo(result.table())
    if result.best is not None:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(result.best.hyperparameters.items()))
        click.echo(
            f"best trial: {result.best.job_name} {settings.objective_metric}="
            f"{result.best.objective:g} ({shown})"
        )
    for path in result.plots:
        click.echo(f"plot: {path}")
    if result.best is None:
        click.echo(
            "error: no trial reported the objective metric "
            f"{settings.objective_metric!r}; see the trials' logs",
            err=True,
        )
    return result.best is not None and result.status == "Completed"


@click.group("jobs")
def jobs() -> None:
    """Local jobs (training, tuning and their trials) in the job store."""


def _store(root: str) -> Any:
    from trainspec.trainer._job_store import JobStore

    if not (Path(root) / "jobs.db").exists():
        _fail(f"no local jobs under {root} (run `trainspec run SPEC --local` first)")
    return JobStore.for_root(Path(root))


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else ""


@jobs.command("list")
@root_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@handle_errors()
def list_jobs(root: str, as_json: bool) -> None:
    """List local jobs, oldest first."""
    # an empty or never-used root is an answer, not an error: nothing has run yet
    records = _store(root).list() if (Path(root) / "jobs.db").exists() else []
    if not records and not as_json:
        click.echo(f"no local jobs under {root} yet (`trainspec run SPEC --local` starts one)")
        return
    if as_json:
        for record in records:
            click.echo(json.dumps(_record_dict(record), sort_keys=True))
        return
    rows = [("NAME", "KIND", "STATUS", "CREATED", "OBJECTIVE")]
    for r in records:
        objective = "" if r.objective is None else f"{r.objective:g}"
        rows.append((r.name, r.kind, r.secondary_status or r.status, _when(r.created), objective))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _record_dict(record: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(record)
    data["hyperparameters"] = dict(record.hyperparameters)
    data["metrics"] = dict(record.metrics)
    return data


@jobs.command("describe")
@click.argument("name")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors()
def describe_job(name: str, root: str, as_json: bool) -> None:
    """Show one local job; a tuning job also lists its trials."""
    store = _store(root)
    record = store.get(name)
    if record is None:
        _suggest_and_fail(store, name)
    trials = store.list(parent=name) if record.kind == "tuning" else []
    if as_json:
        data = _record_dict(record)
        data["trials"] = [_record_dict(t) for t in trials]
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"name:      {record.name}")
    click.echo(f"kind:      {record.kind}" + (f" of {record.parent}" if record.parent else ""))
    click.echo(
        f"status:    {record.status}"
        + (
            f" ({record.secondary_status})"
            if record.secondary_status not in ("", record.status)
            else ""
        )
    )
    if record.message:
        click.echo(f"message:   {record.message}")
    click.echo(f"created:   {_when(record.created)}")
    if record.ended:
        click.echo(f"ended:     {_when(record.ended)} ({record.ended - record.created:.1f} s)")
    click.echo(f"directory: {record.job_dir}")
    if record.artifact:
        click.echo(f"artifact:  {record.artifact}")
    for key, value in sorted(record.hyperparameters.items()):
        click.echo(f"hp         {key} = {value}")
    for key, value in sorted(record.metrics.items()):
        click.echo(f"metric     {key} = {value:g}")
    for trial in trials:
        objective = "" if trial.objective is None else f" objective={trial.objective:g}"
        click.echo(f"trial      {trial.name} {trial.secondary_status or trial.status}{objective}")


def _suggest_and_fail(store: Any, name: str) -> None:
    import difflib

    close = difflib.get_close_matches(name, [r.name for r in store.list()], n=1)
    _fail(f"no local job named {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))


@jobs.command("stop")
@click.argument("name")
@root_option
@handle_errors()
def stop_job(name: str, root: str) -> None:
    """Stop a running local job (a tuning job stops its running trials and starts no more)."""
    store = _store(root)
    record = store.get(name)
    if record is None:
        _suggest_and_fail(store, name)
    if not record.active:
        click.echo(f"{name} is not running ({record.status}); nothing to stop")
        return
    store.request_stop(name)
    click.echo(f"stopping {name}: its runner will mark it Stopped when the process ends")
