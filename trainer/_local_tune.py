"""Run a tuning plan's trials locally with Optuna, persisting them so a tuning job resumes."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from trainspec.trainer import _job_store as js
from trainspec.trainer._container import ContainerError, TrainingRun, check_job_name, job_dir
from trainspec.trainer._local_run import RunResult, run_training, training_run_from_parts
from trainspec.trainer._metrics import MetricPoint
from trainspec.v1 import plan_pb2

# Optuna attributes that tie a trial to the local job that ran it.
_ATTR_JOB, _ATTR_HOST, _ATTR_PID = "trainspec_job", "trainspec_host", "trainspec_pid"
_ATTR_INTERRUPTED = "trainspec_interrupted"


class TuningError(Exception):
    """The tuning plan cannot run locally; user-facing."""


@dataclass(frozen=True)
class ParameterRange:
    """One tuned hyperparameter: `integer`, `continuous` or `categorical`."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class TuningSettings:
    """The parts of HyperParameterTuningJobConfig the local tuner honours."""

    name: str
    strategy: str  # Bayesian | Random | Grid | Hyperband
    objective_metric: str
    maximize: bool
    ranges: tuple[ParameterRange, ...]
    max_jobs: int
    max_parallel_jobs: int = 1
    max_runtime_seconds: float | None = None
    early_stopping: str = "Off"  # Off | Auto
    target_objective_value: float | None = None
    max_jobs_not_improving: int | None = None
    min_resource: int = 1
    max_resource: int = 0
    random_seed: int | None = None
    notes: tuple[str, ...] = ()  # settings only SageMaker applies


@dataclass(frozen=True)
class TrialSummary:
    number: int
    job_name: str
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    objective: float | None
    hyperparameters: Mapping[str, Any]
    message: str = ""


@dataclass(frozen=True)
class TuningResult:
    name: str
    status: str  # Completed | Stopped | Failed
    message: str
    best: TrialSummary | None
    trials: tuple[TrialSummary, ...]
    plots: tuple[Path, ...]
    out_dir: Path

    def table(self) -> str:
        """A plain-text table of the trials, best marked with `*`."""
        names = sorted({k for t in self.trials for k in t.hyperparameters})
        header = ["", "trial", "job", "state", "objective", *names]
        rows = [header]
        for trial in self.trials:
            best = "*" if self.best is not None and trial.number == self.best.number else ""
            objective = "" if trial.objective is None else f"{trial.objective:.6g}"
            values = [_fmt(trial.hyperparameters.get(n, "")) for n in names]
            rows.append([best, str(trial.number), trial.job_name, trial.state, objective, *values])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def tuning_from_plan(
    plan: plan_pb2.Plan, base: Path | None = None
) -> tuple[TuningSettings, TrainingRun]:
    """The tuner's settings and the trial template of a CreateHyperParameterTuningJob plan;
    the plan's local paths are relative to `base` (by default the working directory)."""
    if plan.sagemaker_operation != "CreateHyperParameterTuningJob":
        raise TuningError(f"plan is a {plan.sagemaker_operation or 'empty'} plan, not tuning")
    return tuning_from_request(
        json_format.MessageToDict(plan.sagemaker_request), plan.job.tuning.training, base
    )


def tuning_from_request(
    request: Mapping[str, Any], training_spec: Any, base: Path | None = None
) -> tuple[TuningSettings, TrainingRun]:
    """Settings and trial template from the boto3 request and the resolved training spec."""
    config = request.get("HyperParameterTuningJobConfig", {})
    if request.get("Autotune") and not config.get("ParameterRanges"):
        raise TuningError(
            "native Autotune leaves the ranges to SageMaker, so the plan has none to run "
            "locally; compile with explicit Autotune (the default) for local tuning"
        )
    if "TrainingJobDefinitions" in request:
        raise TuningError("local tuning runs one training job definition, not several")
    definition = request.get("TrainingJobDefinition", {})
    name = request["HyperParameterTuningJobName"]
    template = training_run_from_parts(
        name,
        training_spec,
        definition,
        hyperparameters=definition.get("StaticHyperParameters", {}),
        base=base,
    )
    objective = config.get("HyperParameterTuningJobObjective", {})
    metric = objective.get("MetricName", "")
    if metric not in {d.name for d in template.metric_definitions}:
        raise TuningError(
            f"objective metric {metric!r} has no metric definition in the training job "
            "(add it to training.metrics with a regex)"
        )
    ranges = []
    spec_ranges = config.get("ParameterRanges", {})
    for item in spec_ranges.get("IntegerParameterRanges", []):
        ranges.append(
            ParameterRange(
                item["Name"],
                "integer",
                int(item["MinValue"]),
                int(item["MaxValue"]),
                item.get("ScalingType", "Auto"),
            )
        )
    for item in spec_ranges.get("ContinuousParameterRanges", []):
        ranges.append(
            ParameterRange(
                item["Name"],
                "continuous",
                float(item["MinValue"]),
                float(item["MaxValue"]),
                item.get("ScalingType", "Auto"),
            )
        )
    for item in spec_ranges.get("CategoricalParameterRanges", []):
        ranges.append(
            ParameterRange(item["Name"], "categorical", values=tuple(map(str, item["Values"])))
        )
    if not ranges:
        raise TuningError("the tuning job has no parameter ranges to search")
    limits = config.get("ResourceLimits", {})
    criteria = config.get("TuningJobCompletionCriteria", {})
    not_improving = criteria.get("BestObjectiveNotImproving", {})
    hyperband = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig", {})
    target = criteria.get("TargetObjectiveMetricValue")
    runtime = limits.get("MaxRuntimeInSeconds")
    notes = []
    if criteria.get("ConvergenceDetected", {}).get("CompleteOnConvergence") == "Enabled":
        notes.append("convergence detection is SageMaker's own; local runs do not apply it")
    if any(r.scaling == "ReverseLogarithmic" for r in ranges):
        notes.append("reverse-logarithmic ranges are searched linearly (Optuna has no such scale)")
    if (
        config.get("TrainingJobEarlyStoppingType") == "Auto"
        and config.get("Strategy") != "Hyperband"
    ):
        notes.append("early stopping Auto prunes trials below the median at the same epoch")
    settings = TuningSettings(
        notes=tuple(notes),
        name=name,
        strategy=config.get("Strategy", "Bayesian"),
        objective_metric=metric,
        maximize=objective.get("Type", "Maximize") == "Maximize",
        ranges=tuple(ranges),
        max_jobs=int(limits.get("MaxNumberOfTrainingJobs", 1)),
        max_parallel_jobs=int(limits.get("MaxParallelTrainingJobs", 1)),
        max_runtime_seconds=float(runtime) if runtime else None,
        early_stopping=config.get("TrainingJobEarlyStoppingType", "Off"),
        target_objective_value=float(target) if target is not None else None,
        max_jobs_not_improving=(
            int(not_improving["MaxNumberOfTrainingJobsNotImproving"]) if not_improving else None
        ),
        min_resource=int(hyperband.get("MinResource", 1)),
        max_resource=int(hyperband.get("MaxResource", 0)),
        random_seed=int(config["RandomSeed"]) if "RandomSeed" in config else None,
    )
    return settings, template


def _sampler(settings: TuningSettings) -> Any:
    import optuna

    seed = settings.random_seed
    if settings.strategy == "Grid":
        space = {}
        for r in settings.ranges:
            if r.kind != "categorical":
                raise TuningError(
                    f"Grid search takes categorical ranges only; {r.name} is {r.kind}"
                )
            space[r.name] = list(r.values)
        return optuna.samplers.GridSampler(space, seed=seed)
    if settings.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Bayesian and Hyperband: TPE is Optuna's model-based sampler; SageMaker's Hyperband
    # also samples with a Bayesian model.
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(settings: TuningSettings) -> Any:
    import optuna

    if settings.strategy == "Hyperband":
        max_resource: Any = settings.max_resource or "auto"
        return optuna.pruners.HyperbandPruner(
            min_resource=max(settings.min_resource, 1), max_resource=max_resource
        )
    if settings.early_stopping == "Auto":
        # SageMaker's rule: stop a trial whose objective is worse than the median of
        # earlier trials at the same epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, r: ParameterRange) -> Any:
    if r.kind == "categorical":
        return trial.suggest_categorical(r.name, list(r.values))
    log = r.scaling == "Logarithmic"
    if r.kind == "integer":
        return trial.suggest_int(r.name, int(r.low), int(r.high), log=log)
    # Optuna has no reverse-logarithmic distribution; such ranges are searched linearly.
    return trial.suggest_float(r.name, r.low, r.high, log=log)


def _as_hyperparameter(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class _TrialFailed(Exception):
    """A trial ended without an objective value; Optuna records it as FAIL."""


def default_storage_url(root: Path) -> str:
    return f"sqlite:///{(Path(root) / 'optuna.db').resolve()}"


def run_tuning(
    settings: TuningSettings,
    template: TrainingRun,
    root: Path,
    *,
    storage_url: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> TuningResult:
    """Run (or resume) the tuning job: trials until max jobs, max runtime or completion.

    Trials persist in Optuna's RDB storage (SQLite under `root` unless `storage_url`
    names a shared database) and in the job store; a rerun with the same name resumes,
    reruns trials that were cut off, and never repeats finished ones.
    """
    import optuna

    echo = echo or _print
    root = Path(root)
    check_job_name(settings.name)  # before any path is made from it
    try:
        root.mkdir(parents=True, exist_ok=True)
        store = js.JobStore.for_root(root)
    except Exception as exc:
        raise ContainerError(f"cannot use {root} for local jobs: {exc}") from None
    out_dir = job_dir(root, settings.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url or default_storage_url(root)
    previous_verbosity = optuna.logging.get_verbosity()
    # Optuna would log every failed trial with a traceback; the tuner reports them itself.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        try:
            from trainspec.trainer._optuna_storage import TrialStorage

            storage = TrialStorage(url)
        except Exception as exc:
            raise TuningError(f"cannot open the tuning storage {url}: {exc}") from None
        study = optuna.create_study(
            study_name=settings.name,
            storage=storage,
            sampler=_sampler(settings),
            pruner=_pruner(settings),
            direction="maximize" if settings.maximize else "minimize",
            load_if_exists=True,
        )
        requeued = _recover_interrupted(study)
        done = _finished_count(study)
        if requeued or done:
            echo(
                f"resuming tuning job {settings.name}: {done} trial(s) finished, "
                f"{requeued} interrupted trial(s) to rerun\n"
            )
        store.start(settings.name, "tuning", job_dir=str(out_dir))
        with _ctrl_c_stops(store, settings.name, echo):
            status, message = _optimize(settings, template, root, study, store, echo)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            store.finish(settings.name, js.STOPPED, message="interrupted (Ctrl-C); rerun to resume")
        raise
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
    trials = tuple(_summary(t) for t in study.trials)
    best = _best(settings, trials)
    plots = _plots(settings, trials, out_dir)
    result = TuningResult(settings.name, status, message, best, trials, plots, out_dir)
    (out_dir / "trials.txt").write_text(result.table() + "\n", encoding="utf-8")
    store.finish(
        settings.name,
        status,
        message=message,
        objective=best.objective if best else None,
        metrics={settings.objective_metric: best.objective} if best and best.objective else None,
    )
    return result


@contextlib.contextmanager
def _ctrl_c_stops(store: js.JobStore, name: str, echo: Callable[[str], None]) -> Iterator[None]:
    """The first Ctrl-C stops the tuning job like `trainspec jobs stop`: running trials
    get SIGTERM and are rerun on resume; a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        echo(f"stopping tuning job {name} (Ctrl-C again to abort)\n")
        store.request_stop(name)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print(line: str) -> None:
    import sys

    sys.stdout.write(line)
    sys.stdout.flush()


def _recover_interrupted(study: Any) -> int:
    """Fail trials whose local runner died, and queue every interrupted trial's parameters
    again (once: the study remembers which trials it has requeued)."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get(_ATTR_HOST) != host or js._alive(int(attrs.get(_ATTR_PID, 0))):
            continue  # another machine's trial, or another local tuner is running it
        study._storage.set_trial_user_attr(trial._trial_id, _ATTR_INTERRUPTED, "killed")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    done = set(study.user_attrs.get("trainspec_requeued", []))
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.user_attrs.get(_ATTR_INTERRUPTED) and trial.number not in done and trial.params:
            study.enqueue_trial(trial.params, skip_if_exists=False)
            done.add(trial.number)
            count += 1
    study.set_user_attr("trainspec_requeued", sorted(done))
    return count


def _finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(_ATTR_INTERRUPTED))
    )


def _optimize(
    settings: TuningSettings,
    template: TrainingRun,
    root: Path,
    study: Any,
    store: js.JobStore,
    echo: Callable[[str], None],
) -> tuple[str, str]:
    import optuna
    from optuna.trial import TrialState

    remaining = settings.max_jobs - _finished_count(study)
    if remaining <= 0:
        return js.COMPLETED, f"all {settings.max_jobs} trials had finished already"
    deadline = (
        time.monotonic() + settings.max_runtime_seconds if settings.max_runtime_seconds else None
    )
    reason: list[str] = []
    echo_lock = threading.Lock()

    def objective(trial: Any) -> float:
        if store.stop_requested(settings.name):
            trial.study.stop()
            trial.set_user_attr(_ATTR_INTERRUPTED, "stopped")  # not a finished trial
            raise _TrialFailed("the tuning job was stopped before this trial started")
        values = {r.name: _suggest(trial, r) for r in settings.ranges}
        job = f"{settings.name}-{trial.number:03d}"
        for key, value in ((_ATTR_JOB, job), (_ATTR_HOST, socket.gethostname())):
            trial.set_user_attr(key, value)
        trial.set_user_attr(_ATTR_PID, os.getpid())
        hyperparameters = dict(template.hyperparameters)
        hyperparameters.update({k: _as_hyperparameter(v) for k, v in values.items()})
        run = replace(template, name=job, hyperparameters=hyperparameters)
        with echo_lock:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            echo(f"[{job}] starting: {shown}\n")

        def on_metric(point: MetricPoint) -> bool:
            if point.name != settings.objective_metric:
                return False
            # Resource steps count from 1 (epochs), as Hyperband's min/max resource do.
            trial.report(point.value, point.step + 1)
            return trial.should_prune()

        def trial_echo(line: str) -> None:
            with echo_lock:
                echo(f"[{job}] {line}")

        budget = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            result = run_training(
                run,
                root,
                store=store,
                kind="trial",
                parent=settings.name,
                echo=trial_echo,
                on_metric=on_metric,
                max_runtime_seconds=budget,
            )
        except KeyboardInterrupt:
            trial.set_user_attr(_ATTR_INTERRUPTED, "ctrl-c")
            raise
        value = _trial_value(settings, result)
        if result.secondary_status == js.STOPPED:
            trial.set_user_attr(_ATTR_INTERRUPTED, "stopped")  # rerun on resume
        with echo_lock:
            shown = "" if value is None else f", {settings.objective_metric}={value:.6g}"
            echo(f"[{job}] {result.secondary_status}{shown}\n")
        if result.secondary_status == "EarlyStopped":
            raise optuna.TrialPruned()
        if value is None:
            if result.ok:
                message = (
                    f"trial {job} printed no value of the objective metric "
                    f"{settings.objective_metric!r} (check its regex in training.metrics)"
                )
            else:
                message = f"trial {job} {result.status.lower()}: {result.message}"
            store.finish(
                job,
                js.FAILED if result.ok else result.status,
                secondary_status=js.FAILED if result.ok else result.secondary_status,
                message=message,
                artifact=str(result.artifact or ""),
                metrics=result.metrics,
            )
            trial.set_user_attr("trainspec_message", message.splitlines()[0])
            with echo_lock:
                echo(f"[{job}] failed: {message.splitlines()[0]}\n")
            raise _TrialFailed(message)
        store.finish(
            job,
            result.status,
            secondary_status=result.secondary_status,
            message=result.message,
            artifact=str(result.artifact or ""),
            metrics=result.metrics,
            objective=value,
        )
        return value

    def completion(study: Any, trial: Any) -> None:
        if store.stop_requested(settings.name):
            reason.append("stopped on request")
            study.stop()
            return
        if _finished_count(study) >= settings.max_jobs:
            # Counted in the shared storage, so machines sharing a study stop together.
            study.stop()
            return
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not complete:
            return
        best = max(complete, key=lambda t: t.value if settings.maximize else -t.value)
        target = settings.target_objective_value
        if target is not None and (
            best.value >= target if settings.maximize else best.value <= target
        ):
            reason.append(f"the objective reached the target {target:g}")
            study.stop()
            return
        limit = settings.max_jobs_not_improving
        if limit and sum(1 for t in complete if t.number > best.number) >= limit:
            reason.append(f"the best objective did not improve for {limit} trials")
            study.stop()

    study.optimize(
        objective,
        n_trials=remaining,
        timeout=settings.max_runtime_seconds,
        n_jobs=max(settings.max_parallel_jobs, 1),
        catch=(_TrialFailed,),
        callbacks=[completion],
    )
    if reason and reason[0] == "stopped on request":
        return js.STOPPED, "stopped on request"
    if reason:
        return js.COMPLETED, f"completion criteria met: {reason[0]}"
    if deadline is not None and time.monotonic() >= deadline:
        return (
            js.STOPPED,
            f"stopped after the maximum runtime of {settings.max_runtime_seconds:g} s",
        )
    return js.COMPLETED, "all trials finished"


def _trial_value(settings: TuningSettings, result: RunResult) -> float | None:
    # A completed trial's objective is the metric's last value (SageMaker's final value).
    if result.ok or result.secondary_status == "EarlyStopped":
        value = result.metrics.get(settings.objective_metric)
        if value is not None and math.isfinite(value):
            return value
    return None


def _summary(trial: Any) -> TrialSummary:
    return TrialSummary(
        number=trial.number,
        job_name=trial.user_attrs.get(_ATTR_JOB, ""),
        state=trial.state.name,
        objective=trial.value if trial.state.name == "COMPLETE" else None,
        hyperparameters=dict(trial.params),
        message=trial.user_attrs.get("trainspec_message", ""),
    )


def _best(settings: TuningSettings, trials: Sequence[TrialSummary]) -> TrialSummary | None:
    complete = [t for t in trials if t.objective is not None]
    if not complete:
        return None
    sign = 1 if settings.maximize else -1
    return max(complete, key=lambda t: (sign * t.objective, -t.number))


def _plots(
    settings: TuningSettings, trials: Sequence[TrialSummary], out_dir: Path
) -> tuple[Path, ...]:
    """objective.png (each trial and the best so far) and one PNG per tuned hyperparameter."""
    import matplotlib

    matplotlib.use("Agg")  # no display; PNG files only
    from matplotlib import pyplot as plt

    complete = [t for t in trials if t.objective is not None]
    if not complete:
        return ()
    paths = []
    figure, axes = plt.subplots(figsize=(6, 4))
    numbers = [t.number for t in complete]
    values = [t.objective for t in complete]
    best, running = [], None
    for value in values:
        better = running is None or (value > running if settings.maximize else value < running)
        running = value if better else running
        best.append(running)
    axes.scatter(numbers, values, label="trial")
    axes.step(numbers, best, where="post", color="tab:orange", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(settings.objective_metric)
    axes.set_title(f"{settings.name}: objective over trials")
    axes.legend()
    figure.tight_layout()
    path = out_dir / "objective.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    paths.append(path)
    for r in settings.ranges:
        points = [
            (t.hyperparameters[r.name], t.objective)
            for t in complete
            if r.name in t.hyperparameters
        ]
        if not points:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        xs = [str(x) if r.kind == "categorical" else x for x, _ in points]
        axes.scatter(xs, [y for _, y in points])
        if r.kind != "categorical" and r.scaling == "Logarithmic":
            axes.set_xscale("log")
        axes.set_xlabel(r.name)
        axes.set_ylabel(settings.objective_metric)
        axes.set_title(f"{settings.name}: {r.name} vs objective")
        figure.tight_layout()
        path = out_dir / f"param_{r.name}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        paths.append(path)
    return tuple(paths)
