"""Tuning checks: one case per rule, all found at once, with locations and hints."""

from __future__ import annotations

import copy

import pytest
from trainspec.compiler._diagnostics import Location, Severity
from trainspec.compiler.tuning._check import check_tuning

BASE = {
    "name": "mnist-autotune",
    "objective": {"metric": "validation:rmse", "type": "OBJECTIVE_TYPE_MINIMIZE"},
    "ranges": {
        "lr": {"continuous": {"min": 0.001, "max": 0.01, "scaling": "SCALING_LOGARITHMIC"}},
        "batch-size": {"integer": {"min": 128, "max": 512}},
    },
    "strategy": "STRATEGY_BAYESIAN",
    "early_stopping": "EARLY_STOPPING_AUTO",
    "limits": {"max_jobs": 20, "max_parallel_jobs": 4, "max_runtime_seconds": 172800},
    "completion": {"max_jobs_not_improving": 5},
    "training": {"hyperparameters": {"epochs": 1, "lr": 0.01, "batch-size": 256}},
}
METRICS = ["validation:rmse", "train:loss"]


def run(tuning, *, names=None, locate=lambda path: None):
    names = list(tuning["training"]["hyperparameters"]) if names is None else names
    return check_tuning(tuning, metric_names=METRICS, hyperparameter_names=names, locate=locate)


def with_(**changes):
    tuning = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = tuning
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return tuning


def test_base_is_clean():
    assert run(BASE) == []


GRID_RANGES = {
    "optimizer": {"categorical": {"values": ["adam", "sgd"]}},
    "act": {"categorical": {"values": ["relu", "gelu", "tanh"]}},
}

CASES = [
    # (id, tree, expected code, expected field path)
    ("name too long", with_(name="x" * 33), "tuning.name.max_length", "tuning.name"),
    ("name pattern", with_(name="bad_name"), "tuning.name.pattern", "tuning.name"),
    ("no name", with_(name=...), "tuning.name.missing", "tuning.name"),
    (
        "metric undefined",
        with_(objective__metric="validation:rmsee"),
        "tuning.objective.metric_undefined",
        "tuning.objective.metric",
    ),
    (
        "no metric",
        with_(objective__metric=...),
        "tuning.objective.metric_missing",
        "tuning.objective.metric",
    ),
    (
        "no objective type",
        with_(objective__type=...),
        "tuning.objective.type_missing",
        "tuning.objective.type",
    ),
    (
        "min not below max",
        with_(ranges__lr={"continuous": {"min": 0.1, "max": 0.01}}),
        "tuning.range.min_lt_max",
        "tuning.ranges.lr.continuous",
    ),
    (
        "log needs min > 0",
        with_(ranges__lr={"continuous": {"min": 0, "max": 0.1, "scaling": "SCALING_LOGARITHMIC"}}),
        "tuning.range.log_min_positive",
        "tuning.ranges.lr.continuous.min",
    ),
    (
        "reverse log integer",
        with_(ranges__epochs={"integer": {"min": 1, "max": 5, "scaling": "REVERSE_LOGARITHMIC"}}),
        "tuning.range.reverse_log_continuous_only",
        "tuning.ranges.epochs.integer.scaling",
    ),
    (
        "reverse log bounds",
        with_(
            ranges__lr={"continuous": {"min": 0.5, "max": 1.0, "scaling": "REVERSE_LOGARITHMIC"}}
        ),
        "tuning.range.reverse_log_bounds",
        "tuning.ranges.lr.continuous",
    ),
    (
        "integer bounds",
        with_(ranges__epochs={"integer": {"min": 1.5, "max": 5}}),
        "tuning.range.integer_bounds",
        "tuning.ranges.epochs.integer.min",
    ),
    (
        "bound not a number",
        with_(ranges__lr={"continuous": {"min": "low", "max": 0.1}}),
        "tuning.range.bound_not_number",
        "tuning.ranges.lr.continuous.min",
    ),
    ("no kind", with_(ranges__lr={}), "tuning.range.kind_missing", "tuning.ranges.lr"),
    (
        "categorical empty",
        with_(ranges__epochs={"categorical": {"values": []}}),
        "tuning.range.categorical_empty",
        "tuning.ranges.epochs.categorical.values",
    ),
    (
        "categorical over 30",
        with_(ranges__epochs={"categorical": {"values": [str(i) for i in range(31)]}}),
        "tuning.range.categorical_max_values",
        "tuning.ranges.epochs.categorical.values",
    ),
    (
        "categorical duplicate",
        with_(ranges__epochs={"categorical": {"values": ["1", "2", "1"]}}),
        "tuning.range.categorical_duplicate",
        "tuning.ranges.epochs.categorical.values",
    ),
    (
        "over 30 ranges",
        with_(
            ranges={f"h{i}": {"continuous": {"min": 0, "max": 1}} for i in range(31)},
            training__hyperparameters={f"h{i}": 0.5 for i in range(31)},
        ),
        "tuning.ranges.max_count",
        "tuning.ranges",
    ),
    (
        "over 100 hyperparameters with the one SageMaker adds",
        with_(training__hyperparameters={f"h{i}": 1 for i in range(98)}),
        "tuning.hyperparameters.max_count",
        "tuning.training.hyperparameters",
    ),
    (
        "grid with a numeric range",
        with_(strategy="STRATEGY_GRID", limits__max_jobs=...),
        "tuning.grid.categorical_only",
        "tuning.ranges.lr",
    ),
    (
        "grid max jobs not the grid size",
        with_(
            strategy="STRATEGY_GRID",
            ranges=GRID_RANGES,
            limits__max_jobs=5,
            limits__max_parallel_jobs=2,
        ),
        "tuning.grid.max_jobs",
        "tuning.limits.max_jobs",
    ),
    (
        "no ranges at all",
        with_(strategy="STRATEGY_GRID", ranges=...),
        "tuning.ranges.none",
        "tuning.ranges",
    ),
    (
        "hyperband with early stopping auto",
        with_(strategy="STRATEGY_HYPERBAND", hyperband={"max_resource": 10}),
        "tuning.hyperband.early_stopping_off",
        "tuning.early_stopping",
    ),
    (
        "hyperband without a resource",
        with_(
            strategy="STRATEGY_HYPERBAND",
            early_stopping="EARLY_STOPPING_OFF",
            training__hyperparameters={"lr": 0.01, "batch-size": 256},
        ),
        "tuning.hyperband.resource_missing",
        "tuning.hyperband.max_resource",
    ),
    (
        "hyperband max resource over 20000",
        with_(
            strategy="STRATEGY_HYPERBAND",
            early_stopping="EARLY_STOPPING_OFF",
            hyperband={"max_resource": 20001},
        ),
        "tuning.hyperband.max_resource_limit",
        "tuning.hyperband.max_resource",
    ),
    (
        "hyperband min over max",
        with_(
            strategy="STRATEGY_HYPERBAND",
            early_stopping="EARLY_STOPPING_OFF",
            hyperband={"min_resource": 50, "max_resource": 10},
        ),
        "tuning.hyperband.min_le_max",
        "tuning.hyperband.min_resource",
    ),
    (
        "parallel above jobs",
        with_(limits__max_parallel_jobs=21),
        "tuning.limits.parallel_le_jobs",
        "tuning.limits.max_parallel_jobs",
    ),
    (
        "limit below 1",
        with_(limits__max_jobs=0, limits__max_parallel_jobs=0),
        "tuning.limits.positive",
        "tuning.limits.max_parallel_jobs",
    ),
    (
        "runtime too short",
        with_(limits__max_runtime_seconds=60),
        "tuning.limits.max_runtime_bounds",
        "tuning.limits.max_runtime_seconds",
    ),
    (
        "not improving below 3",
        with_(completion__max_jobs_not_improving=2),
        "tuning.completion.not_improving_min",
        "tuning.completion.max_jobs_not_improving",
    ),
    (
        "warm start without parents",
        with_(warm_start={"type": "WARM_START_TYPE_TRANSFER_LEARNING"}),
        "tuning.warm_start.parents_missing",
        "tuning.warm_start.parents",
    ),
    (
        "warm start over 5 parents",
        with_(warm_start={"parents": [f"p{i}" for i in range(6)]}),
        "tuning.warm_start.max_parents",
        "tuning.warm_start.parents",
    ),
    (
        "warm start bad parent",
        with_(warm_start={"parents": ["ok", "not ok"]}),
        "tuning.warm_start.parent_name",
        "tuning.warm_start.parents[1]",
    ),
    (
        "negative seed",
        with_(random_seed=-1),
        "tuning.random_seed.non_negative",
        "tuning.random_seed",
    ),
]


@pytest.mark.parametrize(
    ("tree", "code", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_rule(tree, code, path):
    found = {(d.code, d.field_path) for d in run(tree)}
    assert (code, path) in found, found
    for diagnostic in run(tree):
        assert diagnostic.hint and diagnostic.message


def test_grid_with_max_jobs_equal_to_grid_size_is_fine():
    tree = with_(
        strategy="STRATEGY_GRID",
        ranges=GRID_RANGES,
        limits__max_jobs=6,
        limits__max_parallel_jobs=2,
    )
    tree["training"]["hyperparameters"].update(optimizer="adam", act="relu")
    assert run(tree) == []


def test_hyperband_with_an_epochs_static_and_off_is_fine():
    tree = with_(
        strategy="STRATEGY_HYPERBAND",
        early_stopping="EARLY_STOPPING_OFF",
        completion=...,
        training__hyperparameters={"epochs": 30, "lr": 0.1, "batch-size": 2},
    )
    assert run(tree) == []


def test_hyperband_settings_without_hyperband_warn():
    diagnostics = run(with_(hyperband={"max_resource": 10}))
    assert [(d.code, d.severity) for d in diagnostics] == [
        ("tuning.hyperband.unused", Severity.WARNING)
    ]


def test_unknown_range_name_is_a_warning_with_did_you_mean():
    diagnostics = run(
        with_(ranges__learning_rat={"continuous": {"min": 0.1, "max": 0.2}}),
        names=["learning_rate", "epochs", "lr", "batch-size"],
    )
    (warning,) = diagnostics
    assert warning.code == "tuning.range.unknown_hyperparameter"
    assert warning.severity is Severity.WARNING
    assert "did you mean 'learning_rate'?" in warning.hint


def test_metric_did_you_mean():
    (error,) = run(with_(objective__metric="validation:rmsee"))
    assert error.hint == "did you mean 'validation:rmse'?"


def test_all_problems_at_once_with_locations():
    tree = with_(
        name="y" * 40, limits__max_parallel_jobs=50, ranges__lr={"continuous": {"min": 1, "max": 0}}
    )
    where = Location("spec.yaml", 3, 5)
    diagnostics = run(tree, locate=lambda path: where if path == ("tuning", "name") else None)
    codes = {d.code for d in diagnostics}
    assert {
        "tuning.name.max_length",
        "tuning.limits.parallel_le_jobs",
        "tuning.range.min_lt_max",
    } <= codes
    (name_error,) = [d for d in diagnostics if d.code == "tuning.name.max_length"]
    assert name_error.location == where
    assert name_error.format_text().startswith("spec.yaml:3:5: error[tuning.name.max_length]")
