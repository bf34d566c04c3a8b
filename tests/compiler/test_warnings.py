"""Warnings for plans that compile but would not do what the user expects."""

from __future__ import annotations

import pytest
import yaml
from trainspec.compiler import SpecError, compile_file
from trainspec.v1 import diagnostic_pb2

BASE = {
    "name": "job",
    "role_arn": "arn:aws:iam::111122223333:role/SageMakerTrainingRole",
    "region": "us-east-1",
    "output": {"path": "s3://acme/jobs/"},
    "model": {"framework": {"name": "pytorch", "version": "2.1", "entry_point": "train.py"}},
    "data": {"train": "s3://acme/train/"},
    "compute": {"instance_type": "ml.g5.xlarge"},
}
WARNING = diagnostic_pb2.SEVERITY_WARNING


def _warnings(tmp_path, **training) -> dict[str, str]:
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"training": {**BASE, **training}}))
    plan = compile_file(spec, defaults=[])
    return {w.code: w.field_path for w in plan.warnings if w.severity == WARNING}


def test_spot_without_checkpoints_is_warned(tmp_path):
    spot = {"compute": {**BASE["compute"], "spot": True}, "stopping": {"max_wait_seconds": 90000}}
    assert _warnings(tmp_path, **spot)["spot.no_checkpoint"] == "training.compute.spot"
    with_checkpoints = _warnings(tmp_path, **spot, checkpoint={"s3_uri": "s3://acme/ckpt/"})
    assert "spot.no_checkpoint" not in with_checkpoints
    assert "spot.no_checkpoint" not in _warnings(tmp_path)


@pytest.mark.parametrize(
    ("uri", "warned"),
    [
        ("s3://acme/train", True),  # also matches s3://acme/train-old/
        ("s3://acme/data/train", True),
        ("s3://acme/train/", False),
        ("s3://acme/train.csv", False),  # one object, named as such
        ("s3://acme", False),  # the whole bucket
    ],
)
def test_an_s3_prefix_without_a_slash_is_warned(tmp_path, uri, warned):
    warnings = _warnings(tmp_path, data={"train": uri})
    assert ("data.s3_prefix_slash" in warnings) is warned


def test_a_catalog_model_still_refuses_a_prefix_without_a_slash(tmp_path):
    spec = tmp_path / "job.yaml"
    training = {
        **BASE,
        "model": {"pretrained": "huggingface-spc-bert-base-cased"},
        "data": {"train": "s3://acme/train"},
    }
    spec.write_text(yaml.safe_dump({"training": training}))
    with pytest.raises(SpecError) as raised:
        compile_file(spec, defaults=[])
    assert "data.s3_prefix_slash" in {d.code for d in raised.value.diagnostics}


@pytest.mark.parametrize(("rows", "warned"), [(10, True), (64, False)])
def test_a_batch_larger_than_the_local_data_is_warned(tmp_path, rows, warned):
    data = tmp_path / "train"
    data.mkdir()
    (data / "data.csv").write_text("".join(f"{i % 2},text {i},other {i}\n" for i in range(rows)))
    warnings = _warnings(
        tmp_path,
        model={"pretrained": "huggingface-spc-bert-base-cased"},
        data={"train": "train"},
        compute={"instance_type": "ml.p3.8xlarge"},  # 4 GPUs: 16 x 4 = 64 per step
        per_device_batch_size=16,
    )
    assert ("batch.larger_than_data" in warnings) is warned
    if warned:
        assert warnings["batch.larger_than_data"] == "training.per_device_batch_size"
