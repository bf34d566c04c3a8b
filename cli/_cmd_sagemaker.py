"""`trainspec submit`, `describe` and `stop`: plans on Amazon SageMaker through boto3."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from trainspec._errors import EXIT_INVALID, handle_errors
from trainspec._options import autotune_mode_option, defaults_option, set_option

_REGION_HELP = "AWS region (default: the plan's region, else the boto3 chain: AWS_REGION, ...)."
_ENDPOINT_HELP = "SageMaker and S3 endpoint URL (for testing against a local AWS emulator)."


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _clients(region: str | None, endpoint_url: str | None) -> Any:
    from trainspec.trainer._sagemaker import make_clients

    return make_clients(region=region, endpoint_url=endpoint_url)


def _compile(spec: str, defaults: tuple[str, ...], overrides: tuple[str, ...], mode: str) -> Any:
    from trainspec.compiler import CompileOptions, compile_file

    return compile_file(
        spec,
        defaults=list(defaults) or None,
        overrides=overrides,
        options=CompileOptions(autotune_mode=mode),
    )


def _aws_call(function: Any, *args: Any) -> Any:
    from trainspec.trainer._sagemaker import AwsError, explain

    try:
        return function(*args)
    except AwsError as exc:
        _fail(str(exc))
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, BotoCoreError | ClientError):
            _fail(explain(exc))
        raise


def _follow_options(command: Any) -> Any:
    """--poll-interval and --stop-on-interrupt, shared by `submit --wait` and `describe
    --follow`."""
    command = click.option(
        "--stop-on-interrupt",
        is_flag=True,
        help="Ctrl-C stops the job (by default it only detaches; the job keeps running).",
    )(command)
    return click.option(
        "--poll-interval",
        type=click.FloatRange(min=0.01),
        default=5.0,
        show_default=True,
        help="Seconds between polls of SageMaker and CloudWatch Logs while following.",
    )(command)


def _follow(
    name: str,
    kind: str,
    region: str | None,
    endpoint_url: str | None,
    *,
    logs: bool,
    poll_interval: float,
    stop_on_interrupt: bool,
    plan_request: dict[str, Any] | None = None,
) -> None:
    """Follow the job to its end and exit with its status's code (see _follow.py)."""
    from trainspec.trainer._follow import EXIT_DETACHED, Pace, follow_training, follow_tuning
    from trainspec.trainer._sagemaker import make_clients

    # One attempt per call: the follower retries with its own backoff (it must outlast
    # outages longer than botocore's few attempts, and resume where it left off).
    clients = _aws_call(
        lambda: make_clients(region=region, endpoint_url=endpoint_url, max_attempts=1)
    )
    pace = Pace(poll_s=poll_interval, backoff_s=min(1.0, poll_interval))
    try:
        if kind == "training":
            outcome = _aws_call(
                lambda: follow_training(name, clients, echo=click.echo, logs=logs, pace=pace)
            )
        else:
            outcome = _aws_call(
                lambda: follow_tuning(
                    name, clients, echo=click.echo, pace=pace, plan_request=plan_request
                )
            )
    except KeyboardInterrupt:
        if stop_on_interrupt:
            from trainspec.trainer._sagemaker import stop as stop_job

            _, status = _aws_call(stop_job, name, clients)
            if status in ("InProgress", "Stopping"):
                click.echo(f"interrupted: stopping {kind} job {name} (it was {status})", err=True)
            else:
                click.echo(f"interrupted: {kind} job {name} is {status}; nothing to stop", err=True)
        else:
            click.echo(
                f"detached from {kind} job {name}; it keeps running. Follow it again with: "
                f"trainspec describe {name} --follow (stop it with: trainspec stop {name})",
                err=True,
            )
        sys.exit(EXIT_DETACHED)
    if outcome.status == "Failed":
        click.echo(
            f"error: {kind} job {name} failed: {outcome.reason or 'no reason given'}", err=True
        )
    elif outcome.status == "Stopped":
        click.echo(f"{kind} job {name} was stopped", err=True)
    sys.exit(outcome.exit_code)


@click.command("submit")
@click.argument("spec", type=click.Path(dir_okay=False))
@defaults_option
@set_option
@autotune_mode_option(help_text="native lets SageMaker's Autotune choose the settings.")
@click.option("--region", default=None, help=_REGION_HELP)
@click.option("--endpoint-url", default=None, help=_ENDPOINT_HELP)
@click.option("--dry-run", is_flag=True, help="Print the uploads and the request; send nothing.")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the job to its end (status, metrics, cost) and exit with its status's code.",
)
@click.option(
    "--logs", is_flag=True, help="With --wait (implied): also print every host's log lines."
)
@_follow_options
@handle_errors()
def submit(
    spec: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    autotune_mode: str,
    region: str | None,
    endpoint_url: str | None,
    dry_run: bool,
    wait: bool,
    logs: bool,
    stop_on_interrupt: bool,
    poll_interval: float,
) -> None:
    """Compile SPEC and start it on SageMaker with exactly the planned request.

    Local source and data folders are uploaded first to the S3 locations the plan names.
    The job's name ends in a digest of its request, so submitting an unchanged spec again
    reports the job it started the first time (exit 0) and a changed one starts a new job.
    Credentials come from the usual boto3 chain.

    With --wait (or --logs) it follows the job as `describe --follow` does and exits with
    0 when it completes, 1 when it fails, 5 when it was stopped; Ctrl-C detaches (exit 130)
    and leaves the job running, or stops it with --stop-on-interrupt.
    """
    from pathlib import Path

    from trainspec.compiler import spec_root
    from trainspec.trainer._sagemaker import plan_region, uploads
    from trainspec.trainer._sagemaker import submit as submit_plan

    plan = _compile(spec, defaults, overrides, autotune_mode)
    base = Path(spec_root(spec))  # the plan's local paths are relative to it
    if dry_run:
        from trainspec._plan import request_of

        for local, uri in uploads(plan, base):
            click.echo(f"upload {local} -> {uri}")
        request = request_of(plan)
        click.echo(f"{plan.sagemaker_operation} " + json.dumps(request, indent=2, sort_keys=True))
        return
    region = region or plan_region(plan) or None
    clients = _aws_call(_clients, region, endpoint_url)
    result = _aws_call(submit_plan, plan, clients, base)
    wait = wait or logs
    if result.existing:
        click.echo(
            f"already submitted: {result.name} ({result.operation}) is {result.status}: "
            f"{result.arn}"
        )
        click.echo(
            "the plan is unchanged since it was submitted (the job name carries its digest); "
            "to run it again, change the spec, e.g. its name",
            err=True,
        )
    else:
        for uri in result.uploaded:
            click.echo(f"uploaded {uri}", err=True)
        click.echo(f"submitted {result.name} ({result.operation}): {result.arn}")
    if not wait:
        click.echo(f"follow it with: trainspec describe {result.name} --follow", err=True)
        return
    from trainspec._plan import request_of

    kind = "training" if result.operation == "CreateTrainingJob" else "tuning"
    if logs and kind == "tuning":
        click.echo(
            "(a tuning job has no log of its own: each trial's is followed with "
            "`trainspec describe TRIAL --follow`)",
            err=True,
        )
    _follow(
        result.name,
        kind,
        region,
        endpoint_url,
        logs=logs,
        poll_interval=poll_interval,
        stop_on_interrupt=stop_on_interrupt,
        plan_request=request_of(plan),
    )


def _describe_lines(kind: str, response: dict[str, Any]) -> list[str]:
    lines = []
    if kind == "training":
        lines.append(f"training job {response.get('TrainingJobName')}")
        lines.append(
            f"  status:     {response.get('TrainingJobStatus')} "
            f"({response.get('SecondaryStatus', '')})"
        )
        for key, label in (
            ("FailureReason", "failure"),
            ("CreationTime", "created"),
            ("TrainingStartTime", "started"),
            ("TrainingEndTime", "ended"),
        ):
            if response.get(key):
                lines.append(f"  {label + ':':<11} {response[key]}")
        artifact = response.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if artifact:
            lines.append(f"  artifact:   {artifact}")
        for metric in response.get("FinalMetricDataList", []):
            lines.append(f"  metric      {metric.get('MetricName')} = {metric.get('Value')}")
        return lines
    lines.append(f"tuning job {response.get('HyperParameterTuningJobName')}")
    lines.append(f"  status:     {response.get('HyperParameterTuningJobStatus')}")
    if response.get("FailureReason"):
        lines.append(f"  failure:    {response['FailureReason']}")
    counters = response.get("TrainingJobStatusCounters", {})
    if counters:
        lines.append("  trials:     " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    best = response.get("BestTrainingJob")
    if best:
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        lines.append(
            f"  best:       {best.get('TrainingJobName')} "
            f"{objective.get('MetricName', '')}={objective.get('Value', '')}"
        )
        for key, value in sorted(best.get("TunedHyperParameters", {}).items()):
            lines.append(f"    {key} = {value}")
    if response.get("Autotune"):
        lines.append(f"  autotune:   {json.dumps(response['Autotune'])}")
    return lines


@click.command("describe")
@click.argument("name")
@click.option(
    "--spec",
    type=click.Path(dir_okay=False),
    default=None,
    help="The job's spec: show the plan's tuning settings beside SageMaker's "
    "(native Autotune chooses them on SageMaker's side).",
)
@autotune_mode_option("native", help_text="How --spec is compiled.")
@click.option("--region", default=None, help=_REGION_HELP)
@click.option("--endpoint-url", default=None, help=_ENDPOINT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print SageMaker's whole response.")
@click.option(
    "--follow",
    is_flag=True,
    help="Follow the job to its end: status transitions, logs, metrics, cost; exit with "
    "its status's code.",
)
@click.option(
    "--logs/--no-logs",
    default=True,
    show_default=True,
    help="With --follow: print every host's CloudWatch log lines.",
)
@_follow_options
@handle_errors()
def describe(
    name: str,
    spec: str | None,
    autotune_mode: str,
    region: str | None,
    endpoint_url: str | None,
    as_json: bool,
    follow: bool,
    logs: bool,
    stop_on_interrupt: bool,
    poll_interval: float,
) -> None:
    """Show a SageMaker training or tuning job called NAME.

    With --follow it prints the job's life as it happens (from its start, for a job that
    already ran) and exits with 0 when it completes, 1 when it fails (with SageMaker's
    reason), 5 when it was stopped; Ctrl-C detaches (exit 130), or stops the job with
    --stop-on-interrupt.
    """
    from trainspec.trainer._sagemaker import autotune_comparison
    from trainspec.trainer._sagemaker import describe as describe_job

    plan = _compile(spec, (), (), autotune_mode) if spec else None
    if plan is not None and region is None:
        from trainspec.trainer._sagemaker import plan_region

        region = plan_region(plan) or None
    clients = _aws_call(_clients, region, endpoint_url)
    kind, response = _aws_call(describe_job, name, clients)
    response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    if follow:
        from trainspec._plan import request_of

        _follow(
            name,
            kind,
            region,
            endpoint_url,
            logs=logs,
            poll_interval=poll_interval,
            stop_on_interrupt=stop_on_interrupt,
            plan_request=request_of(plan) if plan is not None else None,
        )
    if as_json:
        click.echo(json.dumps(response, indent=2, sort_keys=True, default=str))
        return
    for line in _describe_lines(kind, response):
        click.echo(line)
    if plan is not None and kind == "tuning":
        from trainspec._plan import request_of

        request = request_of(plan)
        click.echo("  tuning settings, the plan's beside SageMaker's:")
        for key, mine, theirs in autotune_comparison(request, response):
            click.echo(f"    {key}:\n      plan:      {mine}\n      SageMaker: {theirs}")


@click.command("stop")
@click.argument("name")
@click.option("--region", default=None, help=_REGION_HELP)
@click.option("--endpoint-url", default=None, help=_ENDPOINT_HELP)
@handle_errors()
def stop(name: str, region: str | None, endpoint_url: str | None) -> None:
    """Stop the SageMaker training or tuning job called NAME."""
    from trainspec.trainer._sagemaker import stop as stop_job

    clients = _aws_call(_clients, region, endpoint_url)
    kind, status = _aws_call(stop_job, name, clients)
    if status in ("InProgress", "Stopping"):
        click.echo(f"stopping {kind} job {name} (it was {status})")
    else:
        click.echo(f"{kind} job {name} is {status}; nothing to stop")
