"""One tuning job as every worker sees it: trials counted in the shared storage, and the
rules that say whether a trial may start and when the job is over (pure functions)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trainspec.trainer._tuning_settings import TuningSettings

# Study attributes in the shared storage: the verdict every worker reports, and when the
# job (re)started, for its maximum runtime.
VERDICT_ATTR, STARTED_ATTR = "trainspec_verdict", "trainspec_started"
# Trial attributes: the local job that ran it, why it was interrupted, its failure message.
JOB_ATTR, INTERRUPTED_ATTR, MESSAGE_ATTR = (
    "trainspec_job",
    "trainspec_interrupted",
    "trainspec_message",
)
# Optuna's retry callback records the trials a retried trial replaces under this key.
RETRY_HISTORY = "retry_history"

COMPLETED, STOPPED, FAILED = "Completed", "Stopped", "Failed"


@dataclass(frozen=True)
class Verdict:
    """How the job ended: SageMaker's status and why. `rule` is `budget` (every trial
    ran), `criteria` (a completion criterion), `runtime` or `request` (stopped)."""

    status: str
    message: str
    rule: str
    max_jobs: int

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, value: Any) -> Verdict | None:
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                str(value["status"]),
                str(value["message"]),
                str(value["rule"]),
                int(value["max_jobs"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def resumable(self) -> bool:
        """A stopped job resumes when run again; a completed one refuses new trials."""
        return self.status == STOPPED


@dataclass(frozen=True)
class Counts:
    """The job's trials by what they mean for its limits. A trial that was retried (its
    worker died, or the job was stopped) is replaced by its retry and not counted."""

    completed: int = 0
    stopped_early: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.stopped_early + self.failed

    @property
    def used(self) -> int:
        """Trials that take a place in `max_jobs`: finished, running and queued."""
        return self.finished + self.running + self.waiting


def retried_numbers(trials: Sequence[Any]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY, ())}


def count(trials: Sequence[Any]) -> Counts:
    retried = retried_numbers(trials)
    states = [t.state.name for t in trials if t.number not in retried]
    return Counts(
        completed=states.count("COMPLETE"),
        stopped_early=states.count("PRUNED"),
        failed=states.count("FAIL"),
        running=states.count("RUNNING"),
        waiting=states.count("WAITING"),
    )


class Step(enum.Enum):
    RUN = "run"  # start a trial now (a queued one first)
    WAIT = "wait"  # the parallel limit is reached, or the last trials are still running


def next_step(settings: TuningSettings, counts: Counts) -> Step:
    """Whether one more trial may start, with the job's limits counted over all workers."""
    if counts.running >= max(settings.max_parallel_jobs, 1):
        return Step.WAIT
    if counts.waiting > 0 or counts.used < settings.trial_budget:
        return Step.RUN
    return Step.WAIT


def decide(
    settings: TuningSettings,
    trials: Sequence[Any],
    *,
    elapsed_seconds: float,
    stop_requested: bool,
) -> Verdict | None:
    """The job's verdict if it is over now, else None. Called under the job's lock, and
    the answer is stored, so every worker reports the same one."""

    def verdict(status: str, message: str, rule: str) -> Verdict:
        return Verdict(status, message, rule, settings.max_jobs)

    if stop_requested:
        return verdict(STOPPED, "stopped on request", "request")
    runtime = settings.max_runtime_seconds
    if runtime is not None and elapsed_seconds >= runtime:
        return verdict(STOPPED, f"stopped after the maximum runtime of {runtime:g} s", "runtime")
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    if complete:
        sign = 1 if settings.maximize else -1
        best = max(complete, key=lambda t: (sign * t.value, -t.number))
        target = settings.target_objective_value
        if target is not None and sign * best.value >= sign * target:
            return verdict(
                COMPLETED,
                f"completion criteria met: the objective reached the target {target:g}",
                "criteria",
            )
        limit = settings.max_jobs_not_improving
        if limit and sum(1 for t in complete if t.number > best.number) >= limit:
            return verdict(
                COMPLETED,
                f"completion criteria met: the best objective did not improve for {limit} trials",
                "criteria",
            )
    counts = count(trials)
    budget = settings.trial_budget
    if counts.finished >= budget and counts.running == counts.waiting == 0:
        if budget < settings.max_jobs:
            return verdict(COMPLETED, f"all {budget} grid combinations were tried", "budget")
        return verdict(COMPLETED, f"all {budget} trials finished", "budget")
    return None


def reopens(stored: Verdict, settings: TuningSettings) -> bool:
    """Whether a rerun continues a job that has a verdict: a stopped job resumes, and a
    job that ran out of trials continues when `max_jobs` was raised."""
    return stored.resumable or (stored.rule == "budget" and settings.max_jobs > stored.max_jobs)
