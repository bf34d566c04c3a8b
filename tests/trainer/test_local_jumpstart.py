"""Local runs of pretrained (JumpStart) plans against moto's S3: the script archive and the
weights are fetched through the runner's cache, the script runs as on SageMaker."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format
from trainspec.trainer import _s3_cache
from trainspec.trainer._container import ContainerError
from trainspec.trainer._local_run import run_training, training_run_from_plan
from trainspec.trainer._s3_cache import ObjectChanged, S3Cache, S3Object
from trainspec.trainer._s3_inputs import InputsUnavailable, _s3_errors

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples/training/finetune-text.yaml"
BUCKET = "jumpstart-cache-prod-us-east-1"
SCRIPT_KEY = (
    "source-directory-tarballs/huggingface/transfer_learning/spc/prepack/v1.1.0/sourcedir.tar.gz"
)
MODEL_KEY = "huggingface-training/train-huggingface-spc-bert-base-cased.tar.gz"
DATA = ("acme-ml", "qnli/train/data.csv")

# A stand-in for JumpStart's transfer_learning.py, written only against SageMaker's
# documented environment: argparse over the hyperparameters, SM_CHANNEL_*, SM_MODEL_DIR.
ENTRY = """
import argparse, glob, json, os, sys, tarfile, tempfile
import helper  # a module of the archive: the script runs from the unpacked code

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--batch-size", type=int)
parser.add_argument("--adam-learning-rate", type=float)
args, unknown = parser.parse_known_args()
model_channel = os.environ["SM_CHANNEL_MODEL"]
(tarball,) = glob.glob(os.path.join(model_channel, "*.tar.gz"))
with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
    tar.extractall(tmp, filter="data")
    weights = open(os.path.join(tmp, "weights.txt")).read()
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "data.csv")).read().splitlines()
seen = {
    "argv": sys.argv[1:],
    "script": os.path.abspath(__file__),
    "cwd": os.getcwd(),
    "helper": helper.NAME,
    "weights": weights,
    "rows": len(rows),
    "hps": json.loads(os.environ["SM_HPS"]),
    "model_channel": model_channel,
    "model_files": sorted(os.listdir(model_channel)),
    "code_files": sorted(os.listdir(os.environ["SM_CHANNEL_CODE"])),
    "module_dir": os.environ["SM_MODULE_DIR"],
    "entry_point": os.environ["SM_USER_ENTRY_POINT"],
}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as out:
    json.dump(seen, out)
print({"eval_accuracy": 0.75})
"""


def _tar_gz(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    # gzip's header time fixed, so the same files make the same bytes (and ETag)
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


SOURCEDIR = _tar_gz(
    {
        "transfer_learning.py": textwrap.dedent(ENTRY).encode(),
        "helper.py": b"NAME = 'packed helper'\n",
    }
)


def _model(weights: str) -> bytes:
    return _tar_gz({"weights.txt": weights.encode(), "config.json": b"{}"})


@pytest.fixture
def aws(moto_url, fake_aws_credentials, monkeypatch):
    """boto3 pointed at moto with test credentials, and nothing from this machine's AWS
    configuration; returns an S3 client for the test's own uploads."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    s3 = boto3.client("s3")
    for bucket in (BUCKET, DATA[0]):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=BUCKET, Key=SCRIPT_KEY, Body=SOURCEDIR)
    s3.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=_model("pretrained v1"))
    s3.put_object(Bucket=DATA[0], Key=DATA[1], Body=b"1,a,b\n0,c,d\n")
    return s3


def _plan():
    from trainspec.compiler import compile_file

    return compile_file(SPEC)


def _run(plan, root: Path, lines: list[str] | None = None):
    echo = lines.append if lines is not None else (lambda _line: None)
    return run_training(training_run_from_plan(plan, REPO), root, echo=echo)


def _seen(result) -> dict:
    with tarfile.open(result.artifact) as tar:
        return json.load(tar.extractfile("model.json"))


def _trainspec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainspec", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=dict(os.environ),
    )


def test_the_example_spec_runs_locally_from_its_script_archive_and_weights(aws, tmp_path):
    root = tmp_path / "runs"
    done = _trainspec("run", str(SPEC), "--local", "--root", str(root), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "hugginface-spc:eval-accuracy = 0.75" in done.stdout  # the spec's metric regex
    name = _plan().sagemaker_request["TrainingJobName"]
    job = (root / name).resolve()
    with tarfile.open(job / "output" / "model.tar.gz") as tar:
        seen = json.load(tar.extractfile("model.json"))
    # the archive was unpacked into code/ and its entry point ran there, with its helper
    assert seen["script"] == str(job / "code" / "transfer_learning.py")
    assert seen["cwd"] == str(job / "code") and seen["helper"] == "packed helper"
    # the weights arrive as SageMaker delivers an S3Prefix channel naming one object
    assert seen["model_channel"] == str(job / "input" / "data" / "model")
    assert seen["model_files"] == ["train-huggingface-spc-bert-base-cased.tar.gz"]
    assert seen["weights"] == "pretrained v1" and seen["rows"] == 2
    assert seen["code_files"] == ["sourcedir.tar.gz"]
    # the toolkit's argv and SM_*: the spec's values, none of its own sagemaker_* settings
    argv = seen["argv"]
    assert argv[argv.index("--batch-size") + 1] == "64" and argv[argv.index("--epochs") + 1] == "3"
    assert not any(a.startswith("--sagemaker") for a in argv)
    assert seen["hps"]["adam-learning-rate"] == 5e-05 and "sagemaker_program" not in seen["hps"]
    assert seen["entry_point"] == "transfer_learning.py"
    assert seen["module_dir"] == "/opt/ml/input/data/code/sourcedir.tar.gz"


def test_a_rerun_uses_the_cache_and_a_changed_object_is_downloaded_again(
    aws, tmp_path, monkeypatch
):
    plan, root = _plan(), tmp_path / "runs"
    first: list[str] = []
    assert _run(plan, root, first).ok
    assert sum("downloaded (" in line for line in first) == 3  # data, weights, script
    cache = S3Cache(root)
    model_v1 = cache.path(_listed(aws, BUCKET, MODEL_KEY))
    inode = model_v1.stat().st_ino
    assert model_v1.read_bytes() == _model("pretrained v1")

    real_download = S3Cache.download

    def no_get(*args, **kwargs):
        raise AssertionError("an unchanged object was downloaded again")

    monkeypatch.setattr(S3Cache, "download", no_get)
    second: list[str] = []
    result = _run(plan, root, second)
    assert result.ok, result.message
    assert sum(": cached (" in line for line in second) == 3
    assert model_v1.stat().st_ino == inode  # the very file of the first run

    monkeypatch.setattr(S3Cache, "download", real_download)
    aws.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=_model("pretrained v2"))
    third: list[str] = []
    result = _run(plan, root, third)
    assert result.ok, result.message
    assert _seen(result)["weights"] == "pretrained v2"
    (downloaded,) = [line for line in third if "downloaded (" in line]
    assert downloaded.startswith(f"[trainspec] s3://{BUCKET}/{MODEL_KEY}: downloaded (")
    assert not model_v1.exists()  # the old version left the cache (the first job keeps its link)
    assert [p.name for p in model_v1.parent.iterdir() if not p.name.startswith(".")] == [
        cache.path(_listed(aws, BUCKET, MODEL_KEY)).name
    ]


def _listed(s3, bucket: str, key: str) -> S3Object:
    head = s3.head_object(Bucket=bucket, Key=key)
    return S3Object(bucket, key, head["ETag"].strip('"'), head["ContentLength"])


def test_a_partial_or_wrong_file_in_the_cache_is_never_used(aws, tmp_path):
    plan, root = _plan(), tmp_path / "runs"
    obj = _listed(aws, BUCKET, MODEL_KEY)
    path = S3Cache(root).path(obj)
    path.parent.mkdir(parents=True)
    path.write_bytes(_model("pretrained v1")[:20])  # as a crash mid-copy would leave it
    (path.parent / ".part-left-over").write_bytes(b"x")
    result = _run(plan, root)
    assert result.ok, result.message
    assert _seen(result)["weights"] == "pretrained v1"
    assert path.read_bytes() == _model("pretrained v1")


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def iter_chunks(self, size: int):
        yield from (self._data[i : i + size] for i in range(0, len(self._data), size))


class _Client:
    """Serves `data` whatever S3 listed: a cut-off or corrupted transfer."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_object(self, **kwargs):
        return {"Body": _Body(self.data)}


@pytest.mark.parametrize(
    ("served", "problem"),
    [(b"hello wor", "got 9 bytes, S3 lists 11"), (b"hello WORLD", "does not match its ETag")],
)
def test_a_cut_off_or_corrupted_download_is_refused_and_leaves_nothing(tmp_path, served, problem):
    content = b"hello world"
    obj = S3Object("b", "k", hashlib.md5(content).hexdigest(), len(content))
    cache = S3Cache(tmp_path)
    with pytest.raises(ObjectChanged, match=problem):
        cache.download(_Client(served), obj)
    assert cache.cached(obj) is None
    assert list(cache.path(obj).parent.iterdir()) == []
    # the right bytes are kept, read-only (jobs get hard links to them)
    assert cache.download(_Client(content), obj).read_bytes() == content
    assert cache.cached(obj).stat().st_mode & 0o222 == 0


def test_big_downloads_report_their_progress_on_the_given_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(_s3_cache, "PROGRESS_SECONDS", 0.0)
    content = b"x" * (3 << 20)
    obj = S3Object("b", "big", hashlib.md5(content).hexdigest(), len(content))
    stream = io.StringIO()
    S3Cache(tmp_path).download(_Client(content), obj, _s3_cache.Progress(obj, stream))
    assert stream.getvalue().splitlines() == [
        f"[trainspec] downloading s3://b/big: {mib:.1f} of 3.0 MiB" for mib in (1, 2, 3)
    ]


def _without_code_channel(plan, submit_directory: str):
    """The plan of a JumpStart model without network isolation: no `code` channel, as the
    toolkit itself downloads sagemaker_submit_directory from S3."""
    request = json_format.MessageToDict(plan.sagemaker_request)
    request["HyperParameters"]["sagemaker_submit_directory"] = submit_directory
    request["InputDataConfig"] = [
        c for c in request["InputDataConfig"] if c["ChannelName"] != "code"
    ]
    plan.sagemaker_request.Clear()
    plan.sagemaker_request.update(request)
    return plan


def test_an_s3_submit_directory_is_downloaded_and_unpacked_as_the_toolkit_does(aws, tmp_path):
    plan = _without_code_channel(_plan(), f"s3://{BUCKET}/{SCRIPT_KEY}")
    run = training_run_from_plan(plan, REPO)
    # SM_CHANNEL_CODE is gone with the channel; the script says so
    aws.put_object(
        Bucket=BUCKET,
        Key=SCRIPT_KEY,
        Body=_tar_gz(
            {
                "transfer_learning.py": textwrap.dedent(ENTRY)
                .replace('sorted(os.listdir(os.environ["SM_CHANNEL_CODE"]))', '"none"')
                .encode(),
                "helper.py": b"NAME = 'packed helper'\n",
            }
        ),
    )
    result = run_training(run, tmp_path / "runs", echo=lambda _line: None)
    assert result.ok, result.message
    seen = _seen(result)
    assert seen["code_files"] == "none" and seen["helper"] == "packed helper"
    assert seen["module_dir"] == f"s3://{BUCKET}/{SCRIPT_KEY}"  # SM_MODULE_DIR, as the toolkit
    assert seen["script"] == str(result.layout.code_dir / "transfer_learning.py")


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../escaped.py", "outside the destination"),
        ("/tmp/absolute.py", "is an absolute path"),
        ("link", "outside the destination"),
    ],
)
def test_an_archive_reaching_out_of_the_code_folder_is_refused_whole(aws, tmp_path, member, why):
    extra = []
    if member == "link":
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        extra.append(info)
    files = {"transfer_learning.py": b"print('never runs')\n"}
    if member != "link":
        files[member] = b"print('escaped')\n"
    aws.put_object(Bucket=BUCKET, Key=SCRIPT_KEY, Body=_tar_gz(files, extra))
    root = tmp_path / "runs"
    with pytest.raises(ContainerError, match=f"training script archive .* is refused: .*{why}"):
        _run(_plan(), root)
    job = root / _plan().sagemaker_request["TrainingJobName"]
    assert list((job / "code").iterdir()) == []  # nothing of it was written
    assert not (job / "escaped.py").exists() and not Path("/tmp/absolute.py").exists()


def test_without_credentials_the_run_says_what_it_needs_and_exits_1(aws, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    done = _trainspec("run", str(SPEC), "--local", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "no AWS credentials were found" in done.stderr
    for uri in (f"s3://{BUCKET}/{MODEL_KEY}", f"s3://{BUCKET}/{SCRIPT_KEY}", "s3://acme-ml/qnli/"):
        assert uri in done.stderr


def test_missing_weights_are_a_located_error_with_exit_1(aws, tmp_path):
    aws.delete_object(Bucket=BUCKET, Key=MODEL_KEY)
    done = _trainspec("run", str(SPEC), "--local", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: channel 'model': no objects under s3://{BUCKET}/{MODEL_KEY}" in done.stderr


def test_a_missing_bucket_is_named(aws, tmp_path):
    plan = _without_code_channel(_plan(), "s3://no-such-bucket-x/s.tar.gz")
    with pytest.raises(
        ContainerError, match=re.escape("s3://no-such-bucket-x/s.tar.gz does not exist")
    ):
        _run(plan, tmp_path / "runs")


def test_unreachable_s3_is_an_infrastructure_failure_with_exit_4(aws, tmp_path, monkeypatch):
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    done = _trainspec("run", str(SPEC), "--local", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "cannot reach S3 for s3://" in done.stderr and "Traceback" not in done.stderr


def test_local_copies_of_every_channel_need_no_credentials(aws, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    copies = {name: tmp_path / name for name in ("model", "code", "training")}
    for folder in copies.values():
        folder.mkdir()
    (copies["model"] / "weights.tar.gz").write_bytes(_model("weights from elsewhere"))
    (copies["code"] / "sourcedir.tar.gz").write_bytes(SOURCEDIR)
    (copies["training"] / "data.csv").write_text("1,a,b\n")
    root = tmp_path / "runs"
    args = [f"--channel={name}={path}" for name, path in copies.items()]
    done = _trainspec("run", str(SPEC), "--local", "--root", str(root), *args, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(
        root / _plan().sagemaker_request["TrainingJobName"] / "output/model.tar.gz"
    ) as tar:
        seen = json.load(tar.extractfile("model.json"))
    assert seen["weights"] == "weights from elsewhere" and seen["rows"] == 1
    assert not (root / ".cache").exists()  # nothing was fetched

    done = _trainspec("run", str(SPEC), "--local", "--channel", f"weights={tmp_path}", cwd=tmp_path)
    assert done.returncode == 1
    assert "has no channel 'weights'; its channels: code, model, training" in done.stderr


def test_incremental_training_fetches_the_earlier_model_in_place_of_the_weights(aws, tmp_path):
    from trainspec.compiler import compile_file

    earlier = "s3://acme-ml/jobs/qnli-bert-1/output/model.tar.gz"
    aws.put_object(Bucket="acme-ml", Key=earlier[len("s3://acme-ml/") :], Body=_model("tuned"))
    plan = compile_file(SPEC, overrides=[f"training.model.from_artifact={earlier}"])
    result = _run(plan, tmp_path / "runs")
    assert result.ok, result.message
    seen = _seen(result)
    assert seen["weights"] == "tuned" and seen["model_files"] == ["model.tar.gz"]


@pytest.mark.parametrize(
    ("code", "status", "error", "says"),
    [
        ("AccessDenied", 403, ContainerError, "access to s3://b/k was denied (AccessDenied)"),
        ("403", 403, ContainerError, "need s3:ListBucket on its bucket and s3:GetObject"),
        ("NoSuchBucket", 404, ContainerError, "the bucket of s3://b/k does not exist"),
        ("InvalidObjectState", 400, ContainerError, "S3 refused s3://b/k: InvalidObjectState"),
        ("InternalError", 500, InputsUnavailable, "S3 failed to serve s3://b/k"),
        ("SlowDown", 503, InputsUnavailable, "run again later"),
    ],
)
def test_s3_errors_say_whose_fault_they_are(code, status, error, says):
    from botocore.exceptions import ClientError

    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    with pytest.raises(error, match=re.escape(says)) as raised, _s3_errors("ch", "s3://b/k"):
        raise ClientError(response, "GetObject")
    # only S3's own failures are infrastructure (exit 4); the rest are the user's to fix
    assert isinstance(raised.value, InputsUnavailable) == (status >= 500)


def test_a_uri_without_a_bucket_name_never_reaches_the_cache(aws, tmp_path):
    plan = _without_code_channel(_plan(), "s3://../../outside.tar.gz")
    with pytest.raises(ContainerError, match=re.escape("s3://../../outside.tar.gz does not name")):
        _run(plan, tmp_path / "runs")
    cached = tmp_path / "runs" / ".cache" / "s3"
    assert sorted(p.name for p in cached.iterdir()) == ["acme-ml", BUCKET]  # the channels'


def test_a_tuning_job_of_a_jumpstart_model_runs_its_trials_from_one_cache(aws, tmp_path):
    spec = tmp_path / "tune.yaml"
    spec.write_text(
        textwrap.dedent(
            """
            tuning:
              name: qnli-grid
              objective: {metric: "hugginface-spc:eval-accuracy", type: MAXIMIZE}
              strategy: GRID
              ranges:
                epochs: {categorical: {values: ["1", "2"]}}
              limits: {max_parallel_jobs: 2}
              training:
                name: qnli-grid
                model: {pretrained: huggingface-spc-bert-base-cased}
                data: {training: s3://acme-ml/qnli/train/}
                compute: {instance_type: ml.p3.2xlarge}
            """
        )
    )
    root = tmp_path / "runs"
    defaults = str(REPO / "examples/trainspec.defaults.yaml")
    done = _trainspec(
        "run", str(spec), "--local", "--root", str(root), "--defaults", defaults, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best trial: qnli-grid-" in done.stdout
    # trials running at once share the cache: one checked file per object, nothing partial
    cached = sorted(p for p in (root / ".cache" / "s3").rglob("*") if p.is_file())
    assert len([p for p in cached if p.name != ".uri"]) == 3
    assert not any(p.name.startswith(".part-") for p in cached)
