"""Autotune rules file: every rule's range from a typical value, names, and load errors."""

from __future__ import annotations

import copy

import pytest
import yaml
from trainspec.compiler._diagnostics import InternalError
from trainspec.compiler.tuning._autotune_rules import (
    load_rules,
    rules_from_data,
    rules_version,
)

RULES = load_rules()

# (name as a user writes it, static value, rule id, expected range)
TYPICAL = [
    ("lr", 0.01, "learning_rate", (0.001, 0.1)),
    ("learning-rate", 3e-4, "learning_rate", (3e-5, 3e-3)),
    ("adam-learning-rate", 0.5, "learning_rate", (0.05, 1.0)),  # clipped at 1
    ("eta", 0.3, "learning_rate", (0.03, 1.0)),
    ("momentum", 0.9, "momentum", (0.5, 0.99)),
    ("beta1", 0.9, "beta1", (0.8, 0.99)),
    ("beta2", 0.999, "beta2", (0.99, 0.9999)),
    ("weight_decay", 0.01, "weight_decay", (0.001, 0.1)),
    ("weight-decay", 0, "weight_decay", (1e-6, 1e-2)),  # when_zero
    ("dropout", 0.1, "dropout", (0.0, 0.5)),
    ("num_layers", 4, "num_layers", (3, 6)),
    ("hidden_size", 768, "hidden_size", (256, 2048)),
    ("max_depth", 6, "xgboost.max_depth", (3, 9)),
    ("max_depth", 2, "xgboost.max_depth", (1, 5)),  # clipped at 1
    ("subsample", 0.8, "xgboost.subsample", (0.5, 1.0)),
    ("colsample_bytree", 1, "xgboost.colsample", (0.5, 1.0)),
    ("min_child_weight", 1, "xgboost.min_child_weight", (0.1, 10)),
    ("gamma", 0, "xgboost.gamma", (0.0, 5.0)),
    ("alpha", 0, "xgboost.regularization", (0.001, 10)),
    ("lambda", 1, "xgboost.regularization", (0.1, 10)),
]


@pytest.mark.parametrize(("name", "value", "rule_id", "expected"), TYPICAL)
def test_rule_ranges(name, value, rule_id, expected):
    rule = RULES.match(name)
    assert rule is not None and rule.id == rule_id
    lo, hi = rule.derive_range(value)
    assert lo == pytest.approx(expected[0]) and hi == pytest.approx(expected[1])
    assert rule.hard_min <= lo < hi <= rule.hard_max
    if rule.type == "integer":
        assert isinstance(lo, int) and isinstance(hi, int)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("batch-size", 32, (16, 32, 64)),
        ("mini_batch_size", 100, (64, 128)),  # the powers of two inside 50-200
        ("per_device_train_batch_size", 8, (4, 8, 16)),
        ("batch_size", 1, (1, 2)),  # clipped at the hard minimum
        ("batch_size", 4096, (2048, 4096)),  # and at the hard maximum
    ],
)
def test_batch_rule_tunes_powers_of_two(name, value, expected):
    rule = RULES.match(name)
    assert rule.id == "batch_size" and rule.type == "categorical"
    assert rule.derive_values(value) == expected


def test_per_device_scale_multiplies_each_value():
    # 64 per device on 4 GPUs driven by one process: the static value is 256, and every
    # trial must be a power of two per device times 4 (the issue saw 413, 229 and 379)
    rule = RULES.match("batch-size")
    values = rule.derive_values(256 / 4, scale=4)
    assert values == (128, 256, 512)
    assert all(v % 4 == 0 and (v // 4) & (v // 4 - 1) == 0 for v in values)


def test_a_single_power_of_two_is_no_range():
    rule = RULES.match("batch-size")
    assert rule.derive_values(4096 * 2) is None  # only 4096 is inside the bounds


def test_value_beyond_bounds_gives_no_range():
    assert RULES.match("lr").derive_range(50) is None


@pytest.mark.parametrize(
    "name",
    [
        "epochs",
        "num_round",
        "backend",
        "seed",
        "objective",
        "model_dir",
        "train_path",
        "verbosity",
        "sagemaker_program",
        "Num-Epochs",
    ],
)
def test_never_tuned(name):
    assert RULES.is_never_tuned(name)


@pytest.mark.parametrize("name", ["lr", "batch-size", "optimizer", "custom_knob"])
def test_tunable_names_are_not_never_tuned(name):
    assert not RULES.is_never_tuned(name)


def test_every_rule_has_id_version_and_reason():
    ids = [rule.id for rule in RULES.range_rules]
    assert len(ids) == len(set(ids))
    for rule in RULES.range_rules:
        assert rule.version >= 1 and rule.reason
        assert rule.source == f"rule:{rule.id}@v{rule.version}"


def test_version_stamp_and_cache():
    assert load_rules() is RULES
    assert rules_version() == f"hyperparameters@v{RULES.version}"


def _raw():
    from importlib import resources

    text = resources.files("trainspec.compiler.catalog").joinpath("hyperparameters.yaml")
    return yaml.safe_load(text.read_text("utf-8"))


def _broken(mutate):
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(InternalError) as info:
        rules_from_data(data)
    return str(info.value)


def test_broken_field_names_rule_and_field():
    def mutate(data):
        data["range_rules"][1]["scaling"] = "CUBIC"

    message = _broken(mutate)
    assert "range_rules[1] (batch_size).scaling" in message
    assert "unallowed value CUBIC" in message


def test_missing_derive_bound_names_rule():
    def mutate(data):
        del data["range_rules"][0]["derive"]["high"]

    assert "(learning_rate)" in _broken(mutate) and "derive.high" in _broken(mutate)


def test_duplicate_alias_is_an_internal_error():
    def mutate(data):
        data["range_rules"][2]["names"].append("LR")

    assert "'lr'" in _broken(mutate)


def test_log_rule_with_non_positive_bound_is_rejected():
    def mutate(data):
        data["range_rules"][0]["bounds"]["min"] = 0

    assert "LOGARITHMIC needs bounds.min > 0" in _broken(mutate)


def test_not_a_mapping():
    with pytest.raises(InternalError):
        rules_from_data(["nope"])
