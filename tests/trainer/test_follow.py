"""The follower's parts on hand-built answers: the log tail's resumption, backoff on
throttling, give-up, and the summary. (tests/test_follow_jobs.py runs it against moto.)"""

from __future__ import annotations

import datetime

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from trainspec.trainer._follow import Outcome, Pace, follow_training
from trainspec.trainer._logs import LogTail, host_of
from trainspec.trainer._sagemaker import AwsError, Clients

NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)


class FakeLogs:
    """CloudWatch Logs' paging: a token is the index of the next event of a stream."""

    def __init__(self, streams: dict[str, list[tuple[int, str]]]) -> None:
        self.streams = streams
        self.fail_next: set[str] = set()

    def describe_log_streams(self, **kwargs):
        prefix = kwargs["logStreamNamePrefix"]
        return {"logStreams": [{"logStreamName": s} for s in self.streams if s.startswith(prefix)]}

    def get_log_events(self, **kwargs):
        stream = kwargs["logStreamName"]
        if stream in self.fail_next:
            self.fail_next.discard(stream)
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        start = int(kwargs.get("nextToken", "f/0")[2:])
        events = self.streams[stream][start : start + 2]  # pages of two
        return {
            "events": [{"timestamp": t, "message": m} for t, m in events],
            "nextForwardToken": f"f/{start + len(events)}",
        }


def test_log_tail_interleaves_hosts_and_resumes_after_a_failed_read() -> None:
    logs = FakeLogs(
        {
            "job/algo-1-1796529600": [(1, "a1"), (3, "a3"), (5, "a5")],
            "job/algo-2-1796529600": [(2, "b2"), (4, "b4")],
            "other-job/algo-1-1796529600": [(0, "not this job's")],
        }
    )
    tail = LogTail(logs, "job")
    logs.fail_next.add("job/algo-2-1796529600")  # algo-1 was read, then the connection broke
    with pytest.raises(EndpointConnectionError):
        tail.poll()
    lines = tail.poll()
    assert [(line.host, line.message) for line in lines] == [
        ("algo-1", "a1"),
        ("algo-2", "b2"),
        ("algo-1", "a3"),
        ("algo-2", "b4"),
        ("algo-1", "a5"),
    ]
    assert tail.poll() == []
    logs.streams["job/algo-1-1796529600"].append((6, "a6"))
    logs.streams["job/algo-3-1796529601"] = [(7, "c7")]  # a host that started later
    assert [(line.host, line.message) for line in tail.poll()] == [
        ("algo-1", "a6"),
        ("algo-3", "c7"),
    ]


def test_host_of_a_stream_name() -> None:
    assert host_of("job-1a2b/algo-12-1796529600", "job-1a2b") == "algo-12"
    assert host_of("job/algo-1", "job") == "algo-1"


def _training(status: str, **extra) -> dict:
    return {
        "TrainingJobName": "digits",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:training-job/digits",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/digits/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "CreationTime": NOW,
        **extra,
    }


@pytest.fixture
def stubbed():
    sagemaker = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(sagemaker) as stub:
        yield stub, Clients(sagemaker=sagemaker, s3=None)
        stub.assert_no_pending_responses()


def test_throttling_is_retried_with_doubling_backoff(stubbed) -> None:
    stub, clients = stubbed
    for _ in range(2):
        stub.add_client_error("describe_training_job", "ThrottlingException", http_status_code=400)
    stub.add_client_error("describe_training_job", "InternalFailure", http_status_code=500)
    stub.add_response("describe_training_job", _training("Completed", BillableTimeInSeconds=7))
    printed: list[str] = []
    pauses: list[float] = []
    outcome = follow_training(
        "digits",
        clients,
        echo=printed.append,
        logs=False,
        pace=Pace(poll_s=5, backoff_s=1, backoff_max_s=3),
        sleep=pauses.append,
    )
    assert outcome == Outcome("digits", "Completed") and outcome.exit_code == 0
    assert pauses == [1, 2, 3]  # doubling, capped at backoff_max_s
    assert printed[:4] == [
        "(retrying in 1s: DescribeTrainingJob ThrottlingException)",
        "(retrying in 2s: DescribeTrainingJob ThrottlingException)",
        "(retrying in 3s: DescribeTrainingJob InternalFailure)",
        "(reconnected; resuming where it left off)",
    ]
    assert "  billable seconds: 7" in printed


def test_following_gives_up_after_max_failures_with_a_clear_error(stubbed) -> None:
    stub, clients = stubbed
    for _ in range(3):
        stub.add_client_error("describe_training_job", "ThrottlingException", http_status_code=400)
    with pytest.raises(AwsError, match="gave up following after 3 failed attempts: AWS throttled"):
        follow_training(
            "digits",
            clients,
            echo=lambda line: None,
            logs=False,
            pace=Pace(max_failures=3),
            sleep=lambda s: None,
        )


def test_an_unknown_job_is_not_retried(stubbed) -> None:
    stub, clients = stubbed
    stub.add_client_error(
        "describe_training_job", "ValidationException", "Requested resource not found."
    )
    with pytest.raises(AwsError, match="SageMaker rejected DescribeTrainingJob"):
        follow_training("digits", clients, echo=lambda line: None, logs=False, sleep=None)


def test_outcomes_exit_codes() -> None:
    assert [Outcome("j", s).exit_code for s in ("Completed", "Failed", "Stopped")] == [0, 1, 5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_s": 0}, "Pace.poll_s must be positive, got 0"),
        ({"max_failures": 0}, "Pace.max_failures must be at least 1, got 0"),
    ],
)
def test_pace_checks_its_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Pace(**kwargs)
