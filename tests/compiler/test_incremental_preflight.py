"""`compile --preflight` for incremental training, against moto's server on loopback: the
parent job exists, completed and wrote the artifact the plan names; an artifact is there,
in the job's region."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from trainspec.compiler import CompileOptions, SpecError, compile_file

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples/digits/job.yaml"
ROLE = "arn:aws:iam::111122223333:role/trainspec"


@pytest.fixture
def aws(moto_url, fake_aws_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # botocore's endpoint for every service
    return moto_url


def _parent(name: str, output: str) -> None:
    """A finished training job (moto completes jobs when they are created)."""
    boto3.client("sagemaker", region_name="us-east-1").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "img:1", "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": output},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )


def _preflight(*overrides: str):
    return compile_file(DIGITS, overrides=list(overrides), options=CompileOptions(preflight=True))


def _problems(*overrides: str) -> dict[str, str]:
    with pytest.raises(SpecError) as raised:
        _preflight(*overrides)
    return {d.code: f"{d.field_path}: {d.message} ({d.hint})" for d in raised.value.diagnostics}


def test_a_parent_job_that_wrote_the_planned_artifact_passes(aws) -> None:
    _parent("digits-parent-0a1b2c3d", "s3://acme-ml-artifacts/jobs/")
    plan = _preflight("training.model.from_job=digits-parent-0a1b2c3d")
    assert any(p.source == "job:digits-parent-0a1b2c3d" for p in plan.provenance)


def test_a_parent_job_with_another_output_path_names_its_real_artifact(aws) -> None:
    _parent("digits-elsewhere-0a1b2c3d", "s3://other-bucket/out/")
    assert _problems("training.model.from_job=digits-elsewhere-0a1b2c3d") == {
        "preflight.parent_artifact": "training.model.from_job: training job "
        "digits-elsewhere-0a1b2c3d wrote its model to "
        "s3://other-bucket/out/digits-elsewhere-0a1b2c3d/output/model.tar.gz, not "
        "s3://acme-ml-artifacts/jobs/digits-elsewhere-0a1b2c3d/output/model.tar.gz (it had "
        "another output path) (set model.from_artifact: "
        "s3://other-bucket/out/digits-elsewhere-0a1b2c3d/output/model.tar.gz)"
    }


def test_a_missing_parent_job_is_an_error(aws) -> None:
    problems = _problems("training.model.from_job=no-such-job-0a1b2c3d")
    assert list(problems) == ["preflight.parent_missing"]
    assert (
        "no training job no-such-job-0a1b2c3d in us-east-1" in problems["preflight.parent_missing"]
    )


def test_an_artifact_is_looked_for_in_its_bucket_and_region(aws) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="acme-models-here")
    s3.put_object(Bucket="acme-models-here", Key="m/output/model.tar.gz", Body=b"x")
    _preflight("training.model.from_artifact=s3://acme-models-here/m/output/model.tar.gz")

    missing = _problems("training.model.from_artifact=s3://acme-models-here/n/output/model.tar.gz")
    assert missing["preflight.no_model"].startswith("training.model.from_artifact: no model at")

    abroad = boto3.client("s3", region_name="eu-central-1")
    abroad.create_bucket(
        Bucket="acme-models-abroad",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    abroad.put_object(Bucket="acme-models-abroad", Key="model.tar.gz", Body=b"x")
    problems = _problems("training.model.from_artifact=s3://acme-models-abroad/model.tar.gz")
    assert problems == {
        "preflight.bucket_region": "training.model.from_artifact: bucket acme-models-abroad is "
        "in eu-central-1, the job runs in us-east-1 (SageMaker reads input channels from the "
        "job's region only)"
    }
