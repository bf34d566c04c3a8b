"""`submit --wait --logs` and `describe --follow` against moto's server on loopback.

moto runs no containers and finishes a job the moment it is created, so each test plays
SageMaker's part itself: a created job starts InProgress (as on SageMaker), and every pause
of the follower (its poll interval, or a backoff) moves the job one step along a script:
secondary-status transitions, CloudWatch log events of each host, the final status. The
follower itself polls the real moto server over HTTP, as it would poll AWS.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import boto3
import pytest
from click.testing import CliRunner
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker import models as sagemaker_models
from moto.server import ThreadedMotoServer
from trainspec._cli import cli
from trainspec.compiler import compile_file
from trainspec.trainer import _follow
from trainspec.trainer._sagemaker import job_name

from tests.test_sagemaker_cli import BUCKET, JOB, TUNE

REGION = "us-east-1"
GROUP = "/aws/sagemaker/TrainingJobs"
T0 = datetime.datetime(2026, 12, 6, 4, 0, 0, tzinfo=datetime.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto's server on a fixed loopback port, so a test can drop it and bring it back."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.server = None


@pytest.fixture
def moto(fake_aws_credentials, monkeypatch, caplog) -> Iterator[Moto]:
    caplog.set_level(logging.WARNING, logger="werkzeug")  # moto's access log
    server = Moto()
    server.start()
    boto3.client("s3", region_name=REGION, endpoint_url=server.url).create_bucket(Bucket=BUCKET)
    _jobs_start_in_progress(monkeypatch)
    yield server
    if server.server is not None:
        server.stop()


def _jobs_start_in_progress(monkeypatch) -> None:
    """SageMaker's jobs start InProgress; moto's are Completed at once (and replace the
    metric definitions with one of moto's own), so put back what SageMaker would hold."""
    training_init = sagemaker_models.FakeTrainingJob.__init__

    def training(self, **kwargs):
        algorithm = copy.deepcopy(kwargs["algorithm_specification"])
        training_init(self, **kwargs)
        self.algorithm_specification = algorithm
        self.training_job_status, self.secondary_status = "InProgress", "Starting"
        self.secondary_status_transitions = [
            {
                "Status": "Starting",
                "StartTime": T0,
                "StatusMessage": "Launching requested ML instances",
            }
        ]
        self.final_metric_data_list = []
        self.training_end_time = None

    tuning_init = sagemaker_models.HyperParameterTuningJob.__init__

    def tuning(self, *args, **kwargs):
        tuning_init(self, *args, **kwargs)
        self.hyper_parameter_tuning_job_status = "InProgress"
        self.training_job_status_counters = {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        }
        self.best_training_job = None
        self.last_modified_time = T0

    monkeypatch.setattr(sagemaker_models.FakeTrainingJob, "__init__", training)
    monkeypatch.setattr(sagemaker_models.HyperParameterTuningJob, "__init__", tuning)


def _backend():
    return get_backend("sagemaker")[DEFAULT_ACCOUNT_ID][REGION]


def _training_job(name: str):
    return _backend().training_jobs[name]


def _transition(job, status: str, message: str, minute: int) -> None:
    job.secondary_status = status
    job.secondary_status_transitions.append(
        {
            "Status": status,
            "StartTime": T0 + datetime.timedelta(minutes=minute),
            "StatusMessage": message,
        }
    )


class Logs:
    """Writes a job's log events to moto's CloudWatch Logs, as SageMaker's hosts would."""

    def __init__(self, url: str, job: str) -> None:
        self.client = boto3.client("logs", region_name=REGION, endpoint_url=url)
        self.job = job
        self.streams: set[str] = set()

    def write(self, host: str, second: int, *messages: str) -> None:
        stream = f"{self.job}/{host}-1796529600"
        if not self.streams:
            with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
                self.client.create_log_group(logGroupName=GROUP)
        if stream not in self.streams:
            self.client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
            self.streams.add(stream)
        base = int(T0.timestamp() * 1000) + second * 1000
        self.client.put_log_events(
            logGroupName=GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": base + i, "message": m} for i, m in enumerate(messages)],
        )


def _script(monkeypatch, steps: list[Callable[[], None]]) -> list[float]:
    """Each pause of the follower runs the next step; returns the pauses' lengths."""
    pauses: list[float] = []
    remaining = list(steps)

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        assert remaining, "the follower kept polling after the script's last step"
        remaining.pop(0)()

    monkeypatch.setattr(_follow, "_pause", pause)
    return pauses


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def follow(moto, name: str, *extra: str):
    """`trainspec describe NAME --follow` against moto, polling fast."""
    return invoke(
        "describe", name, "--follow", "--region", REGION, "--endpoint-url", moto.url,
        "--poll-interval", "0.05", *extra,
    )  # fmt: skip


METRICS = [
    "training.metrics=[{name: 'validation:accuracy', regex: 'val_acc=([0-9.]+)'}]",
]


def test_submit_wait_logs_shows_a_whole_job_and_exits_0(moto, monkeypatch) -> None:
    overrides = ["--set", "training.name=digits-follow", "--set", "training.compute.spot=true"]
    overrides += ["--set", "training.stopping.max_wait_seconds=7200", "--set", METRICS[0]]
    plan = compile_file(JOB, overrides=[o for o in overrides if o != "--set"])
    name = job_name(plan)
    logs = Logs(moto.url, name)

    def downloading() -> None:
        job = _training_job(name)
        _transition(job, "Downloading", "Downloading the training image", 2)
        logs.write("algo-1", 130, "bash: no job control in this shell", "epoch 1 loss=0.9")

    def training() -> None:
        job = _training_job(name)
        _transition(job, "Training", "Training image download completed", 3)
        # A second host starts later: its stream appears now, its lines interleave by time.
        logs.write("algo-2", 131, "algo-2 ready")
        logs.write("algo-1", 200, "epoch 2 val_acc=0.91")

    def uploading() -> None:
        job = _training_job(name)
        _transition(job, "Uploading", "Uploading generated training model", 5)
        logs.write("algo-2", 250, "algo-2 done")

    def completed() -> None:
        job = _training_job(name)
        _transition(job, "Completed", "Training job completed", 6)
        job.training_job_status = "Completed"
        job.training_time_in_seconds = 360
        job.billable_time_in_seconds = 108
        job.final_metric_data_list = [
            {"MetricName": "validation:accuracy", "Value": 0.91, "Timestamp": T0}
        ]
        logs.write("algo-1", 300, "saved model.tar.gz")

    pauses = _script(monkeypatch, [downloading, training, uploading, completed])
    result = invoke(
        "submit",
        JOB,
        *overrides,
        "--endpoint-url",
        moto.url,
        "--wait",
        "--logs",
        "--poll-interval",
        "0.05",
    )
    assert result.exit_code == 0, result.output
    assert pauses == [0.05] * 4
    body = result.output[result.output.index("submitted ") :]
    expected = [
        f"submitted {name} (CreateTrainingJob): arn:aws:sagemaker:us-east-1:",
        "2026-12-06 04:00:00 Starting: Launching requested ML instances",
        "status: InProgress",
        "2026-12-06 04:02:00 Downloading: Downloading the training image",
        "[algo-1] bash: no job control in this shell",
        "[algo-1] epoch 1 loss=0.9",
        "2026-12-06 04:03:00 Training: Training image download completed",
        "[algo-2] algo-2 ready",
        "[algo-1] epoch 2 val_acc=0.91",
        "metric validation:accuracy = 0.91 [algo-1]",
        "2026-12-06 04:05:00 Uploading: Uploading generated training model",
        "[algo-2] algo-2 done",
        "2026-12-06 04:06:00 Completed: Training job completed",
        "status: Completed",
        "[algo-1] saved model.tar.gz",
        f"Completed: training job {name}",
        "  training seconds: 360",
        "  billable seconds: 108",
        "  managed spot training savings: 70.0%",
        "  final validation:accuracy = 0.91",
        f"  model artifact:   s3://{BUCKET}/jobs/{name}/output/model.tar.gz",
    ]
    lines = [line for line in body.splitlines() if not line.startswith("uploaded ")]
    assert lines[0].startswith(expected[0])
    assert lines[1:] == expected[1:]


def test_describe_follow_of_a_failed_job_exits_1_with_the_reason(moto, monkeypatch) -> None:
    submitted = invoke(
        "submit", JOB, "--set", "training.name=digits-fail", "--endpoint-url", moto.url
    )
    assert submitted.exit_code == 0, submitted.output
    name = job_name(compile_file(JOB, overrides=["training.name=digits-fail"]))
    Logs(moto.url, name).write("algo-1", 10, "Traceback (most recent call last):", "OOM")

    def failed() -> None:
        job = _training_job(name)
        _transition(job, "Failed", "Training job failed", 1)
        job.training_job_status = "Failed"
        job.failure_reason = "AlgorithmError: ExecuteUserScriptError: exit code 1"

    _script(monkeypatch, [failed])
    result = follow(moto, name)
    assert result.exit_code == 1, result.output
    assert "[algo-1] Traceback (most recent call last):\n[algo-1] OOM\n" in result.output
    assert "  failure reason:   AlgorithmError: ExecuteUserScriptError: exit code 1" in (
        result.output
    )
    assert result.output.rstrip().endswith(
        f"error: training job {name} failed: AlgorithmError: ExecuteUserScriptError: exit code 1"
    )
    assert "Traceback" not in result.output.replace("[algo-1] Traceback", "")


def test_a_stopped_job_exits_4_and_no_logs_shows_metrics_from_sagemaker(moto, monkeypatch):
    submitted = invoke(
        "submit", JOB, "--set", "training.name=digits-stop", "--endpoint-url", moto.url
    )
    assert submitted.exit_code == 0, submitted.output
    name = job_name(compile_file(JOB, overrides=["training.name=digits-stop"]))
    Logs(moto.url, name).write("algo-1", 10, "a line that --no-logs hides")

    def metric() -> None:
        _training_job(name).final_metric_data_list = [
            {"MetricName": "validation:accuracy", "Value": 0.5, "Timestamp": T0}
        ]

    def stopped() -> None:
        job = _training_job(name)
        _transition(job, "Stopped", "Training job stopped by the user", 2)
        job.training_job_status = "Stopped"

    _script(monkeypatch, [metric, stopped])
    result = invoke(
        "describe",
        name,
        "--follow",
        "--no-logs",
        "--region",
        REGION,
        "--endpoint-url",
        moto.url,
        "--poll-interval",
        "0.05",
    )
    assert result.exit_code == _follow.EXIT_STOPPED == 5, result.output
    assert "a line that --no-logs hides" not in result.output
    assert "metric validation:accuracy = 0.5\n" in result.output
    assert f"training job {name} was stopped" in result.output


def test_a_dropped_connection_resumes_where_it_left_off(moto, monkeypatch) -> None:
    submitted = invoke(
        "submit", JOB, "--set", "training.name=digits-drop", "--endpoint-url", moto.url
    )
    assert submitted.exit_code == 0, submitted.output
    name = job_name(compile_file(JOB, overrides=["training.name=digits-drop"]))
    logs = Logs(moto.url, name)
    logs.write("algo-1", 1, "line 1", "line 2")

    def drop() -> None:
        logs.write("algo-1", 2, "line 3")
        moto.stop()  # the next poll finds nobody listening

    def still_down() -> None:
        pass

    def back() -> None:
        moto.start()  # moto keeps its state in this process: the job and its log are there
        logs.write("algo-1", 3, "line 4")

    def finish() -> None:
        job = _training_job(name)
        job.training_job_status = "Completed"
        logs.write("algo-1", 4, "line 5")

    pauses = _script(monkeypatch, [drop, still_down, back, finish])
    result = follow(moto, name)
    assert result.exit_code == 0, result.output
    printed = [line for line in result.output.splitlines() if line.startswith("[algo-1]")]
    assert printed == [f"[algo-1] line {i}" for i in range(1, 6)]  # none lost, none twice
    retries = re.findall(r"\(retrying in ([0-9.]+)s: connection lost \(\w+\)\)", result.output)
    assert retries == ["0.05", "0.1"]  # the backoff doubles
    assert "(reconnected; resuming where it left off)" in result.output
    assert pauses == [0.05, 0.05, 0.1, 0.05]


def test_ctrl_c_detaches_and_leaves_the_job_running(moto, monkeypatch) -> None:
    submitted = invoke(
        "submit", JOB, "--set", "training.name=digits-int", "--endpoint-url", moto.url
    )
    assert submitted.exit_code == 0, submitted.output
    name = job_name(compile_file(JOB, overrides=["training.name=digits-int"]))

    def interrupt() -> None:
        raise KeyboardInterrupt

    stopped: list[str] = []
    monkeypatch.setattr(
        "trainspec.trainer._sagemaker.stop",
        lambda n, c: stopped.append(n) or ("training", "InProgress"),
    )
    args = ["describe", name, "--follow", "--region", REGION, "--endpoint-url", moto.url]
    _script(monkeypatch, [interrupt])
    result = invoke(*args, "--poll-interval", "0.05")
    assert result.exit_code == 130, result.output
    assert f"detached from training job {name}; it keeps running" in result.output
    assert f"trainspec describe {name} --follow" in result.output
    assert stopped == [] and _training_job(name).training_job_status == "InProgress"

    _script(monkeypatch, [interrupt])
    result = invoke(*args, "--poll-interval", "0.05", "--stop-on-interrupt")
    assert result.exit_code == 130, result.output
    assert stopped == [name]
    assert f"interrupted: stopping training job {name} (it was InProgress)" in result.output


def test_submit_wait_follows_a_tuning_job(moto, monkeypatch) -> None:
    name = job_name(compile_file(TUNE, overrides=["tuning.name=digits-tw"]))

    def first_trials() -> None:
        job = _backend().hyper_parameter_tuning_jobs[name]
        job.training_job_status_counters.update(InProgress=2)
        job.last_modified_time = T0 + datetime.timedelta(minutes=1)

    def best() -> None:
        job = _backend().hyper_parameter_tuning_jobs[name]
        job.training_job_status_counters.update(InProgress=1, Completed=1, Stopped=1)
        job.best_training_job = {
            "TrainingJobName": f"{name}-001-0a1b2c3d",
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "MetricName": "validation:accuracy",
                "Value": 0.93,
            },
        }
        job.last_modified_time = T0 + datetime.timedelta(minutes=7)

    def done() -> None:
        job = _backend().hyper_parameter_tuning_jobs[name]
        job.training_job_status_counters.update(InProgress=0, Completed=2)
        job.hyper_parameter_tuning_job_status = "Completed"

    _script(monkeypatch, [first_trials, best, done])
    result = invoke(
        "submit",
        TUNE,
        "--set",
        "tuning.name=digits-tw",
        "--endpoint-url",
        moto.url,
        "--wait",
        "--logs",
        "--poll-interval",
        "0.05",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2026-12-06 04:01:00 trials: 0 completed, 2 running, 0 stopped" in out
    assert "2026-12-06 04:07:00 trials: 1 completed, 1 running, 1 stopped" in out
    assert f"2026-12-06 04:07:00 best so far: {name}-001-0a1b2c3d validation:accuracy = 0.93" in out
    assert f"Completed: tuning job {name}" in out
    assert "(a tuning job has no log of its own: each trial's is followed with" in out
    assert "tuning settings, the plan's beside SageMaker's:" in out
    assert out.index("2 running") < out.index("best so far") < out.index("Completed: tuning")


def test_ctrl_c_in_a_real_process_detaches_without_a_traceback(moto) -> None:
    submitted = invoke(
        "submit", JOB, "--set", "training.name=digits-sig", "--endpoint-url", moto.url
    )
    assert submitted.exit_code == 0, submitted.output
    name = job_name(compile_file(JOB, overrides=["training.name=digits-sig"]))
    follower = subprocess.Popen(
        [sys.executable, "-m", "trainspec", "describe", name, "--follow", "--region", REGION]
        + ["--endpoint-url", moto.url, "--poll-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The job never ends (nothing moves it on): the follower polls until interrupted.
        first = [follower.stdout.readline() for _ in range(2)]
        assert first[1] == "status: InProgress\n", first
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 130, err
    assert f"detached from training job {name}; it keeps running" in err
    assert "Traceback" not in err + out
