"""A local run's entry point sees what SageMaker's training toolkit would give it.

The probe script records its argv and every SM_* variable; the toolkit itself
(`sagemaker_training.environment.Environment()`, the package inside SageMaker's framework
containers) then reads the same job folder (SAGEMAKER_BASE_DIR) in a fresh process, and
the two must be equal, variable by variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format
from trainspec.trainer._local_run import run_training, training_run_from_plan
from trainspec.v1 import plan_pb2

PROBE = """
import json, os, sys
seen = {"argv": sys.argv, "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
        "others": {k: os.environ.get(k) for k in
                   ("TRAINING_JOB_NAME", "SAGEMAKER_JOB_NAME", "CURRENT_HOST", "SAGEMAKER_REGION")}}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as out:
    json.dump(seen, out)
"""

# The toolkit in a process of its own: it reads SAGEMAKER_BASE_DIR when it is imported.
TOOLKIT = """
import json
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"env": env.to_env_vars(), "args": env.to_cmd_args()}))
"""

HYPERPARAMETERS = {
    "x": "3",  # one letter: -x
    "use-amp": "true",  # a hyphen, a JSON boolean
    "flag": "True",  # not JSON: stays a string
    "lr": "1e-3",  # a float written as YAML would not: the toolkit prints 0.001
    "momentum": "0.90",
    "empty": "",
    "layers": "[64, 32]",
    "opts": '{"b": 2, "a": "z"}',  # a mapping: a=z,b=2
    "name": '"quoted"',
    "sagemaker_program": "probe.py",
    "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
    "sagemaker_region": "eu-west-1",
    "sagemaker_container_log_level": "20",
    "sagemaker_torch_distributed_enabled": "false",
    "_tuning_objective_metric": "validation:accuracy",
}


def probe_plan(tmp_path: Path, **request) -> plan_pb2.Plan:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "probe.py").write_text(PROBE)
    data = tmp_path / "train"
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("1,2\n")
    plan = plan_pb2.Plan(sagemaker_operation="CreateTrainingJob")
    framework = {"name": "pytorch", "entry_point": "probe.py", "source_dir": str(source)}
    json_format.ParseDict(
        {
            "training": {
                "name": "parity",
                "model": {"framework": framework},
                "data": {"train": {"uri": str(data)}},
            }
        },
        plan.job,
    )
    plan.sagemaker_request.update(
        {
            "TrainingJobName": "parity",
            "HyperParameters": HYPERPARAMETERS,
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "ContentType": "text/csv",
                    "DataSource": {"S3DataSource": {"S3Uri": "s3://bucket/train/"}},
                }
            ],
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
            **request,
        }
    )
    return plan


def toolkit_view(job_dir: Path) -> dict:
    if not os.environ.get("CI"):  # CI installs the dev extra: missing there is a failure
        pytest.importorskip(
            "sagemaker_training",
            reason="sagemaker-training, the reference, is in the dev extra: pip install '.[dev]'",
        )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "CURRENT_"))
    }
    env.update(SAGEMAKER_BASE_DIR=str(job_dir), TRAINING_JOB_NAME="parity")
    out = subprocess.run(
        [sys.executable, "-c", TOOLKIT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_probe(tmp_path: Path, plan: plan_pb2.Plan, host_dir: str = "") -> tuple[dict, Path]:
    root = tmp_path / "runs"
    result = run_training(training_run_from_plan(plan), root, echo=lambda _line: None)
    assert result.status == "Completed", result.message
    job_dir = result.layout.job_dir if not host_dir else root / ".hosts" / "parity" / host_dir
    return json.loads((job_dir / "output" / "data" / "seen.json").read_text()), job_dir


def test_argv_and_environment_equal_the_toolkit(tmp_path) -> None:
    seen, job_dir = run_probe(tmp_path, probe_plan(tmp_path))
    expected = toolkit_view(job_dir)
    assert seen["argv"][1:] == expected["args"]
    assert seen["argv"][1:3] == ["--empty", ""] and "-x" in seen["argv"]
    assert "--use-amp" in seen["argv"] and "True" in seen["argv"]  # "true" -> True
    assert seen["env"].keys() == expected["env"].keys()
    for key, value in expected["env"].items():
        if key in ("SM_TRAINING_ENV",):
            continue
        assert seen["env"][key] == value, key
    ours, theirs = (json.loads(e["env"]["SM_TRAINING_ENV"]) for e in (seen, expected))
    assert ours == theirs
    assert seen["env"]["SM_HP_USE-AMP"] == "true"
    assert seen["env"]["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_torch_distributed_enabled":false}'
    assert (
        "SM_CHECKPOINT_DIR" not in seen["env"]
        and "SM_HP__TUNING_OBJECTIVE_METRIC" not in seen["env"]
    )
    assert seen["cwd"] == str(job_dir / "code")
    assert seen["others"] == {
        "TRAINING_JOB_NAME": "parity",
        "SAGEMAKER_JOB_NAME": "",
        "CURRENT_HOST": "algo-1",
        "SAGEMAKER_REGION": "eu-west-1",
    }


def test_every_host_of_a_heterogeneous_cluster_equals_the_toolkit(tmp_path) -> None:
    groups = {
        "ResourceConfig": {
            "InstanceGroups": [
                {"InstanceGroupName": "data", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
                {"InstanceGroupName": "train", "InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
            ]
        }
    }
    plan = probe_plan(tmp_path, **groups)
    for host in ("", "algo-2"):
        seen, job_dir = run_probe(tmp_path, plan, host)
        expected = toolkit_view(job_dir)
        assert {k: v for k, v in seen["env"].items() if k != "SM_TRAINING_ENV"} == {
            k: v for k, v in expected["env"].items() if k != "SM_TRAINING_ENV"
        }
        assert json.loads(seen["env"]["SM_TRAINING_ENV"]) == json.loads(
            expected["env"]["SM_TRAINING_ENV"]
        )
    assert seen["env"]["SM_IS_HETERO"] == "true"
    assert seen["env"]["SM_CURRENT_INSTANCE_GROUP"] == "train"
    assert json.loads(seen["env"]["SM_HOSTS"]) == ["algo-1", "algo-2"]


DDP_SCRIPT = textwrap.dedent("""
    import argparse, os
    import numpy as np, torch, torch.distributed as dist
    from sklearn.datasets import load_digits
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    args, _ = parser.parse_known_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)[rank::world]
    y = torch.tensor(digits.target)[rank::world]
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(args.epochs):
        for i in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i+64]), y[i:i+64]).backward()
            optimizer.step()
    correct = (model(x).argmax(1) == y).float().mean()
    dist.all_reduce(correct)
    print(f"rank={rank} host={os.environ['SM_CURRENT_HOST']} world={world} "
          f"accuracy={correct.item() / world:.4f}", flush=True)
    if rank == 0:
        torch.save(model.module.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "m.pt"))
    dist.barrier()  # leave together: gloo aborts a rank whose peer tears down first
    dist.destroy_process_group()
""")


@pytest.mark.torch  # the entry point trains with torch.distributed
def test_a_two_host_ddp_job_trains_on_loopback(tmp_path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(DDP_SCRIPT)
    plan = plan_pb2.Plan(sagemaker_operation="CreateTrainingJob")
    json_format.ParseDict(
        {
            "training": {
                "name": "ddp",
                "model": {
                    "framework": {
                        "name": "pytorch",
                        "entry_point": "train.py",
                        "source_dir": str(source),
                    }
                },
            }
        },
        plan.job,
    )
    plan.sagemaker_request.update(
        {
            "TrainingJobName": "ddp",
            "HyperParameters": {
                "epochs": "10",
                "sagemaker_program": "train.py",
                "sagemaker_torch_distributed_enabled": "true",
            },
            "AlgorithmSpecification": {
                "TrainingImage": "img",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}],
            },
            "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        }
    )
    lines: list[str] = []
    result = run_training(training_run_from_plan(plan), tmp_path / "runs", echo=lines.append)
    assert result.status == "Completed", result.message
    log = "".join(lines)
    assert "[algo-1] rank=0 host=algo-1 world=2" in log
    assert "[algo-2] rank=1 host=algo-2 world=2" in log
    assert "simulating: 2 instances run as 2 local hosts" in log
    assert result.metrics["accuracy"] > 0.85
    assert result.artifact is not None and result.artifact.exists()  # one model, algo-1's
    other = tmp_path / "runs" / ".hosts" / "ddp" / "algo-2" / "model"
    assert other.is_dir() and not any(other.iterdir())
