"""Autotune inference: the merge table, the seed example, and user ranges always winning."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from trainspec.compiler._diagnostics import format_path
from trainspec.compiler._origin import OriginKind
from trainspec.compiler.tuning._autotune import infer_tuning
from trainspec.compiler.tuning._check import check_tuning

CASES = yaml.safe_load((Path(__file__).parent / "data" / "merge_tuning.yaml").read_text())

SEED = {
    "name": "mnist-autotune",
    "objective": {"metric": "validation:rmse", "type": "OBJECTIVE_TYPE_MINIMIZE"},
    "autotune": True,
    "ranges": {"lr": {"continuous": {"min": 0.001, "max": 0.01}}},
    "training": {
        "name": "mnist",
        # batch-size 32 per device, already scaled × 8 GPUs by the training infer pass
        "hyperparameters": {"epochs": 1, "backend": "gloo", "lr": 0.01, "batch-size": 256},
        "metrics": [{"name": "validation:rmse", "regex": "validation rmse: ([0-9.]+)"}],
    },
}


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_merge_table(case):
    original = copy.deepcopy(case["tuning"])
    result = infer_tuning(
        case["tuning"],
        devices_per_process=case["devices_per_process"],
        batch_hyperparameter=case["batch_hyperparameter"],
    )
    assert case["tuning"] == original, "infer_tuning mutated its input"
    for key, expected in case.get("expect", {}).items():
        if expected is None:
            assert key not in result.tuning, key
        else:
            assert result.tuning[key] == expected, key
    if "static" in case:
        assert dict(result.static_hyperparameters) == case["static"]
    origins = {format_path(path): origin for path, origin in result.origins.items()}
    for path, source in case.get("origins", {}).items():
        assert origins[path].source == source
        assert origins[path].kind is OriginKind.INFERRED
        assert origins[path].reason
    for path in case.get("not_inferred", []):
        assert path not in origins
    assert sorted(d.code for d in result.notes) == sorted(case["notes"])
    hyperparameters = case["tuning"]["training"]["hyperparameters"]
    diagnostics = check_tuning(
        result.tuning,
        metric_names=[case["tuning"]["objective"]["metric"]],
        hyperparameter_names=list(hyperparameters),
        locate=lambda path: None,
    )
    assert sorted(d.code for d in diagnostics if d.is_error) == sorted(case["errors"])


def test_seed_example():
    result = infer_tuning(SEED, devices_per_process=8, batch_hyperparameter="batch-size")
    tuning = result.tuning
    assert tuning["ranges"]["lr"] == {"continuous": {"min": 0.001, "max": 0.01}}
    assert tuning["ranges"]["batch-size"] == {"categorical": {"values": ["128", "256", "512"]}}
    assert dict(result.static_hyperparameters) == {"epochs": 1, "backend": "gloo"}
    assert tuning["early_stopping"] == "EARLY_STOPPING_AUTO"
    assert tuning["limits"]["max_runtime_seconds"] == 172800
    assert result.inferred_range_names == ("batch-size",)
    reason = result.origins[("tuning", "ranges", "batch-size")].reason
    assert "16, 32, 64 per device × 8 devices per process" in reason
    assert result.notes == ()


def test_cpu_instances_count_as_one_device():
    tuning = {**SEED, "ranges": {}}
    tuning["training"] = {**SEED["training"], "hyperparameters": {"batch-size": 32}}
    for devices in (0, 1):
        result = infer_tuning(
            tuning, devices_per_process=devices, batch_hyperparameter="batch-size"
        )
        assert result.tuning["ranges"]["batch-size"]["categorical"]["values"] == ["16", "32", "64"]


def test_batch_with_one_power_of_two_left_stays_static_under_jumpstart_bounds():
    # 8192 per device derives [4096, 16384], clipped to the rule's 4096: one value, too few
    # to tune. A JumpStart spec's bounds on the name once made that a TypeError.
    tuning = {**SEED, "ranges": {}}
    tuning["training"] = {**SEED["training"], "hyperparameters": {"batch-size": 8192}}
    for hard_bounds in ({}, {"batch-size": (1.0, 10000.0)}):
        result = infer_tuning(
            tuning,
            devices_per_process=1,
            batch_hyperparameter="batch-size",
            hard_bounds=hard_bounds,
        )
        assert "batch-size" not in result.tuning["ranges"]
        assert [n.code for n in result.notes if "batch-size" in n.message] == [
            "autotune.empty_range"
        ]


def test_batch_alias_that_was_not_scaled_is_not_divided():
    tuning = {**SEED, "ranges": {}}
    tuning["training"] = {**SEED["training"], "hyperparameters": {"train_batch_size": 32}}
    result = infer_tuning(tuning, devices_per_process=8, batch_hyperparameter="batch-size")
    assert result.tuning["ranges"]["train_batch_size"]["categorical"]["values"][-1] == "64"


def test_xgboost_hyperparameters():
    tuning = {
        "name": "xgb",
        "objective": {"metric": "validation:rmse", "type": "OBJECTIVE_TYPE_MINIMIZE"},
        "autotune": True,
        "training": {
            "hyperparameters": {
                "objective": "reg:squarederror",
                "num_round": 100,
                "verbosity": 1,
                "max_depth": 5,
                "eta": 0.2,
            }
        },
    }
    result = infer_tuning(tuning, devices_per_process=0, batch_hyperparameter=None)
    assert set(result.tuning["ranges"]) == {"max_depth", "eta"}
    assert set(result.static_hyperparameters) == {"objective", "num_round", "verbosity"}
    # num_round = 100 is an epochs-like resource: Hyperband, bounded by it explicitly.
    assert result.tuning["strategy"] == "STRATEGY_HYPERBAND"
    assert result.tuning["hyperband"] == {"max_resource": 100, "min_resource": 1}
    assert result.tuning["early_stopping"] == "EARLY_STOPPING_OFF"


_BOUND = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
_USER_RANGE = st.one_of(
    st.builds(lambda a, b: {"continuous": {"min": a, "max": b}}, _BOUND, _BOUND),
    st.builds(
        lambda a, b: {"integer": {"min": a, "max": b, "scaling": "SCALING_LINEAR"}},
        st.integers(-1000, 1000),
        st.integers(-1000, 1000),
    ),
    st.builds(lambda v: {"categorical": {"values": v}}, st.lists(st.text(max_size=5), max_size=4)),
)
_NAMES = st.sampled_from(
    ["lr", "batch-size", "momentum", "dropout", "max_depth", "epochs", "backend", "custom"]
)


@settings(max_examples=60, deadline=None)
@given(
    statics=st.dictionaries(_NAMES, st.floats(0.0001, 500), max_size=6),
    user=st.dictionaries(_NAMES, _USER_RANGE, max_size=4),
    gpus=st.integers(0, 8),
)
def test_user_ranges_always_win(statics, user, gpus):
    tuning = {
        "name": "prop",
        "objective": {"metric": "m", "type": "OBJECTIVE_TYPE_MAXIMIZE"},
        "autotune": True,
        "ranges": user,
        "training": {"hyperparameters": statics},
    }
    result = infer_tuning(tuning, devices_per_process=gpus, batch_hyperparameter="batch-size")
    ranges = result.tuning.get("ranges", {})
    for name, parameter_range in user.items():
        assert ranges[name] == parameter_range
        assert ("tuning", "ranges", name) not in result.origins
    assert set(result.static_hyperparameters).isdisjoint(ranges)
    assert set(result.static_hyperparameters) | set(ranges) >= set(statics)


def test_seed_example_compiles_end_to_end():
    """The issue's done-criterion, through the driver: ranges, statics, Auto, 172800 s."""
    from trainspec._plan import request_of
    from trainspec.compiler import compile_file

    root = Path(__file__).resolve().parents[2]
    plan = compile_file(root / "examples" / "tuning" / "mnist-autotune.yaml")
    request = request_of(plan)
    config = request["HyperParameterTuningJobConfig"]
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.01"}],
        # torchrun is not used: one process drives the 8 GPUs and gets 8 × per device
        "CategoricalParameterRanges": [{"Name": "batch-size", "Values": ["128", "256", "512"]}],
    }
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["epochs"] == "1" and static["backend"] == "gloo"
    assert "lr" not in static and "batch-size" not in static
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"]["MaxRuntimeInSeconds"] == 172800
    assert plan.envelope.worst_case_cost > 0
