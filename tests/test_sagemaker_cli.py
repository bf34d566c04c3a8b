"""submit/describe/stop against moto's standalone server on loopback, plus botocore Stubber
for the exact requests and AWS's error answers."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from google.protobuf import json_format
from moto.server import ThreadedMotoServer
from trainspec._cli import cli
from trainspec.compiler import compile_file
from trainspec.trainer._sagemaker import (
    MAX_ATTEMPTS,
    AwsError,
    Clients,
    make_clients,
    stop,
    submit,
)

REPO = Path(__file__).resolve().parents[1]
JOB = str(REPO / "examples/digits/job.yaml")
TUNE = str(REPO / "examples/digits/tune.yaml")
BUCKET = "acme-ml-artifacts"  # examples/trainspec.defaults.yaml's output bucket


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials only: nothing from the developer's real AWS config leaks in."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(moto_url, aws_env):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_submit_describe_stop_a_training_job(moto_url, bucket) -> None:
    submitted = invoke("submit", JOB, "--set", "training.name=digits-a", "--endpoint-url", moto_url)
    assert submitted.exit_code == 0, submitted.output
    assert "submitted digits-a (CreateTrainingJob): arn:aws:sagemaker:us-east-1:" in (
        submitted.output
    )
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {
        "jobs/digits-a/source/sourcedir.tar.gz",
        "jobs/digits-a/input/train/digits.csv.gz",
        "jobs/digits-a/input/validation/digits.csv.gz",
    } <= keys
    archive = bucket.get_object(Bucket=BUCKET, Key="jobs/digits-a/source/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read())) as tar:
        assert "train.py" in tar.getnames()  # the entry point at the archive root

    described = invoke("describe", "digits-a", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert described.exit_code == 0, described.output
    assert "training job digits-a" in described.output and "status:" in described.output
    sent = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url)
    job = sent.describe_training_job(TrainingJobName="digits-a")
    assert job["HyperParameters"]["sagemaker_program"] == "train.py"
    assert job["ResourceConfig"]["InstanceCount"] == 1

    # moto's jobs complete at once, so stop reports that there is nothing to stop.
    stopped = invoke("stop", "digits-a", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert stopped.exit_code == 0, stopped.output
    assert "training job digits-a is Completed; nothing to stop" in stopped.output


def test_submit_and_describe_a_tuning_job_beside_its_plan(moto_url, bucket) -> None:
    submitted = invoke("submit", TUNE, "--set", "tuning.name=digits-t", "--endpoint-url", moto_url)
    assert submitted.exit_code == 0, submitted.output
    assert "(CreateHyperParameterTuningJob)" in submitted.output
    described = invoke("describe", "digits-t", "--spec", TUNE, "--endpoint-url", moto_url)
    assert described.exit_code == 0, described.output
    assert "tuning job digits-t" in described.output
    assert "tuning settings, the plan's beside SageMaker's:" in described.output
    assert '"MaxNumberOfTrainingJobs": 4' in described.output


def test_unknown_job_is_a_clear_error(moto_url, aws_env) -> None:
    result = invoke("describe", "no-such-job", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert result.exit_code == 1
    assert "no SageMaker training or tuning job named 'no-such-job'" in result.output
    assert "Traceback" not in result.output


def test_missing_credentials_is_a_clear_error(moto_url, aws_env, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke("submit", JOB, "--endpoint-url", moto_url)
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output and "Traceback" not in result.output


def test_missing_bucket_is_a_clear_error(moto_url, aws_env) -> None:
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
    assert "submitted digits-sub" in submitted.stdout
    described = subprocess.run(
        [*command, "describe", "digits-sub", "--json", "--endpoint-url", moto_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert described.returncode == 0, described.stderr
    assert '"TrainingJobName": "digits-sub"' in described.stdout


# --- Stubber: exact requests and AWS's error answers -------------------------------------


@pytest.fixture
def stubbed(moto_url, bucket):
    """A Stubber on SageMaker; S3 (the uploads) goes to moto."""
    clients = make_clients(region="us-east-1", endpoint_url=moto_url)
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sagemaker) as stub:
        yield stub, Clients(sagemaker=sagemaker, s3=clients.s3)
        stub.assert_no_pending_responses()


def _ints(value):
    # The plan keeps numbers as floats (protobuf Struct); SageMaker's integers are whole.
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def test_create_training_job_receives_exactly_the_planned_request(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(JOB)
    expected = _ints(json_format.MessageToDict(plan.sagemaker_request))
    assert expected["TrainingJobName"] == "digits-mlp"
    arn = "arn:aws:sagemaker:us-east-1:111122223333:training-job/digits-mlp"
    stub.add_response("create_training_job", {"TrainingJobArn": arn}, expected)
    result = submit(plan, clients)
    assert result.arn == arn and len(result.uploaded) == 3


def test_create_tuning_job_receives_exactly_the_planned_request(stubbed) -> None:
    stub, clients = stubbed
    plan = compile_file(TUNE)
    expected = _ints(json_format.MessageToDict(plan.sagemaker_request))
    arn = "arn:aws:sagemaker:us-east-1:111122223333:hyper-parameter-tuning-job/digits-tune"
    stub.add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn}, expected
    )
    assert submit(plan, clients).arn == arn


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ThrottlingException", 400, f"still failed after {MAX_ATTEMPTS} attempts"),
        ("ValidationException", 400, "SageMaker rejected CreateTrainingJob: bad role"),
        ("ResourceInUse", 400, "a SageMaker job named 'digits-mlp' already exists"),
        ("ResourceLimitExceeded", 400, "quota increase"),
    ],
)
def test_aws_errors_on_create_are_clear_messages(stubbed, code, status, message) -> None:
    stub, clients = stubbed
    stub.add_client_error(
        "create_training_job",
        service_error_code=code,
        service_message="bad role",
        http_status_code=status,
    )
    with pytest.raises(AwsError, match=message):
        submit(compile_file(JOB), clients)


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
