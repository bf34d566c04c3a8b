"""A tuning plan read into the settings the local tuner honours and its trial template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from trainspec.trainer._container import TrainingRun
from trainspec.trainer._local_run import training_run_from_parts
from trainspec.v1 import plan_pb2

# Hyperparameters that hold a trial's epoch count (the resource early stopping measures).
EPOCH_HYPERPARAMETERS = ("epochs", "num_epochs", "n_epochs", "num_train_epochs", "max_epochs")


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

    @property
    def trial_budget(self) -> int:
        """How many trials the job runs at most: `max_jobs`, or fewer when a grid has
        fewer combinations (each runs once)."""
        if self.strategy != "Grid" or any(r.kind != "categorical" for r in self.ranges):
            return self.max_jobs
        size = 1
        for r in self.ranges:
            size *= len(r.values)
        return min(self.max_jobs, size)


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


def last_epoch(settings: TuningSettings, hyperparameters: Mapping[str, str]) -> int | None:
    """The epoch a trial ends on, when known: Hyperband's maximum resource, else the epochs
    hyperparameter. Early stopping after it would save nothing, so the tuner does not."""
    if settings.strategy == "Hyperband" and settings.max_resource:
        return settings.max_resource
    for name in EPOCH_HYPERPARAMETERS:
        value = hyperparameters.get(name)
        if value is not None:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None
