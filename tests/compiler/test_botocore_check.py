"""check_request: botocore's ParamValidator plus the strict pass, on hand-built requests."""

from __future__ import annotations

import copy
import re

import botocore
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainspec.compiler.check import _botocore_check as bc
from trainspec.compiler.check._botocore_check import (
    botocore_version,
    check_request,
    enum_values,
)

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.0.1-gpu-py310"


def training_request() -> dict:
    return {
        "TrainingJobName": "sentiment-bert-1",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://acme-ml/out/"},
        "ResourceConfig": {
            "InstanceType": "ml.p3.8xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "HyperParameters": {"epochs": "3", "batch_size": "256"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://acme-ml/train/"}
                },
            }
        ],
        "Tags": [{"Key": "team", "Value": "ml platform"}],
    }


def tuning_request() -> dict:
    return {
        "HyperParameterTuningJobName": "mnist-autotune",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": "Minimize",
                "MetricName": "validation:rmse",
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.01", "ScalingType": "Auto"}
                ]
            },
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "rmse: ([0-9.]+)"}],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://acme-ml/out/"},
            "ResourceConfig": {
                "InstanceType": "ml.p4d.24xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 50,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "StaticHyperParameters": {"epochs": "1", "backend": "gloo"},
        },
    }


def codes(problems) -> set[tuple[str, str]]:
    return {(p.field_path, p.code) for p in problems}


def test_valid_requests_pass():
    assert check_request("CreateTrainingJob", training_request()) == []
    assert check_request("CreateHyperParameterTuningJob", tuning_request()) == []


def test_wrong_enum_is_flagged():
    request = training_request()
    request["ResourceConfig"]["InstanceType"] = "ml.p3.9xlarge"
    (problem,) = check_request("CreateTrainingJob", request)
    assert problem.code == "sagemaker.request_invalid.enum"
    assert problem.field_path == "ResourceConfig.InstanceType"
    assert problem.value == "ml.p3.9xlarge"
    assert "ml.c4.2xlarge" in problem.hint


def test_enum_in_tuning_request():
    request = tuning_request()
    request["HyperParameterTuningJobConfig"]["Strategy"] = "bayesian"
    assert codes(check_request("CreateHyperParameterTuningJob", request)) == {
        ("HyperParameterTuningJobConfig.Strategy", "sagemaker.request_invalid.enum")
    }


def test_pattern_mismatch_is_flagged():
    request = training_request()
    request["TrainingJobName"] = "sentiment_bert"
    (problem,) = check_request("CreateTrainingJob", request)
    assert problem.code == "sagemaker.request_invalid.pattern"
    assert problem.field_path == "TrainingJobName"


def test_pattern_is_a_full_match():
    request = training_request()
    request["TrainingJobName"] = "ok-name-"  # a prefix of it matches; the whole does not
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("TrainingJobName", "sagemaker.request_invalid.pattern")
    }


def test_too_many_hyperparameters():
    request = training_request()
    request["HyperParameters"] = {f"h{i}": "1" for i in range(101)}
    (problem,) = check_request("CreateTrainingJob", request)
    assert problem.code == "sagemaker.request_invalid.max_length"
    assert problem.field_path == "HyperParameters"
    assert problem.value == 101
    request["HyperParameters"] = {f"h{i}": "1" for i in range(100)}
    assert check_request("CreateTrainingJob", request) == []


def test_too_long_string_and_key():
    request = training_request()
    request["TrainingJobName"] = "a" * 64
    request["HyperParameters"] = {"k" * 257: "1", "long": "v" * 2501}
    found = codes(check_request("CreateTrainingJob", request))
    assert found == {
        ("TrainingJobName", "sagemaker.request_invalid.max_length"),
        ("TrainingJobName", "sagemaker.request_invalid.pattern"),  # {0,62} after the first
        ("HyperParameters." + "k" * 257, "sagemaker.request_invalid.max_length"),
        ("HyperParameters.long", "sagemaker.request_invalid.max_length"),
    }


def test_max_value():
    request = training_request()
    request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 21601  # max 21600
    request["ResourceConfig"]["InstanceCount"] = True  # ParamValidator takes a bool as an int
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("ResourceConfig.KeepAlivePeriodInSeconds", "sagemaker.request_invalid.max_value"),
        ("ResourceConfig.InstanceCount", "sagemaker.request_invalid.type"),
    }


def test_min_checks_from_param_validator():
    request = training_request()
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = 0
    request["InputDataConfig"][0]["ChannelName"] = ""
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("StoppingCondition.MaxRuntimeInSeconds", "sagemaker.request_invalid.min_value"),
        ("InputDataConfig[0].ChannelName", "sagemaker.request_invalid.min_length"),
        # "" also fails ChannelName's pattern `[A-Za-z0-9\.\-_]+`
        ("InputDataConfig[0].ChannelName", "sagemaker.request_invalid.pattern"),
    }


def test_missing_required_key():
    request = training_request()
    del request["RoleArn"]
    del request["OutputDataConfig"]["S3OutputPath"]
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("RoleArn", "sagemaker.request_invalid.missing_required"),
        ("OutputDataConfig.S3OutputPath", "sagemaker.request_invalid.missing_required"),
    }


def test_none_value_and_unknown_key():
    request = training_request()
    request["VpcConfig"] = None
    request["OutputDataConfig"]["Bucket"] = "x"
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("VpcConfig", "sagemaker.request_invalid.type"),
        ("OutputDataConfig.Bucket", "sagemaker.request_invalid.unknown_field"),
    }


def test_non_string_hyperparameter_value():
    request = training_request()
    request["HyperParameters"]["epochs"] = 3
    (problem,) = check_request("CreateTrainingJob", request)
    assert problem.code == "sagemaker.request_invalid.type"
    assert problem.field_path == "HyperParameters.epochs"
    assert problem.value == 3


def test_unicode_category_patterns_are_translated():
    # TagKey is `([\p{L}\p{Z}\p{N}_.:/=+\-@]*)`: Java categories Python `re` lacks.
    request = training_request()
    request["Tags"] = [{"Key": "Équipe données 2", "Value": "ml"}, {"Key": "a#b", "Value": "x"}]
    assert codes(check_request("CreateTrainingJob", request)) == {
        ("Tags[1].Key", "sagemaker.request_invalid.pattern")
    }
    assert not any("TagKey" in p for p in bc.skipped_patterns)


def test_every_sagemaker_pattern_compiles_or_is_skipped_with_a_reason():
    model = bc._model()
    for name in model.shape_names:
        pattern = model.shape_for(name).metadata.get("pattern")
        if pattern:
            assert bc._compile(pattern) is not None or bc.skipped_patterns[pattern]


def test_unknown_operation():
    (problem,) = check_request("CreateTrainingJobs", {})
    assert problem.code == "sagemaker.unknown_operation"


def test_enum_values_and_version():
    assert "ml.p3.8xlarge" in enum_values("TrainingInstanceType")
    assert "Hyperband" in enum_values("HyperParameterTuningJobStrategyType")
    assert botocore_version() == botocore.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", botocore_version())


def test_input_is_not_mutated():
    request = training_request()
    before = copy.deepcopy(request)
    check_request("CreateTrainingJob", request)
    assert request == before


@pytest.mark.parametrize("operation", ["CreateTrainingJob", "CreateHyperParameterTuningJob"])
def test_empty_request_lists_every_required_key(operation):
    found = check_request(operation, {})
    required = bc._model().operation_model(operation).input_shape.required_members
    assert {p.field_path for p in found} == set(required)


_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(sorted(training_request())),
    inner=st.one_of(st.none(), st.text(max_size=20)),
    junk=_JUNK,
)
def test_any_junk_gives_diagnostics_never_an_exception(key, inner, junk):
    request = training_request()
    if inner is not None and isinstance(request[key], dict):
        request[key][inner] = junk
    else:
        request[key] = junk
    for problem in check_request("CreateTrainingJob", request):
        assert problem.code.startswith("sagemaker.request_invalid")
        assert problem.field_path
        problem.to_json()  # values stay JSON-like


def test_the_committed_unicode_table_is_what_a_scan_gives() -> None:
    """catalog/unicode_categories.json saves every process an 80 ms scan; it must be the
    scan's result (regenerate with tools/gen_unicode_categories.py)."""
    import json
    import unicodedata
    from importlib import resources

    from trainspec.compiler.check._botocore_check import scan_category_ranges

    ref = resources.files("trainspec.compiler.catalog").joinpath("unicode_categories.json")
    data = json.loads(ref.read_text())
    if data["unidata_version"] != unicodedata.unidata_version:
        pytest.skip(
            f"this Python has Unicode {unicodedata.unidata_version}; the table is "
            f"{data['unidata_version']} and is not used here"
        )
    assert data["categories"] == scan_category_ranges()


def test_a_category_class_is_matched_as_its_translated_regex_would():
    """Tags' ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*) is checked character by character rather than
    by a regex of ~1,400 ranges: the same answer for every code point and for strings."""
    import sys

    pattern = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
    fast = bc._compile(pattern)
    assert isinstance(fast, bc._CategoryStar)
    regex = re.compile(bc._translate(pattern))
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert (fast.fullmatch(char) is None) == (regex.fullmatch(char) is None), hex(code)
    for text in ["", "team ml-platform", "ünï cödé 42", "a\tb", "key#1", "x" * 300, "@_.:/=+-"]:
        assert (fast.fullmatch(text) is None) == (regex.fullmatch(text) is None), text
