"""Trial preview: grid order, seeded deterministic draws within ranges, Hyperband brackets."""

from __future__ import annotations

import pytest
from trainspec.compiler.tuning._trials import (
    format_trials,
    hyperband_brackets,
    hyperband_resource_fraction,
    preview_trials,
)

RANDOM = {
    "strategy": "STRATEGY_RANDOM",
    "random_seed": 7,
    "ranges": {
        "lr": {"continuous": {"min": 0.001, "max": 0.01, "scaling": "SCALING_LOGARITHMIC"}},
        "batch-size": {"integer": {"min": 128, "max": 512}},
        "momentum": {
            "continuous": {"min": 0.5, "max": 0.99, "scaling": "SCALING_REVERSE_LOGARITHMIC"}
        },
        "optimizer": {"categorical": {"values": ["adam", "sgd"]}},
    },
}


def test_grid_every_combination_in_order():
    tuning = {
        "strategy": "STRATEGY_GRID",
        "ranges": {
            "b": {"categorical": {"values": ["x", "y"]}},
            "a": {"categorical": {"values": ["1", "2", "3"]}},
        },
    }
    rows = preview_trials(tuning, 100)
    assert len(rows) == 6
    assert rows[0] == {"trial": 1, "a": "1", "b": "x"}
    assert rows[-1] == {"trial": 6, "a": "3", "b": "y"}
    assert len(preview_trials(tuning, 4)) == 4


def test_random_draws_are_seeded_and_in_range():
    rows = preview_trials(RANDOM, 50)
    assert rows == preview_trials(RANDOM, 50)
    assert rows[:5] == preview_trials(RANDOM, 5)
    assert rows != preview_trials({**RANDOM, "random_seed": 8}, 50)
    for row in rows:
        assert 0.001 <= row["lr"] <= 0.01
        assert 128 <= row["batch-size"] <= 512 and isinstance(row["batch-size"], int)
        assert 0.5 <= row["momentum"] <= 0.99
        assert row["optimizer"] in ("adam", "sgd")


def test_log_scaling_spreads_over_decades():
    tuning = {
        "strategy": "STRATEGY_RANDOM",
        "ranges": {
            "lr": {"continuous": {"min": 1e-5, "max": 1.0, "scaling": "SCALING_LOGARITHMIC"}}
        },
    }
    draws = [row["lr"] for row in preview_trials(tuning, 200)]
    # Log-uniform: about a fifth of draws per decade, so many below 1e-3.
    assert sum(d < 1e-3 for d in draws) > 60


def test_bayesian_previews_initial_random_draws():
    rows = preview_trials({**RANDOM, "strategy": "STRATEGY_BAYESIAN"}, 3)
    assert rows == preview_trials(RANDOM, 3)


def test_hyperband_brackets_eta_3():
    rows = hyperband_brackets(1, 27)
    first = [r for r in rows if r["bracket"] == 3]
    assert [(r["trials"], r["resource"]) for r in first] == [(27, 1), (9, 3), (3, 9), (1, 27)]
    last = [r for r in rows if r["bracket"] == 0]
    assert [(r["trials"], r["resource"]) for r in last] == [(4, 27)]
    assert len({r["bracket"] for r in rows}) == 4
    tuning = {
        "strategy": "STRATEGY_HYPERBAND",
        "hyperband": {"min_resource": 1, "max_resource": 27},
    }
    assert preview_trials(tuning, 5) == rows


def test_hyperband_fraction():
    assert hyperband_resource_fraction(5, 5) == 1.0
    assert 0 < hyperband_resource_fraction(1, 81) < hyperband_resource_fraction(1, 3) < 1


def test_hyperband_bad_resources():
    with pytest.raises(ValueError, match="min_resource"):
        hyperband_brackets(10, 5)


def test_format_table():
    text = format_trials(preview_trials(RANDOM, 2), note="seeded with 7")
    lines = text.splitlines()
    assert lines[0].split() == ["trial", "batch-size", "lr", "momentum", "optimizer"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 5 and lines[-1] == "seeded with 7"
    assert format_trials([]) == "(no trials)\n"


def test_hyperband_starts_no_more_trials_than_max_jobs():
    # uncapped, 1-9 epochs starts 9 + 5 + 3 = 17 trials; the job may run 12
    uncapped = hyperband_brackets(1, 9)
    assert sum(r["trials"] for r in uncapped if r["rung"] == 0) == 17
    rows = preview_trials(
        {
            "strategy": "STRATEGY_HYPERBAND",
            "hyperband": {"min_resource": 1, "max_resource": 9},
            "limits": {"max_jobs": 12},
        },
        5,
    )
    assert sum(r["trials"] for r in rows if r["rung"] == 0) == 12
    assert [(r["bracket"], r["rung"], r["trials"]) for r in rows] == [
        (2, 0, 9), (2, 1, 3), (2, 2, 1), (1, 0, 3), (1, 1, 1)
    ]  # fmt: skip


@pytest.mark.parametrize(("low", "high"), [(1, 10), (2, 50), (1, 100), (3, 7)])
def test_hyperband_resources_are_whole_epochs_within_bounds(low, high):
    for row in hyperband_brackets(low, high):
        assert isinstance(row["resource"], int), row
        assert low <= row["resource"] <= high
        assert row["trials"] >= 1
