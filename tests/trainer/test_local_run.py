"""The local runner: SageMaker's container layout and environment, faults, the digits job."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from google.protobuf import json_format
from trainspec.trainer._artifacts import ArtifactError, pack_model
from trainspec.trainer._container import ContainerError
from trainspec.trainer._job_store import JobStore
from trainspec.trainer._local_run import run_training, training_run_from_plan
from trainspec.v1 import plan_pb2

REPO = Path(__file__).resolve().parents[2]

# Writes what the container gave it into the model dir, prints metric lines.
ECHO_SCRIPT = """
import json, os, sys
from pathlib import Path
model = Path(os.environ["SM_MODEL_DIR"])
seen = {
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINSPEC_", "MY_"))},
    "train_files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
    "cwd": os.getcwd(),
}
(model / "seen.json").write_text(json.dumps(seen))
print("epoch 1 loss=0.5 acc=0.7")
print("epoch 2 loss=0.25 acc=0.9")
"""


def make_plan(source_dir: Path, data: dict[str, str], **overrides) -> plan_pb2.Plan:
    """A hand-built CreateTrainingJob plan shaped like the compiler's."""
    plan = plan_pb2.Plan(sagemaker_operation="CreateTrainingJob")
    spec = {
        "name": overrides.get("name", "job-a"),
        "model": {
            "framework": {
                "name": "pytorch",
                "entry_point": "train.py",
                "source_dir": str(source_dir),
            }
        },
        "data": {name: {"uri": uri} for name, uri in data.items()},
    }
    if "sifting" in overrides:
        spec["sifting"] = overrides["sifting"]
    json_format.ParseDict({"training": spec}, plan.job)
    plan.sagemaker_request.update(
        {
            "TrainingJobName": spec["name"],
            "HyperParameters": {
                "epochs": "2",
                "lr": "0.1",
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": "s3://b/job-a/source/sourcedir.tar.gz",
            },
            "AlgorithmSpecification": {
                "TrainingImage": "img",
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "valid:acc", "Regex": r"acc=([0-9.]+)"},
                    {"Name": "train:loss", "Regex": r"loss=([0-9.]+)"},
                ],
            },
            "Environment": overrides.get("environment", {"MY_FLAG": "on"}),
            "InputDataConfig": [
                {
                    "ChannelName": n,
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://b/job-a/input/{n}/",
                        }
                    },
                }
                for n in data
            ],
            "StoppingCondition": {"MaxRuntimeInSeconds": overrides.get("max_runtime", 600)},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
        }
    )
    return plan


@pytest.fixture
def job(tmp_path: Path):
    """A source dir with train.py and a data folder; returns a function to build a plan."""
    source = tmp_path / "src"
    source.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n")

    def build(script: str, **overrides) -> plan_pb2.Plan:
        (source / "train.py").write_text(textwrap.dedent(script))
        return make_plan(source, {"train": str(data)}, **overrides)

    return build


def test_layout_environment_metrics_and_artifact(job, tmp_path: Path) -> None:
    plan = job(ECHO_SCRIPT, sifting={"beta_value": 0.5, "sift_delay": 3})
    root = tmp_path / "runs"
    lines: list[str] = []
    result = run_training(training_run_from_plan(plan), root, echo=lines.append)

    assert result.ok, result.message
    assert result.metrics == {"valid:acc": 0.9, "train:loss": 0.25}
    assert result.metric_history["valid:acc"] == (0.7, 0.9)
    assert "epoch 2 loss=0.25 acc=0.9\n" in lines
    job_dir = root / "job-a"
    config = job_dir / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["epochs"] == "2"
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1" and resources["hosts"] == ["algo-1"]
    assert resources["network_interface_name"] == "eth0"
    channels = json.loads((config / "inputdataconfig.json").read_text())
    assert channels["train"]["ContentType"] == "text/csv"
    assert (job_dir / "output" / "data").is_dir() and (job_dir / "checkpoints").is_dir()
    assert "acc=0.9" in (job_dir / "output" / "training.log").read_text()

    with tarfile.open(result.artifact) as tar:
        assert sorted(tar.getnames()) == ["seen.json"]
        seen = json.load(tar.extractfile("seen.json"))
    assert result.artifact == job_dir / "output" / "model.tar.gz"
    assert result.artifact.stat().st_mode & 0o044 == 0o044  # readable like any new file
    env = seen["env"]
    assert seen["argv"] == ["--epochs", "2", "--lr", "0.1"]  # no sagemaker_* settings
    assert seen["train_files"] == ["rows.csv"]
    assert env["SM_MODEL_DIR"] == str(job_dir / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(job_dir / "input" / "data" / "train")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 2, "lr": 0.1}
    assert env["SM_HP_LR"] == "0.1"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert int(env["SM_NUM_CPUS"]) >= 1 and int(env["SM_NUM_GPUS"]) >= 0
    assert env["SM_OUTPUT_DATA_DIR"] == str(job_dir / "output" / "data")
    assert "SM_CHECKPOINT_DIR" not in env  # SageMaker never sets it: /opt/ml/checkpoints
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_DIR"].startswith("s3://") or env["SM_MODULE_DIR"] == str(job_dir / "code")
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == "job-a"
    assert training_env["hyperparameters"] == {"epochs": 2, "lr": 0.1}
    assert json.loads(env["TRAINSPEC_SIFTING"]) == {"beta_value": 0.5, "sift_delay": 3}
    assert env["MY_FLAG"] == "on"
    record = JobStore.for_root(root).get("job-a")
    assert record.status == "Completed" and record.metrics["valid:acc"] == 0.9


def test_missing_entry_point_is_a_clear_error(job, tmp_path: Path) -> None:
    plan = job("print('x')")
    (Path(plan.job.training.model.framework.source_dir) / "train.py").unlink()
    with pytest.raises(ContainerError, match=r"entry point .*train.py does not exist"):
        training_run_from_plan(plan)


def test_missing_data_channel_fails_before_the_job_starts(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('never runs')\n")
    plan = make_plan(source, {"train": str(tmp_path / "nowhere")})
    root = tmp_path / "runs"
    with pytest.raises(ContainerError, match=r"data channel 'train': .*nowhere does not exist"):
        run_training(training_run_from_plan(plan), root)
    assert JobStore.for_root(root).get("job-a") is None


def test_nonzero_exit_fails_with_the_log_tail_and_no_artifact(job, tmp_path: Path) -> None:
    plan = job("""
        import sys
        print("loading data")
        sys.exit("bad column 7")
    """)
    result = run_training(training_run_from_plan(plan), tmp_path / "runs", echo=lambda _: None)
    assert result.status == "Failed" and result.exit_code == 1
    assert "exited with status 1" in result.message and "bad column 7" in result.message
    assert result.artifact is None
    assert not (result.layout.output_dir / "model.tar.gz").exists()
    assert "exited with status 1" in result.layout.failure_file.read_text()
    assert JobStore.for_root(tmp_path / "runs").get("job-a").status == "Failed"


def test_script_failure_file_is_the_message(job, tmp_path: Path) -> None:
    plan = job("""
        import os, sys
        open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("out of labels")
        sys.exit(2)
    """)
    result = run_training(training_run_from_plan(plan), tmp_path / "runs", echo=lambda _: None)
    assert result.message == "the entry point train.py exited with status 2: out of labels"


# Resumes from a counter in the checkpoint dir; SIGKILLs itself on the first attempt.
RESUME_SCRIPT = """
import os, signal
from pathlib import Path
# SageMaker's checkpoint folder is /opt/ml/checkpoints; locally the job folder plays /opt/ml.
checkpoints = os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "checkpoints")
state = Path(checkpoints) / "epoch"
epoch = int(state.read_text()) if state.exists() else 0
print(f"resumed at {epoch}")
for epoch in range(epoch + 1, 4):
    state.write_text(str(epoch))
    print(f"epoch={epoch} acc=0.{epoch}", flush=True)
    if epoch == 2 and not os.path.exists(checkpoints + "/killed"):
        open(checkpoints + "/killed", "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write(str(epoch))
"""


def test_sigkill_fails_clearly_and_the_rerun_resumes_from_checkpoints(job, tmp_path) -> None:
    plan = job(RESUME_SCRIPT)
    root = tmp_path / "runs"
    first = run_training(training_run_from_plan(plan), root, echo=lambda _: None)
    assert first.status == "Failed" and first.exit_code == -9
    assert "killed by SIGKILL" in first.message and "resume" in first.message
    assert first.artifact is None and not first.layout.artifact.exists()

    lines: list[str] = []
    second = run_training(training_run_from_plan(plan), root, echo=lines.append)
    assert second.ok
    assert lines[0] == "resumed at 2\n"
    assert second.metric_history["valid:acc"] == (0.3,)
    with tarfile.open(second.artifact) as tar:
        assert tar.extractfile("m").read() == b"3"

    # A completed job starts over when run again.
    lines.clear()
    run_training(training_run_from_plan(plan), root, echo=lines.append)
    assert lines[0] == "resumed at 0\n"


def test_max_runtime_stops_the_process_group(job, tmp_path: Path) -> None:
    plan = job(
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid, flush=True)
        time.sleep(60)
    """,
        max_runtime=1,
    )
    lines: list[str] = []
    started = time.monotonic()
    result = run_training(training_run_from_plan(plan), tmp_path / "runs", echo=lines.append)
    assert time.monotonic() - started < 15
    assert (result.status, result.secondary_status) == ("Stopped", "MaxRuntimeExceeded")
    assert "maximum runtime of 1 s" in result.message
    child = int(lines[0].split()[1])
    time.sleep(0.2)
    assert _gone(child)  # the whole group went, grandchild included
    record = JobStore.for_root(tmp_path / "runs").get("job-a")
    assert record.secondary_status == "MaxRuntimeExceeded"


def _gone(pid: int) -> bool:
    # An orphan reparented to a PID 1 that does not reap stays a zombie: dead all the same.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def test_stop_request_from_the_store_stops_the_job(job, tmp_path: Path) -> None:
    plan = job("""
        import time
        print("started", flush=True)
        time.sleep(60)
    """)
    root = tmp_path / "runs"
    started = threading.Event()

    def echo(line: str) -> None:
        if line.startswith("started"):
            started.set()

    def stopper() -> None:
        started.wait(20)
        JobStore.for_root(root).request_stop("job-a")

    thread = threading.Thread(target=stopper)
    thread.start()
    result = run_training(training_run_from_plan(plan), root, echo=echo)
    thread.join()
    assert (result.status, result.secondary_status) == ("Stopped", "Stopped")
    assert JobStore.for_root(root).get("job-a").status == "Stopped"


def test_root_that_cannot_be_created_is_a_clear_error(job, tmp_path: Path) -> None:
    plan = job(ECHO_SCRIPT)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ContainerError, match=r"cannot use .*file/runs for local jobs"):
        run_training(training_run_from_plan(plan), blocker / "runs")


def test_pack_model_leaves_no_partial_file_when_the_disk_fills(tmp_path: Path) -> None:
    # A file size limit makes writes fail with EFBIG mid-archive, like a full disk.
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(300_000))
    dest = tmp_path / "out" / "model.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"previous artifact")
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from trainspec.trainer._artifacts import ArtifactError, pack_model
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        try:
            pack_model(Path({str(model)!r}), Path({str(dest)!r}))
        except ArtifactError as exc:
            print(exc)
            sys.exit(1)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "cannot write" in done.stdout and "model.tar.gz" in done.stdout
    assert dest.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.tar.gz"]


def test_pack_model_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(ArtifactError, match="cannot write"):
        pack_model(tmp_path / "model", tmp_path / "gone" / "model.tar.gz")


@pytest.mark.torch  # trains the digits example
def test_digits_main_job_trains_on_cpu_in_under_a_minute(tmp_path: Path) -> None:
    """The project's main job, as a user runs it: a real subprocess, real training."""
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainspec",
            "run",
            str(REPO / "examples/digits/job.yaml"),
            "--local",
            "--root",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 60
    accuracy = float(re.search(r"validation:accuracy = ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.85
    assert "epoch=1 " in done.stdout  # the log streamed through
    # The local job is named as on SageMaker: the spec's name and the request's digest.
    from trainspec.compiler import compile_file

    name = compile_file(REPO / "examples/digits/job.yaml").sagemaker_request["TrainingJobName"]
    assert name.startswith("digits-mlp-")
    artifact = tmp_path / "runs" / name / "output" / "model.tar.gz"
    assert f"model artifact: {artifact}" in done.stdout
    with tarfile.open(artifact) as tar:
        assert {"model.pt", "model.json"} <= set(tar.getnames())


def test_s3_channels_are_downloaded_with_boto3(job, tmp_path, clean_aws_env, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")  # boto3 reads it
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="digits/train/part-0.csv", Body=b"1,2\n")
        s3.put_object(Bucket="data", Key="digits/train/sub/part-1.csv", Body=b"3,4\n")
        plan = job(ECHO_SCRIPT)
        plan.job.training.data["train"].uri = "s3://data/digits/train/"
        result = run_training(training_run_from_plan(plan), tmp_path / "runs", echo=lambda _: None)
    finally:
        server.stop()
    assert result.ok, result.message
    with tarfile.open(result.artifact) as tar:
        assert json.load(tar.extractfile("seen.json"))["train_files"] == ["part-0.csv", "sub"]


def test_s3_channels_without_credentials_are_a_clear_error(job, tmp_path, clean_aws_env):
    plan = job(ECHO_SCRIPT)
    plan.job.training.data["train"].uri = "s3://data/digits/train/"
    with pytest.raises(
        ContainerError,
        match=r"no AWS credentials were found: channel train \(s3://data/digits/train/\)",
    ):
        run_training(training_run_from_plan(plan), tmp_path / "runs")


def test_links_in_the_model_folder_are_packed_as_files_or_refused(tmp_path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 10)
    (model / "latest.bin").symlink_to(model / "weights.bin")
    artifact = pack_model(model, tmp_path / "model.tar.gz")
    with tarfile.open(artifact) as tar:
        latest = tar.getmember("latest.bin")
        assert latest.isfile() and tar.extractfile(latest).read() == b"w" * 10
    (tmp_path / "secret").write_text("key")
    (model / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(ArtifactError, match="outside it"):
        pack_model(model, tmp_path / "model.tar.gz")


def tiny_wheel(folder: Path, version: str) -> Path:
    """A pure-Python wheel made by hand (no build backend, no network)."""
    import base64
    import hashlib
    import zipfile

    name = f"tinypkg-{version}-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": f"VERSION = {version!r}\n",
        f"tinypkg-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\n"
        ),
        f"tinypkg-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"tinypkg-{version}.dist-info/RECORD,,")
    files[f"tinypkg-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return folder / name


def test_requirements_install_into_a_cached_environment_of_the_job(job, tmp_path) -> None:
    plan = job("import tinypkg, sys\nprint('tinypkg', tinypkg.VERSION, sys.prefix)")
    source = Path(plan.job.training.model.framework.source_dir)
    (source / "wheels").mkdir()
    tiny_wheel(source / "wheels", "1.0")
    (source / "requirements.txt").write_text("--no-index\nwheels/tinypkg-1.0-py3-none-any.whl\n")
    root = tmp_path / "runs"
    lines: list[str] = []
    first = run_training(training_run_from_plan(plan), root, echo=lines.append)
    assert first.status == "Completed", first.message
    printed = next(line for line in lines if line.startswith("tinypkg"))
    assert printed.split()[1] == "1.0" and str(root / ".envs") in printed
    assert any("installing requirements.txt" in line for line in lines)
    with pytest.raises(ModuleNotFoundError):  # this machine's environment is untouched
        __import__("tinypkg")

    lines.clear()
    again = run_training(training_run_from_plan(plan), root, echo=lines.append)
    assert again.status == "Completed"
    assert not any("installing" in line for line in lines)  # cached by the file's hash

    (source / "requirements.txt").write_text("--no-index\nwheels/absent-2.0-py3-none-any.whl\n")
    with pytest.raises(ContainerError, match=r"installing requirements\.txt failed"):
        run_training(training_run_from_plan(plan), root, echo=lines.append)


def test_a_plans_local_paths_resolve_against_its_checkout(tmp_path, monkeypatch) -> None:
    """Plans name the source folder and data relative to the project root; a run finds
    them in the checkout the spec is in, whatever the working directory."""
    import shutil

    from trainspec.compiler import compile_file, spec_root

    root = tmp_path / "checkout"
    shutil.copytree(REPO / "examples" / "digits", root / "examples" / "digits")
    shutil.copy(REPO / "examples" / "trainspec.defaults.yaml", root / "examples")
    (root / ".git").mkdir()
    spec = root / "examples" / "digits" / "job.yaml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plan = compile_file(spec)
    assert plan.job.training.model.framework.source_dir == "examples/digits"

    run = training_run_from_plan(plan, Path(spec_root(spec)))
    assert run.source_dir == (root / "examples" / "digits").resolve()
    assert {c.name: c.uri for c in run.channels} == {
        "train": str(root.resolve() / "examples/digits/data/train"),
        "validation": str(root.resolve() / "examples/digits/data/validation"),
    }
    # Against the wrong folder nothing is found, and the error says what is missing.
    with pytest.raises(ContainerError, match=r"entry point .*train\.py does not exist"):
        training_run_from_plan(plan)
