"""Tuning jobs in the driver: Autotune inference, tuning checks, lowering and envelope.

Thin glue between the driver's training passes and the tuning modules (_autotune, _check,
_lower, and the top-level _envelope), which work on plain tuning trees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainspec.compiler._diagnostics import Diagnostic, FieldPath
from trainspec.compiler._infer import Inferred, instance_count
from trainspec.compiler._origin import Origin
from trainspec.compiler._resolve import Resolved
from trainspec.compiler.catalog._catalog import Catalog
from trainspec.compiler.tuning._autotune import TuningInference, infer_tuning
from trainspec.compiler.tuning._autotune_rules import load_rules

if TYPE_CHECKING:
    from trainspec.compiler._diagnostics import Location


@dataclass(frozen=True)
class TuningStep:
    """A tuning job after inference: the updated job and what Autotune decided."""

    inferred: Inferred
    inference: TuningInference
    notes: tuple[Diagnostic, ...]
    versions: Mapping[str, str]
    request_origins: Mapping[FieldPath, Origin]

    @property
    def tuning(self) -> Mapping[str, Any]:
        return self.inferred.resolved.tree["tuning"]


def infer(inferred: Inferred, catalog: Catalog) -> TuningStep:
    rules = load_rules()
    tree = inferred.resolved.tree
    batch = inferred.batch_sizes
    inference = infer_tuning(
        tree["tuning"],
        devices_per_process=batch.devices_per_process if batch else 1,
        batch_hyperparameter=batch.hyperparameter if batch else None,
        rules=rules,
        hard_bounds=_spec_bounds(inferred),
    )
    origins = dict(inferred.resolved.origins)
    origins.update(inference.origins)
    resolved = Resolved(inferred.resolved.job, {**tree, "tuning": inference.tuning}, origins)
    return TuningStep(
        inferred=_replace_resolved(inferred, resolved),
        inference=inference,
        notes=tuple(inference.notes),
        versions={"hyperparameters": str(rules.version)},
        request_origins={},
    )


def _spec_bounds(inferred: Inferred) -> dict[str, tuple[float | None, float | None]]:
    """A JumpStart spec's min and max per numeric hyperparameter: Autotune's hard bounds."""
    model = inferred.pretrained
    if model is None:
        return {}
    return {
        name: (h.min, h.max)
        for name, h in model.algorithm_hyperparameters.items()
        if h.type in ("int", "float") and (h.min is not None or h.max is not None)
    }


def _replace_resolved(inferred: Inferred, resolved: Resolved) -> Inferred:
    from dataclasses import replace

    return replace(inferred, resolved=resolved)


def check(
    step: TuningStep, inferred: Inferred, locate: Callable[[FieldPath], Location | None]
) -> list[Diagnostic]:
    from trainspec.compiler.lower._lower import lowered_hyperparameters
    from trainspec.compiler.tuning._check import check_tuning

    training = inferred.training
    metric_names = [m.get("name", "") for m in training.get("metrics", [])]
    return check_tuning(
        step.tuning,
        metric_names=metric_names,
        # as lowered: the sagemaker_* entries trainspec adds count against the limit too
        hyperparameter_names=list(lowered_hyperparameters(inferred)),
        locate=locate,
    )


def lower(step: TuningStep, training_request: Mapping[str, Any], mode: str) -> dict[str, Any]:
    from trainspec.compiler.tuning._lower import lower_tuning

    return lower_tuning(
        step.tuning,
        training_request=training_request,
        mode=mode,
        inferred_range_names=step.inference.inferred_range_names,
    )


def envelope(step: TuningStep, inferred: Inferred) -> Any:
    from trainspec.compiler._envelope import tuning_envelope

    instance = inferred.instance
    if instance is None:
        return None
    return tuning_envelope(
        step.tuning,
        instance_count=instance_count(inferred.training.get("compute", {})),
        price_per_hour=instance.price_per_hour,
        price_date=instance.price_date,
        price_source=instance.price_source,
        price_estimated=instance.price_estimated,
        max_runtime_per_job_seconds=inferred.training.get("stopping", {}).get(
            "max_runtime_seconds", 86400
        ),
    )
