"""Lowering to CreateHyperParameterTuningJob: exact spellings, botocore's validator, modes."""

from __future__ import annotations

import copy

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st
from trainspec.compiler.tuning._autotune import infer_tuning
from trainspec.compiler.tuning._lower import lower_tuning

_MODEL = botocore.session.get_session().get_service_model("sagemaker")


def validate(operation: str, request: dict) -> None:
    shape = _MODEL.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def no_none(value) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_none(v) for v in value.values())
    if isinstance(value, list):
        return all(no_none(v) for v in value)
    return True


# The CreateTrainingJob kwargs the training lowering produces for the seed example.
TRAINING_REQUEST = {
    "TrainingJobName": "mnist",
    "AlgorithmSpecification": {
        "TrainingImage": (
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-gpu-py310"
        ),
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "validation rmse: ([0-9.]+)"}],
        "EnableSageMakerMetricsTimeSeries": True,
    },
    "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    "HyperParameters": {
        "epochs": "1",
        "backend": '"gloo"',
        "lr": "0.01",
        "batch-size": "256",
        "sagemaker_program": '"mnist.py"',
        "sagemaker_submit_directory": '"s3://acme/code/sourcedir.tar.gz"',
    },
    "OutputDataConfig": {"S3OutputPath": "s3://acme/out/"},
    "ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    "InputDataConfig": [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://acme/mnist/train/"}
            },
        }
    ],
    "EnableNetworkIsolation": False,
    "Environment": {"LOG_LEVEL": "info"},
    "Tags": [{"Key": "team", "Value": "ml"}],
}

SEED = {
    "name": "mnist-autotune",
    "objective": {"metric": "validation:rmse", "type": "OBJECTIVE_TYPE_MINIMIZE"},
    "autotune": True,
    "ranges": {"lr": {"continuous": {"min": 0.001, "max": 0.01}}},
    "training": {
        "hyperparameters": {"epochs": 1, "backend": "gloo", "lr": 0.01, "batch-size": 256}
    },
}


def seed_inference():
    return infer_tuning(SEED, devices_per_process=8, batch_hyperparameter="batch-size")


def test_training_request_fixture_is_valid():
    validate("CreateTrainingJob", TRAINING_REQUEST)


def test_seed_explicit():
    inference = seed_inference()
    request = lower_tuning(
        inference.tuning,
        training_request=TRAINING_REQUEST,
        inferred_range_names=inference.inferred_range_names,
    )
    validate("CreateHyperParameterTuningJob", request)
    assert no_none(request)
    assert request["HyperParameterTuningJobName"] == "mnist-autotune"
    assert request["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": 20,
            "MaxParallelTrainingJobs": 4,
            "MaxRuntimeInSeconds": 172800,
        },
        "ParameterRanges": {
            "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.01"}],
            "CategoricalParameterRanges": [{"Name": "batch-size", "Values": ["128", "256", "512"]}],
        },
        "TrainingJobEarlyStoppingType": "Auto",
        "TuningJobCompletionCriteria": {
            "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 5},
            "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"},
        },
    }
    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "backend": '"gloo"',
        "epochs": "1",
        "sagemaker_program": '"mnist.py"',
        "sagemaker_submit_directory": '"s3://acme/code/sourcedir.tar.gz"',
    }
    # HyperParameterAlgorithmSpecification has no EnableSageMakerMetricsTimeSeries.
    assert set(definition["AlgorithmSpecification"]) == {
        "TrainingImage",
        "TrainingInputMode",
        "MetricDefinitions",
    }
    for key in (
        "RoleArn",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "InputDataConfig",
        "EnableNetworkIsolation",
        "Environment",
    ):
        assert definition[key] == TRAINING_REQUEST[key]
    assert "TrainingJobName" not in definition and "Tags" not in definition
    assert request["Tags"] == TRAINING_REQUEST["Tags"]
    assert "Autotune" not in request and "WarmStartConfig" not in request


def test_seed_native_sends_value_hints_for_inferred_names_only():
    inference = seed_inference()
    request = lower_tuning(
        inference.tuning,
        training_request=TRAINING_REQUEST,
        mode="native",
        inferred_range_names=inference.inferred_range_names,
    )
    validate("CreateHyperParameterTuningJob", request)
    assert request["Autotune"] == {"Mode": "Enabled"}
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges == {
        "AutoParameters": [{"Name": "batch-size", "ValueHint": "256"}],
        "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.01"}],
    }
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "batch-size" not in static and "lr" not in static
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["ResourceLimits"]["MaxParallelTrainingJobs"]


def test_grid_omits_max_jobs_and_writes_values_as_strings():
    tuning = {
        **SEED,
        "autotune": False,
        "strategy": "STRATEGY_GRID",
        "ranges": {
            "batch-size": {"categorical": {"values": ["128", "256"]}},
            "lr": {"categorical": {"values": [0.001, 0.01, 1e-06]}},
        },
        "limits": {"max_jobs": 6, "max_parallel_jobs": 2},
    }
    request = lower_tuning(tuning, training_request=TRAINING_REQUEST)
    validate("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Grid"
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}
    assert config["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "batch-size", "Values": ["128", "256"]},
        {"Name": "lr", "Values": ["0.001", "0.01", "1e-06"]},
    ]
    assert "TrainingJobEarlyStoppingType" not in config


def test_hyperband_strategy_config_and_off():
    tuning = infer_tuning(
        {**SEED, "training": {"hyperparameters": {"epochs": 81, "lr": 0.01}}},
        devices_per_process=1,
        batch_hyperparameter=None,
    ).tuning
    request = lower_tuning(tuning, training_request=TRAINING_REQUEST)
    validate("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband"
    assert config["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 81}
    }
    assert config["TrainingJobEarlyStoppingType"] == "Off"


@pytest.mark.parametrize(
    ("kind", "spelled"),
    [
        ("WARM_START_TYPE_TRANSFER_LEARNING", "TransferLearning"),
        ("WARM_START_TYPE_IDENTICAL_DATA_AND_ALGORITHM", "IdenticalDataAndAlgorithm"),
        (None, "IdenticalDataAndAlgorithm"),
    ],
)
def test_warm_start(kind, spelled):
    warm = {"parents": ["mnist-autotune-1", "mnist-autotune-2"]}
    if kind:
        warm["type"] = kind
    request = lower_tuning(
        {**seed_inference().tuning, "warm_start": warm}, training_request=TRAINING_REQUEST
    )
    validate("CreateHyperParameterTuningJob", request)
    assert request["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "mnist-autotune-1"},
            {"HyperParameterTuningJobName": "mnist-autotune-2"},
        ],
        "WarmStartType": spelled,
    }


def test_scalings_seed_target_and_maximize():
    tuning = {
        **SEED,
        "objective": {"metric": "validation:rmse", "type": "OBJECTIVE_TYPE_MAXIMIZE"},
        "strategy": "STRATEGY_RANDOM",
        "ranges": {
            "a": {
                "continuous": {"min": 0.5, "max": 0.99, "scaling": "SCALING_REVERSE_LOGARITHMIC"}
            },
            "b": {"integer": {"min": 1, "max": 8, "scaling": "SCALING_LINEAR"}},
            "c": {"continuous": {"min": 0, "max": 1, "scaling": "SCALING_AUTO"}},
        },
        "completion": {"target_objective_value": 0.95},
        "random_seed": 7,
        "limits": {"max_jobs": 10, "max_parallel_jobs": 2},
    }
    request = lower_tuning(tuning, training_request=TRAINING_REQUEST)
    validate("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
    assert config["RandomSeed"] == 7
    assert config["TuningJobCompletionCriteria"] == {"TargetObjectiveMetricValue": 0.95}
    assert [r["ScalingType"] for r in config["ParameterRanges"]["ContinuousParameterRanges"]] == [
        "ReverseLogarithmic",
        "Auto",
    ]
    assert config["ParameterRanges"]["ContinuousParameterRanges"][1]["MinValue"] == "0.0"
    assert config["ParameterRanges"]["IntegerParameterRanges"][0]["ScalingType"] == "Linear"


def test_does_not_mutate_inputs():
    tuning = seed_inference().tuning
    before = (copy.deepcopy(tuning), copy.deepcopy(TRAINING_REQUEST))
    lower_tuning(
        tuning,
        training_request=TRAINING_REQUEST,
        mode="native",
        inferred_range_names=["batch-size"],
    )
    assert (tuning, TRAINING_REQUEST) == before


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of explicit, native"):
        lower_tuning(SEED, training_request=TRAINING_REQUEST, mode="magic")


_NAME = st.sampled_from(["lr", "batch-size", "momentum", "dropout", "depth", "optimizer", "x-1"])


@st.composite
def _range(draw):
    kind = draw(st.sampled_from(["integer", "continuous", "categorical"]))
    if kind == "categorical":
        values = draw(
            st.lists(
                st.one_of(
                    st.text(min_size=1, max_size=8),
                    st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(),
                ),
                min_size=1,
                max_size=5,
            )
        )
        return {"categorical": {"values": values}}
    if kind == "integer":
        lo = draw(st.integers(-(10**6), 10**6))
        body = {"min": lo, "max": lo + draw(st.integers(1, 10**6))}
    else:
        lo = draw(st.floats(-1e6, 1e6, allow_nan=False))
        body = {"min": lo, "max": lo + draw(st.floats(1e-6, 1e6))}
    scaling = draw(
        st.sampled_from(
            [
                None,
                "SCALING_AUTO",
                "SCALING_LINEAR",
                "SCALING_LOGARITHMIC",
                "SCALING_REVERSE_LOGARITHMIC",
            ]
        )
    )
    if scaling:
        body["scaling"] = scaling
    return {kind: body}


@st.composite
def _tuning(draw):
    tuning = {
        "name": draw(st.from_regex(r"[a-z0-9](-?[a-z0-9]){0,20}", fullmatch=True)),
        "objective": {
            "metric": "validation:rmse",
            "type": draw(st.sampled_from(["OBJECTIVE_TYPE_MINIMIZE", "OBJECTIVE_TYPE_MAXIMIZE"])),
        },
        "autotune": draw(st.booleans()),
        "ranges": draw(st.dictionaries(_NAME, _range(), max_size=5)),
        "training": {
            "hyperparameters": {"epochs": draw(st.integers(1, 100)), "lr": 0.01, "batch-size": 256}
        },
    }
    if draw(st.booleans()):
        tuning["strategy"] = draw(
            st.sampled_from(
                ["STRATEGY_BAYESIAN", "STRATEGY_RANDOM", "STRATEGY_HYPERBAND", "STRATEGY_GRID"]
            )
        )
    if draw(st.booleans()):
        tuning["limits"] = {
            "max_jobs": draw(st.integers(1, 500)),
            "max_runtime_seconds": draw(st.integers(120, 15768000)),
        }
    if draw(st.booleans()):
        tuning["completion"] = {
            "max_jobs_not_improving": draw(st.integers(3, 50)),
            "convergence_detection": draw(st.booleans()),
        }
    if draw(st.booleans()):
        tuning["warm_start"] = {
            "parents": ["parent-1"],
            "type": "WARM_START_TYPE_TRANSFER_LEARNING",
        }
    if draw(st.booleans()):
        tuning["random_seed"] = draw(st.integers(0, 2**31 - 1))
    return tuning


@settings(max_examples=60, deadline=None)
@given(tuning=_tuning(), gpus=st.integers(0, 8), mode=st.sampled_from(["explicit", "native"]))
def test_every_lowered_request_passes_botocore(tuning, gpus, mode):
    inference = infer_tuning(tuning, devices_per_process=gpus, batch_hyperparameter="batch-size")
    request = lower_tuning(
        inference.tuning,
        training_request=TRAINING_REQUEST,
        mode=mode,
        inferred_range_names=inference.inferred_range_names,
    )
    validate("CreateHyperParameterTuningJob", request)
    assert no_none(request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] in {"Bayesian", "Random", "Hyperband", "Grid"}
    assert config["ResourceLimits"]["MaxParallelTrainingJobs"] >= 1
    # User ranges are always explicit, whatever the mode.
    lowered = {
        r["Name"]
        for key, entries in config.get("ParameterRanges", {}).items()
        if key != "AutoParameters"
        for r in entries
    }
    assert set(tuning["ranges"]) <= lowered
