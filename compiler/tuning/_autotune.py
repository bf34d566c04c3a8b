"""Autotune inference: ranges, strategy, early stopping, limits and completion of a tuning tree."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Severity
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler._tree import copy_tree
from trainspec.compiler.tuning._autotune_rules import Rules, load_rules

RANGE_KINDS = ("integer", "continuous", "categorical")


# --- the tuning tree's vocabulary, shared by the tuning passes ---------------------------


def enum_short(value: Any, prefix: str) -> str | None:
    """`STRATEGY_GRID` / `Grid` / `grid` -> `GRID`; unset or UNSPECIFIED -> None."""
    if value is None or value == "" or value == 0:
        return None
    text = str(value).upper()
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return None if text == "UNSPECIFIED" else text


def range_kind(parameter_range: Any) -> tuple[str | None, Mapping[str, Any]]:
    """The one kind set in a ParameterRange tree and its body, or (None, {})."""
    if _is_mapping(parameter_range):
        for kind in RANGE_KINDS:
            body = parameter_range.get(kind)
            if _is_mapping(body):
                return kind, body
    return None, {}


def as_number(value: Any) -> float | int | None:
    """A hyperparameter or bound as a number, None when it is not one (bools are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None


def grid_size(ranges: Mapping[str, Any]) -> int | None:
    """Combinations of the ranges when every one is categorical, else None."""
    if not ranges:
        return None
    size = 1
    for parameter_range in ranges.values():
        kind, body = range_kind(parameter_range)
        if kind != "categorical":
            return None
        size *= len(body.get("values") or ())
    return size


def present(tree: Mapping[str, Any], key: str) -> bool:
    """Whether the user set `key` (absent, None and empty containers count as unset)."""
    value = tree.get(key)
    if value is None:
        return False
    if type(value) in (dict, list) or isinstance(value, Mapping | tuple):
        return bool(value)
    return True


def _is_mapping(value: Any) -> bool:
    # `type() is dict` first: an ABC isinstance is a Python-level call on every compile
    return type(value) is dict or isinstance(value, Mapping)


# --- inference ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TuningInference:
    """The tuning tree with every inferred setting merged in, and why each was inferred."""

    tuning: Mapping[str, Any]
    origins: Mapping[FieldPath, Origin] = field(default_factory=dict)
    static_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[Diagnostic, ...] = ()

    @property
    def inferred_range_names(self) -> tuple[str, ...]:
        """Names whose range came from a rule (for `lower_tuning(inferred_range_names=...)`)."""
        return tuple(
            path[2]
            for path in self.origins
            if len(path) == 3 and path[:2] == ("tuning", "ranges") and isinstance(path[2], str)
        )


def infer_tuning(
    tuning: Mapping[str, Any],
    *,
    devices_per_process: int,
    batch_hyperparameter: str | None,
    rules: Rules | None = None,
    hard_bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> TuningInference:
    """Infer what the user left out of a resolved tuning tree; never mutates `tuning`.

    `devices_per_process` undoes the training pass's scaling of the batch-size
    hyperparameter `batch_hyperparameter` from per device to per process (the GPUs or
    NeuronCores one process drives; 1 under a per-device launcher or on CPU). `hard_bounds`
    (a JumpStart spec's min and max, per hyperparameter) clamp the ranges inferred for
    those names, on top of the rules' own bounds. User ranges replace
    inferred ranges of the same name whole; user strategy, early stopping, limits fields,
    Hyperband settings and completion criteria replace inferred ones.
    """
    rules = rules or load_rules()
    # Shallow: `infer` copies each dict on the path it writes, so `tuning` stays untouched.
    out: dict[str, Any] = dict(tuning)
    origins: dict[FieldPath, Origin] = {}
    notes: list[Diagnostic] = []
    autotune = bool(tuning.get("autotune"))
    training = tuning.get("training") or {}
    hyperparameters: Mapping[str, Any] = training.get("hyperparameters") or {}
    user_ranges: Mapping[str, Any] = tuning.get("ranges") or {}

    def infer(path: tuple[str, ...], value: Any, source: str, reason: str) -> None:
        node = out
        for key in path[:-1]:
            child = node.get(key)
            node[key] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
        origins[("tuning", *path)] = Origin(OriginKind.INFERRED, source=source, reason=reason)

    # Ranges.
    ranges: dict[str, Any] = {}
    if autotune:
        inferred, range_notes = _infer_ranges(
            hyperparameters,
            user_ranges,
            max(1, devices_per_process),
            batch_hyperparameter,
            rules,
            hard_bounds or {},
        )
        notes.extend(range_notes)
        for name, (parameter_range, source, reason) in sorted(inferred.items()):
            ranges[name] = parameter_range
            origins[("tuning", "ranges", name)] = Origin(
                OriginKind.INFERRED, source=source, reason=reason
            )
    ranges.update(copy_tree(dict(user_ranges)))
    if ranges:
        out["ranges"] = dict(sorted(ranges.items()))

    # Strategy.
    user_limits: Mapping[str, Any] = tuning.get("limits") or {}
    n_ranges = len(ranges)
    lim = rules.limits
    budget = _clamp(lim["jobs_per_range"] * max(n_ranges, 1), lim["min_jobs"], lim["max_jobs"])
    grid = grid_size(ranges)
    resource = _resource(hyperparameters, rules)
    strategy = enum_short(tuning.get("strategy"), "STRATEGY_")
    if strategy is None:
        strategy, reason = _choose_strategy(
            autotune=autotune,
            hyperband_given=present(tuning, "hyperband"),
            grid=grid,
            user_max_jobs=user_limits.get("max_jobs"),
            budget=budget,
            resource=resource,
            rules=rules,
        )
        infer(("strategy",), f"STRATEGY_{strategy}", rules.strategy.source, reason)

    # Hyperband resource bounds, written out so the plan and SageMaker agree.
    if strategy == "HYPERBAND":
        hyperband = tuning.get("hyperband") or {}
        if not hyperband.get("max_resource") and resource is not None:
            name, value = resource
            infer(
                ("hyperband", "max_resource"),
                int(value),
                rules.strategy.source,
                f"the static {name} = {int(value)}",
            )
        if not hyperband.get("min_resource"):
            infer(("hyperband", "min_resource"), 1, rules.strategy.source, "one unit per trial")

    # Early stopping.
    if enum_short(tuning.get("early_stopping"), "EARLY_STOPPING_") is None:
        if strategy == "HYPERBAND":
            stopping, reason = "OFF", "Hyperband needs early stopping off"
        elif autotune:
            stopping, reason = "AUTO", "autotune: stop trials unlikely to beat the best"
        else:
            stopping, reason = "OFF", "SageMaker's default without autotune"
        infer(
            ("early_stopping",),
            f"EARLY_STOPPING_{stopping}",
            rules.early_stopping.source,
            reason,
        )

    # Limits, field by field.
    max_jobs = user_limits.get("max_jobs")
    if not max_jobs:
        if strategy == "GRID" and grid:
            max_jobs, reason = grid, f"every one of the {grid} grid combinations"
        else:
            max_jobs = budget
            reason = (
                f"{lim['jobs_per_range']} per tuned hyperparameter × {n_ranges},"
                f" within {lim['min_jobs']}–{lim['max_jobs']}"
            )
        infer(("limits", "max_jobs"), max_jobs, lim.source, reason)
    if not user_limits.get("max_parallel_jobs"):
        parallel = min(
            _clamp(math.ceil(max_jobs / lim["jobs_per_parallel"]), 1, lim["max_parallel"]),
            max_jobs,
        )
        reason = f"a {lim['jobs_per_parallel']}th of {max_jobs} jobs, at most {lim['max_parallel']}"
        if not autotune:
            reason += " (SageMaker requires a value)"
        infer(("limits", "max_parallel_jobs"), parallel, lim.source, reason)
    if not user_limits.get("max_runtime_seconds"):
        infer(
            ("limits", "max_runtime_seconds"),
            lim["max_runtime_seconds"],
            lim.source,
            "48 hours, SageMaker's default",
        )

    # Completion criteria, replaced whole by the user's.
    comp = rules.completion
    if autotune and not present(tuning, "completion") and strategy in ("BAYESIAN", "RANDOM"):
        patience = max(
            comp["min_not_improving"], math.ceil(comp["not_improving_fraction"] * max_jobs)
        )
        if patience < max_jobs:
            infer(
                ("completion", "max_jobs_not_improving"),
                patience,
                comp.source,
                f"stop after {patience} of {max_jobs} trials without a better objective",
            )
        if strategy == "BAYESIAN" and comp["convergence_detection"]:
            infer(
                ("completion", "convergence_detection"),
                True,
                comp.source,
                "Bayesian search: stop once converged",
            )

    tuned = set(ranges)
    static = {k: v for k, v in hyperparameters.items() if k not in tuned}
    return TuningInference(
        tuning=out,
        origins=MappingProxyType(origins),
        static_hyperparameters=MappingProxyType(static),
        notes=tuple(notes),
    )


def _infer_ranges(
    hyperparameters: Mapping[str, Any],
    user_ranges: Mapping[str, Any],
    devices: int,
    batch_hyperparameter: str | None,
    rules: Rules,
    hard_bounds: Mapping[str, tuple[float | None, float | None]],
) -> tuple[dict[str, tuple[dict, str, str]], list[Diagnostic]]:
    inferred: dict[str, tuple[dict, str, str]] = {}
    notes: list[Diagnostic] = []
    no_rule: list[str] = []
    for name in sorted(hyperparameters):
        if name in user_ranges or rules.is_never_tuned(name):
            continue
        rule = rules.match(name)
        if rule is None:
            no_rule.append(name)
            continue
        path = f"tuning.training.hyperparameters.{name}"
        number = as_number(hyperparameters[name])
        if number is None:
            notes.append(
                Diagnostic(
                    code="autotune.not_numeric",
                    field_path=path,
                    message=f"{name} matches rule {rule.id} but its value is not a number",
                    hint="write a range for it under tuning.ranges to tune it",
                    value=hyperparameters[name],
                    severity=Severity.NOTE,
                )
            )
            continue
        per_device = rule.per_device and name == batch_hyperparameter
        scale = devices if per_device else 1
        values: Sequence[int] = ()
        bounds: tuple[float, float] | None = None
        if rule.type == "categorical":
            # None (fewer than two values) is left static below, clamped or not.
            values = rule.derive_values(number / scale, scale=scale) or ()
        else:
            bounds = rule.derive_range(number / scale, scale=scale)
        clamped = name in hard_bounds
        if clamped:
            low, high = hard_bounds[name]
            low = -math.inf if low is None else low
            high = math.inf if high is None else high
            if rule.type == "categorical":
                values = [v for v in values if low <= v <= high]
            elif bounds is not None:
                bounds = (max(bounds[0], low), min(bounds[1], high))
                bounds = bounds if bounds[0] < bounds[1] else None
        if rule.type == "categorical":
            bounds = (values[0], values[-1]) if values else None
        if bounds is None:
            notes.append(
                Diagnostic(
                    code="autotune.empty_range",
                    field_path=path,
                    message=(
                        f"{name} = {number} is outside rule {rule.id}'s bounds"
                        f" [{rule.hard_min}, {rule.hard_max}]; left static"
                    ),
                    hint="write a range for it under tuning.ranges to tune it",
                    value=number,
                    severity=Severity.WARNING,
                )
            )
            continue
        reason = rule.reason
        parameter_range: dict[str, Any]
        if rule.type == "categorical":
            parameter_range = {"categorical": {"values": [str(v) for v in values]}}
            listed = ", ".join(_fmt(v // scale) for v in values)
            if per_device and scale > 1:
                reason += (
                    f": {listed} per device × {scale} devices per process, scaled like the"
                    " static value"
                )
            elif per_device:
                reason += f": {listed} per device, one device per process"
            else:
                reason += f": {listed} from {_fmt(number)}"
        else:
            lo, hi = bounds
            parameter_range = {
                rule.type: {"min": lo, "max": hi, "scaling": f"SCALING_{rule.scaling}"}
            }
            reason += f": {_fmt(lo)}–{_fmt(hi)} from {_fmt(number)}"
        if clamped:
            reason += "; within the JumpStart spec's min and max"
        inferred[name] = (parameter_range, rule.source, reason)
    if no_rule:
        notes.append(
            Diagnostic(
                code="autotune.no_rule",
                field_path="tuning.training.hyperparameters",
                message=f"no Autotune rule for {', '.join(no_rule)}; left static",
                hint="write ranges under tuning.ranges to tune them",
                value=no_rule,
                severity=Severity.NOTE,
            )
        )
    return inferred, notes


def _choose_strategy(
    *,
    autotune: bool,
    hyperband_given: bool,
    grid: int | None,
    user_max_jobs: int | None,
    budget: int,
    resource: tuple[str, float] | None,
    rules: Rules,
) -> tuple[str, str]:
    """The strategy rule of hyperparameters.yaml, in its written order."""
    if hyperband_given:
        return "HYPERBAND", "Hyperband settings given"
    if not autotune:
        return "BAYESIAN", "SageMaker's default without autotune"
    if grid and grid <= (user_max_jobs or budget) and user_max_jobs in (None, 0, grid):
        return "GRID", f"every range categorical; {grid} combinations fit {budget} jobs"
    minimum = rules.strategy["hyperband_min_resource"]
    if resource is not None and resource[1] >= minimum:
        name, value = resource
        return "HYPERBAND", f"epochs-like {name} = {_fmt(value)} ≥ {minimum}"
    if resource is not None:
        name, value = resource
        return "BAYESIAN", f"epochs-like {name} = {_fmt(value)} < {minimum}, too few for Hyperband"
    return "BAYESIAN", "numeric ranges and no epochs-like resource"


def _resource(hyperparameters: Mapping[str, Any], rules: Rules) -> tuple[str, float] | None:
    """The first (by name) epochs-like static hyperparameter with a positive number."""
    for name in sorted(hyperparameters):
        if rules.is_resource(name):
            number = as_number(hyperparameters[name])
            if number is not None and number > 0:
                return name, number
    return None


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _fmt(number: float) -> str:
    return f"{number:g}"
