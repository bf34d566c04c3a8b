"""Tuning checks: the cross-field rules SageMaker enforces on tuning jobs, all found at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    Severity,
    format_path,
)
from trainspec.compiler.tuning._autotune import (
    as_number,
    enum_short,
    grid_size,
    present,
    range_kind,
)
from trainspec.compiler.tuning._autotune_rules import Rules, load_rules, normalize_name

# SageMaker's limits (CreateHyperParameterTuningJob and the AMT quotas).
SAGEMAKER_NAME_LENGTH = 32
# What is left of it for tuning.name: trainspec appends `-<8 hex>` (_job_name.py).
MAX_NAME_LENGTH = 23
MAX_RANGES = 30
MAX_CATEGORICAL_VALUES = 30
MAX_HYPERPARAMETERS = 100  # static + tuned + the `_tuning_objective_metric` AMT adds
MAX_HYPERBAND_RESOURCE = 20000
MIN_NOT_IMPROVING = 3
MAX_PARENTS = 5
RUNTIME_BOUNDS = (120, 15768000)
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")


def check_tuning(
    tuning: Mapping[str, Any],
    *,
    metric_names: Collection[str],
    hyperparameter_names: Collection[str],
    locate: Callable[[FieldPath], Location | None],
    rules: Rules | None = None,
) -> list[Diagnostic]:
    """Every tuning rule violated by an inferred tuning tree (errors and warnings).

    `metric_names`: metrics the job defines (metric definitions, or those a catalog
    model or built-in algorithm is known to emit). `hyperparameter_names`: the training
    job's hyperparameters, tuned ones included. Paths start at `("tuning", ...)`.
    """
    checker = _Checker(locate)
    rules = rules or load_rules()
    ranges: Mapping[str, Any] = tuning.get("ranges") or {}
    limits: Mapping[str, Any] = tuning.get("limits") or {}
    training = tuning.get("training") or {}
    statics: Mapping[str, Any] = training.get("hyperparameters") or {}
    strategy = enum_short(tuning.get("strategy"), "STRATEGY_") or "BAYESIAN"

    _check_name(checker, tuning.get("name"))
    _check_objective(checker, tuning.get("objective") or {}, metric_names)

    if not ranges:
        checker.error(
            "tuning.ranges.none",
            ("tuning", "ranges"),
            "nothing to tune: no ranges given or inferred",
            "write ranges under tuning.ranges, or set autotune: true with hyperparameters"
            " that have Autotune rules (lr, batch size, ...)",
        )
    if len(ranges) > MAX_RANGES:
        checker.error(
            "tuning.ranges.max_count",
            ("tuning", "ranges"),
            f"{len(ranges)} ranges; SageMaker allows at most {MAX_RANGES}",
            "tune fewer hyperparameters; keep the rest static",
            len(ranges),
        )
    known = set(hyperparameter_names)
    for name, parameter_range in ranges.items():
        _check_range(checker, name, parameter_range, known)
    total = len(known | set(ranges)) + 1
    if total > MAX_HYPERPARAMETERS:
        checker.error(
            "tuning.hyperparameters.max_count",
            ("tuning", "training", "hyperparameters"),
            f"{total} hyperparameters including the one SageMaker adds;"
            f" at most {MAX_HYPERPARAMETERS}",
            "drop hyperparameters that keep their default value",
            total,
        )

    if strategy == "GRID":
        _check_grid(checker, ranges, limits)
    if strategy == "HYPERBAND":
        _check_hyperband(checker, tuning, statics, rules)
    elif present(tuning, "hyperband"):
        checker.warning(
            "tuning.hyperband.unused",
            ("tuning", "hyperband"),
            f"hyperband settings are ignored with strategy {strategy.lower()}",
            "set strategy: HYPERBAND or remove the hyperband block",
        )

    _check_limits(checker, limits)
    _check_completion(checker, tuning.get("completion") or {})
    _check_warm_start(checker, tuning.get("warm_start"))
    seed = tuning.get("random_seed")
    seed_number = as_number(seed)
    if seed_number is not None and seed_number < 0:
        checker.error(
            "tuning.random_seed.non_negative",
            ("tuning", "random_seed"),
            "random seed is negative",
            "use a seed of 0 or more",
            seed,
        )
    return checker.diagnostics


class _Checker:
    """Collects diagnostics with their field paths and source locations."""

    def __init__(self, locate: Callable[[FieldPath], Location | None]) -> None:
        self._locate = locate
        self.diagnostics: list[Diagnostic] = []

    def error(self, code: str, path: FieldPath, message: str, hint: str, value: Any = None) -> None:
        self._add(code, path, message, hint, value, Severity.ERROR)

    def warning(
        self, code: str, path: FieldPath, message: str, hint: str, value: Any = None
    ) -> None:
        self._add(code, path, message, hint, value, Severity.WARNING)

    def _add(
        self,
        code: str,
        path: FieldPath,
        message: str,
        hint: str,
        value: Any,
        severity: Severity,
    ) -> None:
        kwargs = {} if value is None else {"value": value}
        self.diagnostics.append(
            Diagnostic(
                code=code,
                field_path=format_path(path),
                message=message,
                hint=hint,
                location=self._locate(path),
                severity=severity,
                **kwargs,
            )
        )


def _check_name(checker: _Checker, name: Any) -> None:
    if not name:
        checker.error(
            "tuning.name.missing",
            ("tuning", "name"),
            "tuning job has no name",
            f"set tuning.name (1-{MAX_NAME_LENGTH} letters, digits, hyphens)",
        )
        return
    if len(name) > MAX_NAME_LENGTH:
        checker.error(
            "tuning.name.max_length",
            ("tuning", "name"),
            f"name is {len(name)} characters; at most {MAX_NAME_LENGTH} fit SageMaker's "
            f"{SAGEMAKER_NAME_LENGTH} with the `-<8 hex>` digest trainspec appends",
            f"shorten it to {MAX_NAME_LENGTH} characters, e.g. {name[:MAX_NAME_LENGTH]!r}",
            name,
        )
    elif not _NAME.fullmatch(name):
        checker.error(
            "tuning.name.pattern",
            ("tuning", "name"),
            "name must be letters and digits, with hyphens only between them",
            "e.g. mnist-autotune",
            name,
        )


def _check_objective(
    checker: _Checker, objective: Mapping[str, Any], metric_names: Collection[str]
) -> None:
    metric = objective.get("metric")
    if not metric:
        checker.error(
            "tuning.objective.metric_missing",
            ("tuning", "objective", "metric"),
            "no objective metric",
            "set tuning.objective.metric to a metric the training job emits",
        )
    elif metric not in metric_names:
        close = difflib.get_close_matches(metric, list(metric_names), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else "add it to tuning.training.metrics with a regex that captures its value"
        )
        checker.error(
            "tuning.objective.metric_undefined",
            ("tuning", "objective", "metric"),
            f"objective metric {metric!r} is not defined by the training job",
            hint,
            metric,
        )
    if enum_short(objective.get("type"), "OBJECTIVE_TYPE_") is None:
        checker.error(
            "tuning.objective.type_missing",
            ("tuning", "objective", "type"),
            "objective has no type",
            "set tuning.objective.type to MINIMIZE or MAXIMIZE",
        )


def _check_range(checker: _Checker, name: str, parameter_range: Any, known: set[str]) -> None:
    path: FieldPath = ("tuning", "ranges", name)
    if name not in known:
        close = (
            difflib.get_close_matches(name, sorted(known), n=1)
            or [k for k in sorted(known) if normalize_name(k) == normalize_name(name)][:1]
        )
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else "add it to tuning.training.hyperparameters, or check the training code reads it"
        )
        checker.warning(
            "tuning.range.unknown_hyperparameter",
            path,
            f"{name!r} is not a hyperparameter of the training job",
            hint,
            name,
        )
    kind, body = range_kind(parameter_range)
    if kind is None:
        checker.error(
            "tuning.range.kind_missing",
            path,
            "range has none of integer, continuous, categorical",
            "write e.g. {continuous: {min: 0.001, max: 0.1}}",
        )
        return
    path = (*path, kind)
    if kind == "categorical":
        values = list(body.get("values") or ())
        if not values:
            checker.error(
                "tuning.range.categorical_empty",
                (*path, "values"),
                "categorical range has no values",
                "list at least one value",
            )
        if len(values) > MAX_CATEGORICAL_VALUES:
            checker.error(
                "tuning.range.categorical_max_values",
                (*path, "values"),
                f"{len(values)} values; at most {MAX_CATEGORICAL_VALUES}",
                "keep the most promising values, or use a numeric range",
                len(values),
            )
        duplicates = sorted({str(v) for v in values if [str(x) for x in values].count(str(v)) > 1})
        if duplicates:
            checker.error(
                "tuning.range.categorical_duplicate",
                (*path, "values"),
                f"values repeat: {', '.join(duplicates)}",
                "list each value once",
                duplicates,
            )
        return
    lo, hi = as_number(body.get("min")), as_number(body.get("max"))
    for key, number in (("min", lo), ("max", hi)):
        if number is None:
            checker.error(
                "tuning.range.bound_not_number",
                (*path, key),
                f"{key} is not a number",
                f"set {key} to a number",
                body.get(key),
            )
        elif kind == "integer" and not float(number).is_integer():
            checker.error(
                "tuning.range.integer_bounds",
                (*path, key),
                f"{key} {number} of an integer range is not a whole number",
                "use whole numbers or a continuous range",
                number,
            )
    if lo is None or hi is None:
        return
    if not lo < hi:
        checker.error(
            "tuning.range.min_lt_max",
            path,
            f"min {lo} is not below max {hi}",
            "swap them, or use a static hyperparameter for a single value",
            [lo, hi],
        )
    scaling = enum_short(body.get("scaling"), "SCALING_")
    if scaling == "LOGARITHMIC" and lo <= 0:
        checker.error(
            "tuning.range.log_min_positive",
            (*path, "min"),
            f"logarithmic scaling needs min > 0, got {lo}",
            "raise min above 0 or use LINEAR scaling",
            lo,
        )
    if scaling == "REVERSE_LOGARITHMIC":
        if kind != "continuous":
            checker.error(
                "tuning.range.reverse_log_continuous_only",
                (*path, "scaling"),
                "reverse-logarithmic scaling works only on continuous ranges",
                "use LINEAR or LOGARITHMIC for integer ranges",
            )
        elif not (lo >= 0 and hi < 1):
            checker.error(
                "tuning.range.reverse_log_bounds",
                path,
                f"reverse-logarithmic scaling needs 0 <= min and max < 1, got [{lo}, {hi}]",
                "keep the range inside [0, 1) or use LINEAR scaling",
                [lo, hi],
            )


def _check_grid(checker: _Checker, ranges: Mapping[str, Any], limits: Mapping[str, Any]) -> None:
    for name, parameter_range in ranges.items():
        kind, _ = range_kind(parameter_range)
        if kind not in (None, "categorical"):
            checker.error(
                "tuning.grid.categorical_only",
                ("tuning", "ranges", name),
                f"grid search takes categorical ranges only; {name} is {kind}",
                "list the values to try as a categorical range, or use BAYESIAN or RANDOM",
            )
    size = grid_size(ranges)
    max_jobs = limits.get("max_jobs")
    if size is not None and max_jobs and max_jobs != size:
        checker.error(
            "tuning.grid.max_jobs",
            ("tuning", "limits", "max_jobs"),
            f"grid search runs all {size} combinations; max jobs is {max_jobs}",
            f"remove max_jobs or set it to {size}",
            max_jobs,
        )


def _check_hyperband(
    checker: _Checker, tuning: Mapping[str, Any], statics: Mapping[str, Any], rules: Rules
) -> None:
    early = enum_short(tuning.get("early_stopping"), "EARLY_STOPPING_")
    if early not in (None, "OFF"):
        checker.error(
            "tuning.hyperband.early_stopping_off",
            ("tuning", "early_stopping"),
            "Hyperband stops trials itself; early stopping must be OFF",
            "set early_stopping: OFF or remove it",
            early,
        )
    hyperband = tuning.get("hyperband") or {}
    max_resource = as_number(hyperband.get("max_resource"))
    min_resource = as_number(hyperband.get("min_resource"))
    sagemaker_names = rules.strategy["sagemaker_resource_names"]
    has_static = any(
        normalize_name(name) in sagemaker_names and as_number(value)
        for name, value in statics.items()
    )
    if not max_resource and not has_static:
        checker.error(
            "tuning.hyperband.resource_missing",
            ("tuning", "hyperband", "max_resource"),
            "Hyperband needs a resource: an epochs-like static hyperparameter or max_resource",
            f"set hyperband.max_resource (at most {MAX_HYPERBAND_RESOURCE}) or a static"
            f" {' / '.join(sagemaker_names)} hyperparameter",
        )
    if max_resource and max_resource > MAX_HYPERBAND_RESOURCE:
        checker.error(
            "tuning.hyperband.max_resource_limit",
            ("tuning", "hyperband", "max_resource"),
            f"max_resource {max_resource} is above SageMaker's {MAX_HYPERBAND_RESOURCE}",
            f"use at most {MAX_HYPERBAND_RESOURCE}",
            max_resource,
        )
    if min_resource and max_resource and min_resource > max_resource:
        checker.error(
            "tuning.hyperband.min_le_max",
            ("tuning", "hyperband", "min_resource"),
            f"min_resource {min_resource} is above max_resource {max_resource}",
            "lower min_resource",
            min_resource,
        )


def _check_limits(checker: _Checker, limits: Mapping[str, Any]) -> None:
    for key in ("max_jobs", "max_parallel_jobs", "max_runtime_seconds"):
        value = limits.get(key)
        number = as_number(value)
        if number is not None and number < 1:
            checker.error(
                "tuning.limits.positive",
                ("tuning", "limits", key),
                f"{key} must be at least 1, got {value}",
                f"set {key} to 1 or more",
                value,
            )
    jobs, parallel = limits.get("max_jobs"), limits.get("max_parallel_jobs")
    if jobs and parallel and parallel > jobs:
        checker.error(
            "tuning.limits.parallel_le_jobs",
            ("tuning", "limits", "max_parallel_jobs"),
            f"max parallel jobs {parallel} is above max jobs {jobs}",
            f"set max_parallel_jobs to at most {jobs}",
            parallel,
        )
    runtime = limits.get("max_runtime_seconds")
    if runtime and not RUNTIME_BOUNDS[0] <= runtime <= RUNTIME_BOUNDS[1]:
        checker.error(
            "tuning.limits.max_runtime_bounds",
            ("tuning", "limits", "max_runtime_seconds"),
            f"max runtime {runtime} s is outside SageMaker's {RUNTIME_BOUNDS[0]}"
            f"–{RUNTIME_BOUNDS[1]} s",
            "use 120 seconds to 182.5 days",
            runtime,
        )


def _check_completion(checker: _Checker, completion: Mapping[str, Any]) -> None:
    patience = completion.get("max_jobs_not_improving")
    if patience is not None and patience != 0 and patience < MIN_NOT_IMPROVING:
        checker.error(
            "tuning.completion.not_improving_min",
            ("tuning", "completion", "max_jobs_not_improving"),
            f"best objective not improving for {patience} jobs; SageMaker needs at least"
            f" {MIN_NOT_IMPROVING}",
            f"set it to {MIN_NOT_IMPROVING} or more",
            patience,
        )


def _check_warm_start(checker: _Checker, warm_start: Any) -> None:
    if not warm_start:
        return
    parents = list(warm_start.get("parents") or ())
    path: FieldPath = ("tuning", "warm_start", "parents")
    if not parents:
        checker.error(
            "tuning.warm_start.parents_missing",
            path,
            "warm start names no parent tuning jobs",
            "list 1 to 5 earlier tuning job names",
        )
    if len(parents) > MAX_PARENTS:
        checker.error(
            "tuning.warm_start.max_parents",
            path,
            f"{len(parents)} parent jobs; at most {MAX_PARENTS}",
            "keep the most relevant parents",
            len(parents),
        )
    for index, parent in enumerate(parents):
        if not isinstance(parent, str) or not _NAME.fullmatch(parent):
            checker.error(
                "tuning.warm_start.parent_name",
                (*path, index),
                f"{parent!r} is not a tuning job name",
                "tuning job names have 1-32 letters, digits and hyphens",
                parent,
            )
