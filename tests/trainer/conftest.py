"""Fixtures of the tuner's tests: a hand-built tuning plan, and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from trainspec.v1 import plan_pb2

# score = 1 - (x - 0.3)^2, printed once per epoch; every run is logged to CALLS_FILE.
SCRIPT = """
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("-x", type=float, default=0.5)  # SageMaker passes one-letter names as -x
parser.add_argument("--kind", default="a")
parser.add_argument("--epochs", type=int, default=3)
args, _ = parser.parse_known_args()
started = time.time()
worker = os.environ.get("WORKER", "")
with open(os.environ["CALLS_FILE"], "a") as calls:
    calls.write(f"{os.environ['TRAINING_JOB']} {args.x} {args.kind} {worker}\\n")
bonus = {"a": 0.0, "b": 0.05, "c": 0.1}[args.kind]
for epoch in range(1, args.epochs + 1):
    score = (1 - (args.x - 0.3) ** 2 + bonus) * epoch / args.epochs
    if os.environ.get("SILENT") != "1":
        print(f"epoch={epoch} score={score:.6f}", flush=True)
    time.sleep(float(os.environ.get("EPOCH_SECONDS", "0")))
if os.environ.get("SPANS_FILE"):  # when each trial ran, to count trials running at once
    with open(os.environ["SPANS_FILE"], "a") as spans:
        spans.write(f"{started} {time.time()}\\n")
"""


def _make_plan(tmp_path: Path, config: dict, *, env: dict | None = None) -> plan_pb2.Plan:
    """A hand-built CreateHyperParameterTuningJob plan shaped like the compiler's."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(SCRIPT)
    plan = plan_pb2.Plan(sagemaker_operation="CreateHyperParameterTuningJob")
    json_format.ParseDict(
        {
            "tuning": {
                "name": "tune-a",
                "training": {
                    "name": "t",
                    "model": {
                        "framework": {
                            "name": "pytorch",
                            "entry_point": "train.py",
                            "source_dir": str(source),
                        }
                    },
                },
            }
        },
        plan.job,
    )
    base = {
        "Strategy": "Random",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"}
            ]
        },
        "RandomSeed": 1,
    }
    base.update(config)
    plan.sagemaker_request.update(
        {
            "HyperParameterTuningJobName": "tune-a",
            "HyperParameterTuningJobConfig": base,
            "TrainingJobDefinition": {
                "StaticHyperParameters": {"epochs": "3", "sagemaker_program": "train.py"},
                "AlgorithmSpecification": {
                    "TrainingImage": "img",
                    "TrainingInputMode": "File",
                    "MetricDefinitions": [{"Name": "score", "Regex": r"score=([0-9.]+)"}],
                },
                "Environment": {"CALLS_FILE": str(tmp_path / "calls.txt"), **(env or {})},
                "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                },
            },
        }
    )
    return plan


@pytest.fixture
def make_plan() -> Callable[..., plan_pb2.Plan]:
    """make_plan(tmp_path, config, env=...): a CreateHyperParameterTuningJob plan whose
    trials run SCRIPT; `config` replaces HyperParameterTuningJobConfig keys."""
    return _make_plan


# --- a real PostgreSQL server ----------------------------------------------------------------
# `.ci/run` starts one (`.ci/postgres start DIR`) and exports its URL here. Without it the
# PostgreSQL tests skip, except under CI, where a missing server is a failure.
POSTGRES_ENV = "TRAINSPEC_TEST_POSTGRES"


def _no_postgres(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the PostgreSQL tests, but {reason}", pytrace=False)
    pytest.skip(f"{reason} (start one with .ci/postgres and set {POSTGRES_ENV})")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the test server (a superuser with a password)."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        _no_postgres(f"{POSTGRES_ENV} is not set")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5):
            pass
    except Exception as exc:  # any failure to reach it: the server is not there
        _no_postgres(f"PostgreSQL at {POSTGRES_ENV} is not reachable ({type(exc).__name__})")
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"tune_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_password(url: str) -> str:
    from trainspec.trainer._storage_url import password

    secret = password(url)
    assert secret, "the test server must have a password to keep out of output"
    return secret


@pytest.fixture
def trial_script() -> str:
    """SCRIPT: a trial that prints `score=` each epoch and logs each run to $CALLS_FILE."""
    return SCRIPT
