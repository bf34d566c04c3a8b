"""Cost envelopes: worst case bounded by the tuning job's limits, stated assumptions, budget."""

from __future__ import annotations

import pytest
from trainspec.compiler._diagnostics import Severity
from trainspec.compiler._envelope import check_budget, training_envelope, tuning_envelope

PRICE = {
    "price_per_hour": 10.0,
    "price_date": "2026-11-01",
    "price_source": "aws-pricing",
    "price_estimated": False,
}
BAYES = {
    "strategy": "STRATEGY_BAYESIAN",
    "early_stopping": "EARLY_STOPPING_AUTO",
    "limits": {"max_jobs": 20, "max_parallel_jobs": 4, "max_runtime_seconds": 172800},
}


def test_training_envelope():
    env = training_envelope(instance_count=2, max_runtime_seconds=5400, **PRICE)
    assert env.worst_case_cost == 30.0  # 2 instances × 1.5 h × 10
    assert env.expected_cost == 30.0
    assert env.worst_case_seconds == env.expected_seconds == 5400
    assert env.currency == "USD" and env.price_date == "2026-11-01"
    assert env.assumptions


def test_tuning_worst_and_expected():
    env = tuning_envelope(BAYES, instance_count=1, max_runtime_per_job_seconds=3600, **PRICE)
    assert env.worst_case_cost == 200.0  # 20 jobs × 1 h × 10
    assert env.worst_case_seconds == 5 * 3600  # 5 waves of 4
    assert env.expected_cost == 150.0  # early stopping Auto saves 25 %
    assert env.expected_seconds == 5 * 2700
    assert any("early stopping" in a for a in env.assumptions)


def test_worst_case_bounded_by_tuning_runtime_times_parallel():
    env = tuning_envelope(BAYES, instance_count=2, max_runtime_per_job_seconds=86400, **PRICE)
    # 20 × 24 h would be 480 h; the tuning job stops after 48 h with 4 at a time: 192 h.
    assert env.worst_case_cost == 192 * 2 * 10.0
    assert env.worst_case_seconds == 172800
    assert env.expected_cost <= env.worst_case_cost


def test_without_max_jobs_bounded_by_runtime_only():
    tuning = {"limits": {"max_parallel_jobs": 2, "max_runtime_seconds": 7200}}
    env = tuning_envelope(tuning, instance_count=1, max_runtime_per_job_seconds=600, **PRICE)
    assert env.worst_case_cost == 40.0  # 2 h × 2 parallel × 10
    assert any("no max jobs" in a for a in env.assumptions)


def test_grid_counts_the_grid():
    tuning = {
        "strategy": "STRATEGY_GRID",
        "ranges": {
            "a": {"categorical": {"values": ["1", "2", "3"]}},
            "b": {"categorical": {"values": ["x", "y"]}},
        },
        "limits": {"max_parallel_jobs": 3},
    }
    env = tuning_envelope(tuning, instance_count=1, max_runtime_per_job_seconds=3600, **PRICE)
    assert env.worst_case_cost == 60.0 and env.worst_case_seconds == 2 * 3600


def test_hyperband_expected_uses_the_brackets():
    tuning = {
        "strategy": "STRATEGY_HYPERBAND",
        "early_stopping": "EARLY_STOPPING_OFF",
        "hyperband": {"min_resource": 1, "max_resource": 27},
        "limits": {"max_jobs": 30, "max_parallel_jobs": 3},
    }
    env = tuning_envelope(tuning, instance_count=1, max_runtime_per_job_seconds=3600, **PRICE)
    assert env.worst_case_cost == 300.0
    assert env.expected_cost == pytest.approx(300.0 * 0.26984, abs=0.01)
    assert any("Hyperband" in a for a in env.assumptions)


def test_estimated_price_is_stated():
    env = training_envelope(
        instance_count=1, max_runtime_seconds=3600, **{**PRICE, "price_estimated": True}
    )
    assert env.price_estimated and "the price is an estimate" in env.assumptions
    assert env.to_json()["price_estimated"] is True


def test_to_json_uses_proto_field_names():
    from google.protobuf import json_format
    from trainspec.v1 import plan_pb2

    env = tuning_envelope(BAYES, instance_count=1, max_runtime_per_job_seconds=3600, **PRICE)
    message = json_format.ParseDict(env.to_json(), plan_pb2.CostEnvelope())
    assert message.worst_case_cost == 200.0 and message.expected_seconds == 13500


def test_budget():
    env = tuning_envelope(BAYES, instance_count=1, max_runtime_per_job_seconds=3600, **PRICE)
    assert check_budget(env, 200.0) == []
    (error,) = check_budget(env, 199.99)
    assert error.code == "budget.max_cost_exceeded" and error.severity is Severity.ERROR
    assert "200.00 USD" in error.message and "199.99 USD" in error.message and error.hint


@pytest.mark.parametrize(
    "kwargs",
    [{"instance_count": 0}, {"price_per_hour": -1.0}, {"max_runtime_seconds": 0}],
)
def test_bad_arguments_name_themselves(kwargs):
    args = {"instance_count": 1, "max_runtime_seconds": 60, **PRICE, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        training_envelope(**args)
