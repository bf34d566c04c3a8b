"""Follow a SageMaker job to its end: status transitions, every host's log, metrics, cost.

`follow_training` and `follow_tuning` poll the Describe* call (and CloudWatch Logs),
hand each line to `echo` as it happens, and return the job's `Outcome`; the CLI turns
that into an exit code. They never print or exit themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainspec.trainer._logs import LogTail
from trainspec.trainer._metrics import MetricDefinition, MetricParser
from trainspec.trainer._sagemaker import AwsError, Clients, autotune_comparison, explain

# Exit codes of a followed job's final status (the CLI's 1-3 keep their meaning; a job
# that failed is a failed command). 130 is the shell's code for an interrupted command.
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_STOPPED = 5  # 4 is an infrastructure failure (cli/_errors.py)
EXIT_DETACHED = 130
_EXIT_CODES = {"Completed": EXIT_COMPLETED, "Failed": EXIT_FAILED, "Stopped": EXIT_STOPPED}
TERMINAL = tuple(_EXIT_CODES)

_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",  # CloudWatch Logs' DescribeLogStreams quota
}


@dataclass(frozen=True)
class Pace:
    """How often to poll, and how to back off when AWS throttles or cannot be reached:
    waits double from `backoff_s` up to `backoff_max_s`; after `max_failures` failures in
    a row the follow gives up with the last error."""

    poll_s: float = 5.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_failures: int = 12

    def __post_init__(self) -> None:
        for name in ("poll_s", "backoff_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Pace.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_failures < 1:
            raise ValueError(f"Pace.max_failures must be at least 1, got {self.max_failures!r}")


@dataclass(frozen=True)
class Outcome:
    """A followed job's final status, SageMaker's reason for it, and the exit code."""

    name: str
    status: str
    reason: str = ""

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self.status, EXIT_FAILED)


Echo = Callable[[str], None]
Sleep = Callable[[float], None]


def _pause(seconds: float) -> None:
    """The wait between polls (a module function, so tests can drive a job's life here)."""
    time.sleep(seconds)


class _Retrying:
    """Calls an AWS function until it answers, backing off on throttling and lost
    connections (the clients themselves make one attempt: this is the only retry loop, so
    a long outage is ridden out at the pace's rhythm, not botocore's)."""

    def __init__(self, pace: Pace, echo: Echo, sleep: Sleep) -> None:
        self._pace, self._echo, self._sleep = pace, echo, sleep

    def __call__(self, function: Callable[..., Any], **kwargs: Any) -> Any:
        failures = 0
        while True:
            try:
                result = function(**kwargs)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                if failures >= self._pace.max_failures:
                    raise AwsError(
                        f"gave up following after {failures} failed attempts: {explain(exc)}"
                    ) from None
                wait = min(self._pace.backoff_s * 2 ** (failures - 1), self._pace.backoff_max_s)
                self._echo(f"(retrying in {wait:g}s: {_short(exc)})")
                self._sleep(wait)
                continue
            if failures:
                self._echo("(reconnected; resuming where it left off)")
            return result


def _retryable(exc: BaseException) -> bool:
    from botocore import exceptions as bex

    if isinstance(exc, bex.ConnectionError | bex.HTTPClientError):
        return True
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _THROTTLED or (isinstance(status, int) and status >= 500)
    return False


def _short(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name} {error.get('Code', '')}".strip()
    return f"connection lost ({type(exc).__name__})"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")


def follow_training(
    name: str,
    clients: Clients,
    *,
    echo: Echo,
    logs: bool = True,
    pace: Pace | None = None,
    sleep: Sleep | None = None,
) -> Outcome:
    """Follow the training job `name` until it is Completed, Failed or Stopped."""
    pace = pace or Pace()
    sleep = sleep or _pause
    call = _Retrying(pace, echo, sleep)
    tail = LogTail(clients.logs, name) if logs else None
    shown: set[tuple[str, str]] = set()
    status = ""
    parser: MetricParser | None = None
    metrics: dict[str, Any] = {}
    while True:
        job = _describe(call, clients.sagemaker.describe_training_job, TrainingJobName=name)
        if parser is None:
            parser = _parser(job, echo)
        for transition in job.get("SecondaryStatusTransitions", []):
            key = (transition.get("Status", ""), transition.get("StatusMessage", ""))
            if key not in shown:
                shown.add(key)
                when = _when(transition.get("StartTime"))
                echo(f"{when} {key[0]}: {key[1]}" if key[1] else f"{when} {key[0]}")
        if job.get("TrainingJobStatus", "") != status:
            status = job.get("TrainingJobStatus", "")
            echo(f"status: {status}")
        if tail is not None:
            for line in call(tail.poll):
                echo(f"[{line.host}] {line.message}")
                for point in parser.feed(line.message):
                    echo(f"metric {point.name} = {point.value:g} [{line.host}]")
        else:
            for metric in job.get("FinalMetricDataList", []):
                key = metric.get("MetricName", "")
                if metrics.get(key) != metric.get("Value"):
                    metrics[key] = metric.get("Value")
                    echo(f"metric {key} = {_number(metric.get('Value'))}")
        if status in TERMINAL:
            for line in _training_summary(job):
                echo(line)
            return Outcome(name, status, str(job.get("FailureReason", "")))
        sleep(pace.poll_s)


def _describe(call: _Retrying, function: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return call(function, **kwargs)
    except ClientError as exc:
        raise AwsError(explain(exc, name=next(iter(kwargs.values()), ""))) from None


def _parser(job: Mapping[str, Any], echo: Echo) -> MetricParser:
    definitions = tuple(
        MetricDefinition(d.get("Name", ""), d.get("Regex", ""))
        for d in job.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
    )
    try:
        return MetricParser(definitions)
    except ValueError as exc:  # SageMaker accepted it, Python's re does not
        echo(f"(metrics not read from the log: {exc})")
        return MetricParser(())


def _training_summary(job: Mapping[str, Any]) -> list[str]:
    status = job.get("TrainingJobStatus", "")
    lines = [f"{status}: training job {job.get('TrainingJobName', '')}"]
    if job.get("FailureReason"):
        lines.append(f"  failure reason:   {job['FailureReason']}")
    training = job.get("TrainingTimeInSeconds")
    billable = job.get("BillableTimeInSeconds")
    if training is not None:
        lines.append(f"  training seconds: {training}")
    if billable is not None:
        lines.append(f"  billable seconds: {billable}")
    if job.get("EnableManagedSpotTraining") and training and billable is not None:
        # As the SageMaker Python SDK reports it: the share of the run not billed.
        lines.append(f"  managed spot training savings: {(1 - billable / training) * 100:.1f}%")
    for metric in job.get("FinalMetricDataList", []):
        lines.append(f"  final {metric.get('MetricName')} = {_number(metric.get('Value'))}")
    artifact = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if artifact and status == "Completed":
        lines.append(f"  model artifact:   {artifact}")
    return lines


def follow_tuning(
    name: str,
    clients: Clients,
    *,
    echo: Echo,
    pace: Pace | None = None,
    sleep: Sleep | None = None,
    plan_request: Mapping[str, Any] | None = None,
) -> Outcome:
    """Follow the tuning job `name`: its trials and best training job so far; at the end,
    Autotune's settings beside the plan's (`plan_request`, when given)."""
    pace = pace or Pace()
    sleep = sleep or _pause
    call = _Retrying(pace, echo, sleep)
    last: dict[str, Any] = {}
    while True:
        job = _describe(
            call,
            clients.sagemaker.describe_hyper_parameter_tuning_job,
            HyperParameterTuningJobName=name,
        )
        now = _when(job.get("LastModifiedTime"))
        status = job.get("HyperParameterTuningJobStatus", "")
        for key, line in (
            ("status", f"status: {status}"),
            ("trials", _trials(job.get("TrainingJobStatusCounters", {}))),
            ("best", _best(job.get("BestTrainingJob"))),
        ):
            if line and last.get(key) != line:
                last[key] = line
                echo(f"{now} {line}" if key != "status" else line)
        if status in TERMINAL:
            echo(f"{status}: tuning job {name}")
            if job.get("FailureReason"):
                echo(f"  failure reason: {job['FailureReason']}")
            consumed = job.get("ConsumedResources", {}).get("RuntimeInSeconds")
            if consumed is not None:
                echo(f"  runtime seconds: {consumed}")
            if plan_request is not None:
                rows = autotune_comparison(plan_request, job)
                if rows:
                    echo("  tuning settings, the plan's beside SageMaker's:")
                for key, mine, theirs in rows:
                    echo(f"    {key}:\n      plan:      {mine}\n      SageMaker: {theirs}")
            return Outcome(name, status, str(job.get("FailureReason", "")))
        sleep(pace.poll_s)


def _trials(counters: Mapping[str, Any]) -> str:
    if not counters:
        return ""
    failed = int(counters.get("RetryableError", 0)) + int(counters.get("NonRetryableError", 0))
    return (
        f"trials: {counters.get('Completed', 0)} completed, {counters.get('InProgress', 0)} "
        f"running, {counters.get('Stopped', 0)} stopped (early or by request), {failed} failed"
    )


def _best(best: Mapping[str, Any] | None) -> str:
    if not best:
        return ""
    objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
    return (
        f"best so far: {best.get('TrainingJobName', '')} "
        f"{objective.get('MetricName', '')} = {objective.get('Value', '')}"
    )
