"""Lowering of an inferred tuning tree to CreateHyperParameterTuningJob's boto3 kwargs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from trainspec.compiler.tuning._autotune import as_number, enum_short, present, range_kind

OPERATION = "CreateHyperParameterTuningJob"

_STRATEGY = {"BAYESIAN": "Bayesian", "RANDOM": "Random", "HYPERBAND": "Hyperband", "GRID": "Grid"}
_OBJECTIVE = {"MINIMIZE": "Minimize", "MAXIMIZE": "Maximize"}
_SCALING = {
    "AUTO": "Auto",
    "LINEAR": "Linear",
    "LOGARITHMIC": "Logarithmic",
    "REVERSE_LOGARITHMIC": "ReverseLogarithmic",
}
_EARLY_STOPPING = {"OFF": "Off", "AUTO": "Auto"}
_WARM_START = {
    "IDENTICAL_DATA_AND_ALGORITHM": "IdenticalDataAndAlgorithm",
    "TRANSFER_LEARNING": "TransferLearning",
}
_RANGE_LISTS = {
    "integer": "IntegerParameterRanges",
    "continuous": "ContinuousParameterRanges",
    "categorical": "CategoricalParameterRanges",
}
# CreateTrainingJob keys that HyperParameterTrainingJobDefinition takes as they are.
_DEFINITION_KEYS = (
    "RoleArn",
    "InputDataConfig",
    "VpcConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "RetryStrategy",
    "Environment",
)
# HyperParameterAlgorithmSpecification is narrower than AlgorithmSpecification.
_ALGORITHM_KEYS = ("TrainingImage", "TrainingInputMode", "AlgorithmName", "MetricDefinitions")
MODES = ("explicit", "native")


def lower_tuning(
    tuning: Mapping[str, Any],
    *,
    training_request: Mapping[str, Any],
    mode: str = "explicit",
    inferred_range_names: Collection[str] = (),
) -> dict[str, Any]:
    """The exact boto3 kwargs of CreateHyperParameterTuningJob for a checked tuning tree.

    `training_request` is the CreateTrainingJob kwargs of the trial template; its
    HyperParameters minus the tuned names become StaticHyperParameters. In "explicit"
    mode every range is written out, so SageMaker runs exactly the plan; in "native" mode
    the `inferred_range_names` go to SageMaker's Autotune as AutoParameters value hints.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    ranges: Mapping[str, Any] = tuning.get("ranges") or {}
    auto_names = set(inferred_range_names) & set(ranges) if mode == "native" else set()
    hyperparameters: Mapping[str, str] = training_request.get("HyperParameters") or {}

    config: dict[str, Any] = {
        "Strategy": _STRATEGY[enum_short(tuning.get("strategy"), "STRATEGY_") or "BAYESIAN"]
    }
    strategy = config["Strategy"]
    hyperband = tuning.get("hyperband") or {}
    if strategy == "Hyperband" and present(tuning, "hyperband"):
        hb: dict[str, int] = {}
        if hyperband.get("min_resource"):
            hb["MinResource"] = int(hyperband["min_resource"])
        if hyperband.get("max_resource"):
            hb["MaxResource"] = int(hyperband["max_resource"])
        if hb:
            config["StrategyConfig"] = {"HyperbandStrategyConfig": hb}
    objective = tuning.get("objective") or {}
    config["HyperParameterTuningJobObjective"] = {
        "Type": _OBJECTIVE[enum_short(objective.get("type"), "OBJECTIVE_TYPE_") or "MINIMIZE"],
        "MetricName": objective.get("metric", ""),
    }
    config["ResourceLimits"] = _resource_limits(tuning.get("limits") or {}, strategy)
    parameter_ranges = _parameter_ranges(ranges, auto_names, hyperparameters)
    if parameter_ranges:
        config["ParameterRanges"] = parameter_ranges
    early = enum_short(tuning.get("early_stopping"), "EARLY_STOPPING_")
    if early:
        config["TrainingJobEarlyStoppingType"] = _EARLY_STOPPING[early]
    completion = _completion(tuning.get("completion") or {})
    if completion:
        config["TuningJobCompletionCriteria"] = completion
    if tuning.get("random_seed") is not None:
        config["RandomSeed"] = int(tuning["random_seed"])

    request: dict[str, Any] = {
        "HyperParameterTuningJobName": tuning.get("name", ""),
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": _definition(training_request, set(ranges)),
    }
    warm_start = tuning.get("warm_start") or {}
    if warm_start.get("parents"):
        kind = enum_short(warm_start.get("type"), "WARM_START_TYPE_")
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in warm_start["parents"]
            ],
            "WarmStartType": _WARM_START[kind or "IDENTICAL_DATA_AND_ALGORITHM"],
        }
    if training_request.get("Tags"):
        request["Tags"] = [dict(tag) for tag in training_request["Tags"]]
    if auto_names:
        request["Autotune"] = {"Mode": "Enabled"}
    return request


def _resource_limits(limits: Mapping[str, Any], strategy: str) -> dict[str, int]:
    out: dict[str, int] = {}
    # Grid search runs the whole grid; SageMaker takes the count from the ranges.
    if limits.get("max_jobs") and strategy != "Grid":
        out["MaxNumberOfTrainingJobs"] = int(limits["max_jobs"])
    out["MaxParallelTrainingJobs"] = int(limits.get("max_parallel_jobs") or 1)
    if limits.get("max_runtime_seconds"):
        out["MaxRuntimeInSeconds"] = int(limits["max_runtime_seconds"])
    return out


def _parameter_ranges(
    ranges: Mapping[str, Any], auto_names: set[str], hyperparameters: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(ranges):
        if name in auto_names:
            out.setdefault("AutoParameters", []).append(
                {"Name": name, "ValueHint": str(hyperparameters.get(name, ""))}
            )
            continue
        kind, body = range_kind(ranges[name])
        if kind is None:
            continue
        entry: dict[str, Any] = {"Name": name}
        if kind == "categorical":
            entry["Values"] = [_value_string(v) for v in body.get("values") or ()]
        else:
            entry["MinValue"] = _bound_string(body.get("min"), kind)
            entry["MaxValue"] = _bound_string(body.get("max"), kind)
            scaling = enum_short(body.get("scaling"), "SCALING_")
            if scaling:
                entry["ScalingType"] = _SCALING[scaling]
        out.setdefault(_RANGE_LISTS[kind], []).append(entry)
    return out


def _completion(completion: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if completion.get("target_objective_value") is not None:
        out["TargetObjectiveMetricValue"] = float(completion["target_objective_value"])
    if completion.get("max_jobs_not_improving"):
        out["BestObjectiveNotImproving"] = {
            "MaxNumberOfTrainingJobsNotImproving": int(completion["max_jobs_not_improving"])
        }
    if completion.get("convergence_detection"):
        out["ConvergenceDetected"] = {"CompleteOnConvergence": "Enabled"}
    return out


def _definition(training_request: Mapping[str, Any], tuned: set[str]) -> dict[str, Any]:
    algorithm = training_request.get("AlgorithmSpecification") or {}
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {k: algorithm[k] for k in _ALGORITHM_KEYS if k in algorithm},
    }
    hyperparameters = training_request.get("HyperParameters") or {}
    static = {k: v for k, v in sorted(hyperparameters.items()) if k not in tuned}
    if static:
        definition["StaticHyperParameters"] = static
    for key in _DEFINITION_KEYS:
        if key in training_request and training_request[key] is not None:
            definition[key] = training_request[key]
    return definition


def _bound_string(value: Any, kind: str) -> str:
    number = as_number(value)
    if number is None:
        return str(value)
    if kind == "integer":
        return str(int(number))
    return _float_string(float(number))


def _value_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_string(value)
    return str(value)


def _float_string(number: float) -> str:
    """The shortest text that reads back as the same float: `0.001`, `1e-06`, `2.0`."""
    return repr(number)
