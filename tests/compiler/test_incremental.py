"""Incremental training (`model.from_job`, `model.from_artifact`): the request's model
channel, its provenance, and the offline checks of the artifact's form and region."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainspec.compiler import SpecError, compile_file
from trainspec.compiler.check._botocore_check import check_request
from trainspec.compiler.lower._incremental import StartModel, bucket_region, with_model_channel

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples/digits/job.yaml"
TEXT = ROOT / "examples/training/finetune-text.yaml"
TUNE = ROOT / "examples/digits/tune.yaml"
PARENT = "digits-mlp-13b4c6cd"


def sdk_model_channel(uri: str, name: str = "model") -> dict:
    """What the SageMaker Python SDK 2.x sends for `model_uri=uri` (Estimator and
    JumpStartEstimator): sagemaker/job.py `_Job._prepare_channel(..., content_type=
    "application/x-sagemaker-model", input_mode="File")` -> `_format_model_uri_input` ->
    `TrainingInput(uri, input_mode="File", distribution="FullyReplicated",
    content_type=...)` with TrainingInput's default s3_data_type "S3Prefix", appended
    after the input channels. Written out here; the SDK is not a dependency."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "application/x-sagemaker-model",
        "InputMode": "File",
    }


def _request(plan) -> dict:
    return json.loads(plan.sagemaker_request_json)


def test_a_framework_job_continues_from_a_previous_job() -> None:
    plan = compile_file(DIGITS, overrides=[f"training.model.from_job={PARENT}"])
    request = _request(plan)
    channels = request["InputDataConfig"]
    assert [c["ChannelName"] for c in channels] == ["train", "validation", "model"]
    artifact = f"s3://acme-ml-artifacts/jobs/{PARENT}/output/model.tar.gz"
    assert channels[-1] == sdk_model_channel(artifact)
    assert check_request(plan.sagemaker_operation, request) == []
    # The plan's provenance names the parent job.
    [origin] = [p for p in plan.provenance if p.source == f"job:{PARENT}"]
    assert origin.field_path == "sagemaker_request.InputDataConfig[2].DataSource.S3DataSource.S3Uri"
    assert origin.value.string_value == artifact
    assert PARENT in origin.reason
    # Continuing from another model is another request, so another job name.
    assert request["TrainingJobName"] != _request(compile_file(DIGITS))["TrainingJobName"]


def test_a_pretrained_model_fine_tunes_again_from_an_artifact_as_jumpstart_does() -> None:
    artifact = "s3://acme-ml/sentiment-bert-0a1b2c3d/output/model.tar.gz"
    plan = compile_file(TEXT, overrides=[f"training.model.from_artifact={artifact}"])
    request = _request(plan)
    # in place of the JumpStart spec's own weights (channel `model`), as model_uri does
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["model"] == sdk_model_channel(artifact)
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training", "model", "code"]
    [origin] = [p for p in plan.provenance if p.source == "rule:model.from_artifact"]
    assert origin.value.string_value == artifact


def test_the_model_channel_can_be_renamed_and_tuning_trials_get_it() -> None:
    plan = compile_file(
        TUNE,
        overrides=[
            f"tuning.training.model.from_job={PARENT}",
            "tuning.training.model.model_channel=pretrained",
        ],
    )
    definition = _request(plan)["TrainingJobDefinition"]
    assert definition["InputDataConfig"][-1] == sdk_model_channel(
        f"s3://acme-ml-artifacts/jobs/{PARENT}/output/model.tar.gz", "pretrained"
    )
    assert any(p.source == f"job:{PARENT}" for p in plan.provenance)


def _codes(spec: Path, *overrides: str) -> dict[str, str]:
    with pytest.raises(SpecError) as raised:
        compile_file(spec, overrides=list(overrides))
    return {d.code: d.message for d in raised.value.diagnostics}


def test_an_artifact_that_is_not_a_model_is_a_located_error() -> None:
    codes = _codes(DIGITS, "training.model.from_artifact=s3://acme-ml/jobs/x/output/model.pt")
    assert codes == {
        "model.from_artifact.form": "s3://acme-ml/jobs/x/output/model.pt is neither a "
        "model.tar.gz nor a folder prefix"
    }


def test_an_artifact_in_another_region_is_an_error_offline() -> None:
    uri = "s3://jumpstart-cache-prod-eu-west-1/models/bert/model.tar.gz"
    codes = _codes(TEXT, f"training.model.from_artifact={uri}")
    assert codes == {
        "model.start_region": "the model is in a bucket of eu-west-1, the job runs in us-east-1"
    }


def test_a_data_channel_of_the_same_name_is_an_error() -> None:
    codes = _codes(
        DIGITS,
        f"training.model.from_job={PARENT}",
        "training.model.model_channel=train",
    )
    assert "model.channel_taken" in codes


def test_a_start_without_a_model_kind_is_an_error(tmp_path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "training:\n  name: again\n  model:\n    from_job: digits-mlp-13b4c6cd\n"
        "  data: {train: s3://acme-b/train/}\n  compute: {instance_type: ml.m5.large}\n"
        "  region: us-east-1\n  role_arn: arn:aws:iam::111122223333:role/r\n"
        "  output: {path: s3://acme-b/out/}\n"
    )
    with pytest.raises(SpecError) as raised:
        compile_file(spec)
    [problem] = [d for d in raised.value.diagnostics if d.code == "model.start_needs_kind"]
    assert problem.field_path == "training.model"
    assert problem.location is not None and problem.location.line == 4  # the model's map


@pytest.mark.parametrize(
    "override",
    [
        "training.model.from_job=not_a_job!",
        "training.model.from_artifact=https://acme-b/model.tar.gz",
        "training.model.model_channel=a b",
    ],
)
def test_malformed_starts_are_rejected_by_validation(override) -> None:
    with pytest.raises(SpecError) as raised:
        compile_file(DIGITS, overrides=[override])
    paths = [d.field_path for d in raised.value.diagnostics]
    assert paths == [override.split("=")[0]]


def test_both_starts_at_once_are_a_oneof_error() -> None:
    with pytest.raises(SpecError) as raised:
        compile_file(
            DIGITS,
            overrides=[
                f"training.model.from_job={PARENT}",
                "training.model.from_artifact=s3://acme-b/m/model.tar.gz",
            ],
        )
    assert any(d.code == "spec.oneof" for d in raised.value.diagnostics)


@pytest.mark.parametrize(
    ("uri", "region"),
    [
        ("s3://jumpstart-cache-prod-us-west-2/x/model.tar.gz", "us-west-2"),
        ("s3://acme.ap-southeast-1.models/m.tar.gz", "ap-southeast-1"),
        ("s3://acme-ml-artifacts/jobs/x/output/model.tar.gz", ""),
        ("s3://us-east-1x/model.tar.gz", ""),
    ],
)
def test_bucket_region_reads_only_a_whole_region_name(uri, region) -> None:
    assert bucket_region(uri) == region


def test_the_model_channel_replaces_a_catalog_models_own_starting_weights() -> None:
    # As JumpStartEstimator does: `model_uri` given, it is the model channel.
    start = StartModel("model", "s3://acme-ml/parent/output/model.tar.gz", "parent")
    base = {"ChannelName": "model", "DataSource": {"S3DataSource": {"S3Uri": "s3://js/base/"}}}
    code = {"ChannelName": "code", "DataSource": {"S3DataSource": {"S3Uri": "s3://js/code/"}}}
    train = {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://d/t/"}}}
    assert with_model_channel([train, base, code], start) == [
        train,
        sdk_model_channel(start.uri),
        code,
    ]
    assert with_model_channel([train], start) == [train, sdk_model_channel(start.uri)]
