"""Cost and duration envelopes of training and tuning jobs, and the `--max-cost` budget check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic

CURRENCY = "USD"
DEFAULT_TUNING_RUNTIME_SECONDS = 172800
# Share of trial time AMT's early stopping (Auto) is assumed to save. A stated
# assumption, not a measurement: AMT stops trials whose intermediate objective falls
# behind the median of earlier trials, so the saving depends on the job.
EARLY_STOPPING_SAVING = 0.25


@dataclass(frozen=True)
class Envelope:
    """Worst-case and expected cost and duration; mirrors trainspec.v1.CostEnvelope."""

    currency: str
    price_per_instance_hour: float
    price_date: str
    price_source: str
    price_estimated: bool
    worst_case_cost: float
    expected_cost: float
    worst_case_seconds: int
    expected_seconds: int
    assumptions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Proto3 JSON of CostEnvelope with proto field names (int64 as numbers)."""
        return {
            "currency": self.currency,
            "price_per_instance_hour": self.price_per_instance_hour,
            "price_date": self.price_date,
            "price_source": self.price_source,
            "price_estimated": self.price_estimated,
            "worst_case_cost": self.worst_case_cost,
            "expected_cost": self.expected_cost,
            "worst_case_seconds": self.worst_case_seconds,
            "expected_seconds": self.expected_seconds,
            "assumptions": list(self.assumptions),
        }


def training_envelope(
    *,
    instance_count: int,
    price_per_hour: float,
    price_date: str,
    price_source: str,
    price_estimated: bool,
    max_runtime_seconds: int,
) -> Envelope:
    """One training job: instances × price × max runtime, for worst and expected case."""
    _check_args(instance_count, price_per_hour, max_runtime_seconds)
    cost = _cost(instance_count * max_runtime_seconds, price_per_hour)
    return Envelope(
        currency=CURRENCY,
        price_per_instance_hour=price_per_hour,
        price_date=price_date,
        price_source=price_source,
        price_estimated=price_estimated,
        worst_case_cost=cost,
        expected_cost=cost,
        worst_case_seconds=int(max_runtime_seconds),
        expected_seconds=int(max_runtime_seconds),
        assumptions=(
            *_price_assumptions(price_estimated),
            "the job runs to its max runtime (trainspec does not know the real training time)",
        ),
    )


def tuning_envelope(
    tuning: Mapping[str, Any],
    *,
    instance_count: int,
    price_per_hour: float,
    price_date: str,
    price_source: str,
    price_estimated: bool,
    max_runtime_per_job_seconds: int,
) -> Envelope:
    """A tuning job: jobs × instances × price × per-job runtime, bounded by the tuning job.

    The tuning job can never use more than its max runtime × max parallel jobs of
    instance time, nor last longer than its max runtime.
    """
    # Here, not at the top: a training job's envelope needs no tuning modules.
    from trainspec.compiler.tuning._autotune import enum_short, grid_size
    from trainspec.compiler.tuning._trials import hyperband_resource_fraction

    _check_args(instance_count, price_per_hour, max_runtime_per_job_seconds)
    limits = tuning.get("limits") or {}
    strategy = enum_short(tuning.get("strategy"), "STRATEGY_") or "BAYESIAN"
    parallel = max(1, int(limits.get("max_parallel_jobs") or 1))
    tuning_runtime = int(limits.get("max_runtime_seconds") or DEFAULT_TUNING_RUNTIME_SECONDS)
    jobs = grid_size(tuning.get("ranges") or {}) if strategy == "GRID" else None
    jobs = jobs or (int(limits["max_jobs"]) if limits.get("max_jobs") else None)
    per_job = int(max_runtime_per_job_seconds)
    assumptions = list(_price_assumptions(price_estimated))

    def bounded(job_fraction: float) -> tuple[float, int]:
        """(instance-seconds of all trials, wall seconds) within the tuning job's limits."""
        trial_seconds = per_job * job_fraction
        if jobs is None:
            return tuning_runtime * parallel, tuning_runtime
        total = min(jobs * trial_seconds, tuning_runtime * parallel)
        wall = min(math.ceil(jobs / parallel) * trial_seconds, tuning_runtime)
        return total, math.ceil(wall)

    worst_total, worst_wall = bounded(1.0)
    if jobs is None:
        assumptions.append(
            "no max jobs: bounded only by the tuning job's max runtime × max parallel jobs"
        )
    else:
        assumptions.append(
            f"{jobs} trials, {parallel} at a time, each up to {per_job} s,"
            f" within the tuning job's {tuning_runtime} s"
        )

    fraction = 1.0
    assumptions.append("a trial runs to its max runtime unless stopped early")
    if strategy == "HYPERBAND":
        hyperband = tuning.get("hyperband") or {}
        low = int(hyperband.get("min_resource") or 1)
        high = int(hyperband.get("max_resource") or 1)
        if 1 <= low <= high:
            fraction = hyperband_resource_fraction(low, high)
            assumptions.append(
                f"Hyperband (eta 3, resource {low}–{high}) trains trials {fraction:.0%}"
                " of the way on average"
            )
    elif enum_short(tuning.get("early_stopping"), "EARLY_STOPPING_") == "AUTO":
        fraction = 1 - EARLY_STOPPING_SAVING
        assumptions.append(f"early stopping (Auto) saves {EARLY_STOPPING_SAVING:.0%} of trial time")
    if tuning.get("completion"):
        assumptions.append("completion criteria may stop the tuning job sooner (not counted)")
    expected_total, expected_wall = bounded(fraction)

    return Envelope(
        currency=CURRENCY,
        price_per_instance_hour=price_per_hour,
        price_date=price_date,
        price_source=price_source,
        price_estimated=price_estimated,
        worst_case_cost=_cost(worst_total * instance_count, price_per_hour),
        expected_cost=_cost(expected_total * instance_count, price_per_hour),
        worst_case_seconds=int(worst_wall),
        expected_seconds=int(expected_wall),
        assumptions=tuple(assumptions),
    )


def check_budget(envelope: Envelope, max_cost_usd: float) -> list[Diagnostic]:
    """An error when the worst case is over the budget (`--max-cost USD`)."""
    if envelope.worst_case_cost <= max_cost_usd:
        return []
    estimated = " (estimated price)" if envelope.price_estimated else ""
    return [
        Diagnostic(
            code="budget.max_cost_exceeded",
            field_path="envelope.worst_case_cost",
            message=(
                f"worst-case cost {envelope.worst_case_cost:.2f} {envelope.currency}{estimated}"
                f" is over the budget of {max_cost_usd:.2f} {envelope.currency}"
            ),
            hint=(
                "lower max jobs, max runtime or instance count, choose a cheaper instance,"
                " or raise --max-cost"
            ),
            value=envelope.worst_case_cost,
        )
    ]


def _check_args(instance_count: int, price_per_hour: float, seconds: int) -> None:
    if instance_count < 1:
        raise ValueError(f"instance_count must be at least 1, got {instance_count}")
    if price_per_hour < 0:
        raise ValueError(f"price_per_hour must not be negative, got {price_per_hour}")
    if seconds < 1:
        raise ValueError(f"max runtime seconds must be at least 1, got {seconds}")


def _cost(instance_seconds: float, price_per_hour: float) -> float:
    # Rounded to cents so plans serialise the same bytes on every platform.
    return round(instance_seconds / 3600 * price_per_hour, 2)


def _price_assumptions(estimated: bool) -> tuple[str, ...]:
    return ("on-demand price, no spot discount, storage and data transfer not counted",) + (
        ("the price is an estimate",) if estimated else ()
    )
