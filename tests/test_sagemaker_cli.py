"""submit/describe/stop against moto's standalone server on loopback, plus botocore Stubber
for the exact requests and AWS's error answers."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from trainspec._cli import cli
from trainspec.compiler import compile_file
from trainspec.trainer._sagemaker import (
    MAX_ATTEMPTS,
    AwsError,
    Clients,
    job_name,
    make_clients,
    stop,
    submit,
)

REPO = Path(__file__).resolve().parents[1]
JOB = str(REPO / "examples/digits/job.yaml")
TUNE = str(REPO / "examples/digits/tune.yaml")
BUCKET = "acme-ml-artifacts"  # examples/trainspec.defaults.yaml's output bucket


@pytest.fixture
def bucket(moto_url, fake_aws_credentials):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def planned_name(spec: str, *overrides: str) -> str:
    """The SageMaker job name the plan gives: the spec's name and a digest of the request."""
    name = job_name(compile_file(spec, overrides=overrides))
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", name), name
    return name


def test_submit_describe_stop_a_training_job(moto_url, bucket) -> None:
    name = planned_name(JOB, "training.name=digits-a")
    submitted = invoke("submit", JOB, "--set", "training.name=digits-a", "--endpoint-url", moto_url)
    assert submitted.exit_code == 0, submitted.output
    assert f"submitted {name} (CreateTrainingJob): arn:aws:sagemaker:us-east-1:" in (
        submitted.output
    )
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {
        f"jobs/{name}/source/sourcedir.tar.gz",
        f"jobs/{name}/input/train/digits.csv.gz",
        f"jobs/{name}/input/validation/digits.csv.gz",
    } <= keys
    archive = bucket.get_object(Bucket=BUCKET, Key=f"jobs/{name}/source/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read())) as tar:
        assert "train.py" in tar.getnames()  # the entry point at the archive root

    described = invoke("describe", name, "--region", "us-east-1", "--endpoint-url", moto_url)
    assert described.exit_code == 0, described.output
    assert f"training job {name}" in described.output and "status:" in described.output
    sent = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url)
    job = sent.describe_training_job(TrainingJobName=name)
    assert job["HyperParameters"]["sagemaker_program"] == "train.py"
    assert job["ResourceConfig"]["InstanceCount"] == 1

    # moto's jobs complete at once, so stop reports that there is nothing to stop.
    stopped = invoke("stop", name, "--region", "us-east-1", "--endpoint-url", moto_url)
    assert stopped.exit_code == 0, stopped.output
    assert f"training job {name} is Completed; nothing to stop" in stopped.output


def test_resubmitting_an_unchanged_spec_reports_its_job(moto_url, bucket) -> None:
    args = ("submit", JOB, "--set", "training.name=digits-again", "--endpoint-url", moto_url)
    name = planned_name(JOB, "training.name=digits-again")
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert f"submitted {name} (CreateTrainingJob)" in first.output
    # The second submit must neither create a job nor overwrite the first one's inputs.
    bucket.delete_object(Bucket=BUCKET, Key=f"jobs/{name}/source/sourcedir.tar.gz")
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert f"already submitted: {name} (CreateTrainingJob) is Completed: arn:aws:sagemaker:" in (
        second.output
    )
    assert "uploaded" not in second.output
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"jobs/{name}/source/sourcedir.tar.gz" not in keys

    # A changed plan is another job, with a name of its own.
    changed = invoke(*args, "--set", "training.hyperparameters.epochs=6")
    assert changed.exit_code == 0, changed.output
    other = planned_name(JOB, "training.name=digits-again", "training.hyperparameters.epochs=6")
    assert other != name
    assert f"submitted {other} (CreateTrainingJob)" in changed.output
    sent = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url)
    names = {j["TrainingJobName"] for j in sent.list_training_jobs()["TrainingJobSummaries"]}
    assert {name, other} <= names


def test_resubmitting_a_tuning_spec_reports_its_job(moto_url, bucket) -> None:
    args = ("submit", TUNE, "--set", "tuning.name=digits-t2", "--endpoint-url", moto_url)
    name = planned_name(TUNE, "tuning.name=digits-t2")
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert f"already submitted: {name} (CreateHyperParameterTuningJob)" in again.output


def test_submit_and_describe_a_tuning_job_beside_its_plan(moto_url, bucket) -> None:
    submitted = invoke("submit", TUNE, "--set", "tuning.name=digits-t", "--endpoint-url", moto_url)
    assert submitted.exit_code == 0, submitted.output
    assert "(CreateHyperParameterTuningJob)" in submitted.output
    name = planned_name(TUNE, "tuning.name=digits-t")
    described = invoke("describe", name, "--spec", TUNE, "--endpoint-url", moto_url)
    assert described.exit_code == 0, described.output
    assert f"tuning job {name}" in described.output
    assert "tuning settings, the plan's beside SageMaker's:" in described.output
    assert '"MaxNumberOfTrainingJobs": 4' in described.output


def test_unknown_job_is_a_clear_error(moto_url, fake_aws_credentials) -> None:
    result = invoke("describe", "no-such-job", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert result.exit_code == 1
    assert "no SageMaker training or tuning job named 'no-such-job'" in result.output
    assert "Traceback" not in result.output


def test_missing_credentials_is_a_clear_error(moto_url, fake_aws_credentials, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke("submit", JOB, "--endpoint-url", moto_url)
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output and "Traceback" not in result.output


def test_missing_bucket_is_a_clear_error(moto_url, fake_aws_credentials) -> None:
    result = invoke(
        "submit",
        JOB,
        "--set",
        "training.output.path=s3://no-such-bucket-x/jobs/",
        "--endpoint-url",
        moto_url,
    )
    assert result.exit_code == 1
    assert "the S3 bucket does not exist" in result.output


def test_submit_describe_as_real_subprocesses(moto_url, bucket, tmp_path) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    command = [sys.executable, "-m", "trainspec"]
    submitted = subprocess.run(
        [*command, "submit", JOB, "--set", "training.name=digits-sub", "--endpoint-url", moto_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert submitted.returncode == 0, submitted.stderr
    name = planned_name(JOB, "training.name=digits-sub")
    assert f"submitted {name}" in submitted.stdout
    described = subprocess.run(
        [*command, "describe", name, "--json", "--endpoint-url", moto_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert described.returncode == 0, described.stderr
    assert f'"TrainingJobName": "{name}"' in described.stdout


# --- Stubber: exact requests and AWS's error answers -------------------------------------


def _no_job(stub, operation: str = "describe_training_job") -> None:
    """SageMaker's answer to describing a job that does not exist (submit asks first)."""
    if operation == "describe_training_job":
        stub.add_client_error(
            operation,
            service_error_code="ValidationException",
            service_message="Requested resource not found.",
        )
    else:
        stub.add_client_error(operation, service_error_code="ResourceNotFound")


@pytest.fixture
def stubbed(moto_url, bucket):
    """A Stubber on SageMaker; S3 (the uploads) goes to moto."""
    clients = make_clients(region="us-east-1", endpoint_url=moto_url)
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sagemaker) as stub:
        yield stub, Clients(sagemaker=sagemaker, s3=clients.s3)
        stub.assert_no_pending_responses()


def test_create_training_job_receives_exactly_the_planned_request(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(JOB)
    expected = json.loads(plan.sagemaker_request_json)  # as `compile` prints it
    assert expected["TrainingJobName"] == job_name(plan)
    assert expected["ResourceConfig"]["InstanceCount"] == 1
    arn = f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{job_name(plan)}"
    _no_job(stub)
    stub.add_response("create_training_job", {"TrainingJobArn": arn}, expected)
    result = submit(plan, clients, REPO)
    assert result.arn == arn and len(result.uploaded) == 3 and not result.existing


def test_create_tuning_job_receives_exactly_the_planned_request(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(TUNE)
    expected = json.loads(plan.sagemaker_request_json)
    arn = "arn:aws:sagemaker:us-east-1:111122223333:hyper-parameter-tuning-job/digits-tune"
    _no_job(stub, "describe_hyper_parameter_tuning_job")
    stub.add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn}, expected
    )
    assert submit(plan, clients, REPO).arn == arn


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ThrottlingException", 400, f"still failed after {MAX_ATTEMPTS} attempts"),
        ("ValidationException", 400, "SageMaker rejected CreateTrainingJob: bad role"),
        ("ResourceInUse", 400, "a SageMaker job named 'digits-mlp-[0-9a-f]{8}' already exists"),
        ("ResourceLimitExceeded", 400, "quota increase"),
    ],
)
def test_aws_errors_on_create_are_clear_messages(stubbed, code, status, message) -> None:
    stub, clients = stubbed
    _no_job(stub)
    stub.add_client_error(
        "create_training_job",
        service_error_code=code,
        service_message="bad role",
        http_status_code=status,
    )
    if code == "ResourceInUse":  # then it looks again: gone by now, so the error stands
        _no_job(stub)
    with pytest.raises(AwsError, match=message):
        submit(compile_file(JOB), clients, REPO)


def test_stop_stops_a_running_training_job(stubbed) -> None:
    stub, clients = stubbed
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": "digits-mlp",
            "TrainingJobArn": "arn:aws:sagemaker:x",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m"},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Training",
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "CreationTime": now,
        },
        {"TrainingJobName": "digits-mlp"},
    )
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "digits-mlp"})
    assert stop("digits-mlp", clients) == ("training", "InProgress")


def test_stop_falls_back_to_a_running_tuning_job(stubbed) -> None:
    stub, clients = stubbed
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    stub.add_client_error(
        "describe_training_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
    )
    stub.add_response(
        "describe_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobName": "digits-tune",
            "HyperParameterTuningJobArn": "arn:x",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            },
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now,
            "TrainingJobStatusCounters": {},
            "ObjectiveStatusCounters": {},
        },
        {"HyperParameterTuningJobName": "digits-tune"},
    )
    stub.add_response(
        "stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": "digits-tune"}
    )
    assert stop("digits-tune", clients) == ("tuning", "InProgress")


def test_clients_retry_in_standard_mode() -> None:
    clients = make_clients(region="us-east-1")
    retries = clients.sagemaker.meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}


def test_submit_without_describe_permission_still_creates(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(JOB)
    stub.add_client_error(
        "describe_training_job", service_error_code="AccessDeniedException", http_status_code=400
    )
    arn = f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{job_name(plan)}"
    stub.add_response(
        "create_training_job", {"TrainingJobArn": arn}, json.loads(plan.sagemaker_request_json)
    )
    assert submit(plan, clients, REPO).arn == arn


def test_submit_of_an_existing_job_describes_it_and_creates_nothing(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(JOB)
    name = job_name(plan)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{name}",
            "ModelArtifacts": {"S3ModelArtifacts": plan.model_artifact_uri},
            "TrainingJobStatus": "Failed",
            "SecondaryStatus": "Failed",
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "CreationTime": now,
        },
        {"TrainingJobName": name},
    )
    result = submit(plan, clients, REPO)  # the Stubber fails on any call not queued above
    assert (result.existing, result.status, result.uploaded) == (True, "Failed", ())
