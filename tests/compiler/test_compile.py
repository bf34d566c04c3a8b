"""The compile driver on the examples: batch scaling, provenance, determinism, requests."""

from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from google.protobuf import json_format
from trainspec._plan import request_of
from trainspec.compiler import SpecError, compile_file
from trainspec.compiler.check._botocore_check import check_request
from trainspec.compiler.lower._emit import digest_of

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
)


def _request(plan):
    return request_of(plan)


@pytest.mark.parametrize("spec", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_every_example_compiles_to_a_request_botocore_accepts(spec):
    plan = compile_file(spec)
    assert check_request(plan.sagemaker_operation, _request(plan)) == []
    assert plan.digest.startswith("sha256:")


@pytest.mark.parametrize(
    ("instance_type", "batch"),
    [
        ("ml.p3.2xlarge", "32"),
        ("ml.p3.8xlarge", "128"),
        ("ml.p3.16xlarge", "256"),
        ("ml.g4dn.16xlarge", "32"),
        ("ml.m5.xlarge", "32"),
    ],
)
def test_vision_batch_size_scales_with_gpus(instance_type, batch):
    plan = compile_file(
        ROOT / "examples/training/finetune-vision.yaml",
        overrides=[f"training.compute.instance_type={instance_type}"],
    )
    assert _request(plan)["HyperParameters"]["batch_size"] == batch
    assert plan.batch_sizes.per_device == 32


def test_every_value_in_the_job_has_an_origin():
    plan = compile_file(ROOT / "examples/training/finetune-text.yaml")
    explained = {p.field_path for p in plan.provenance}
    job = json_format.MessageToDict(plan.job, preserving_proto_field_name=True)

    def leaves(node, prefix=""):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    missing = [leaf for leaf in leaves(job) if leaf not in explained]
    assert missing == []
    batch = next(
        p for p in plan.provenance if p.field_path == "training.hyperparameters.batch-size"
    )
    assert batch.source == "rule:batch.scale_by_devices"


def test_same_inputs_give_byte_identical_plans():
    spec = ROOT / "examples/training/pytorch-script.yaml"
    first, second = compile_file(spec), compile_file(spec)
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True
    )
    assert first.digest == second.digest
    assert digest_of(first) == first.digest  # recomputable from the stamped plan


def test_per_device_batch_and_batch_hyperparameter_together_is_an_error(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "training:\n  name: a\n  model: {image: 1.dkr.ecr.us-east-1.amazonaws.com/x:1}\n"
        "  compute: {instance_type: ml.g5.xlarge}\n  per_device_batch_size: 8\n"
        "  hyperparameters: {batch_size: 64}\n  role_arn: arn:aws:iam::111122223333:role/r\n"
        "  region: us-east-1\n  output: {path: s3://bucket-a/out/}\n"
    )
    with pytest.raises(SpecError) as caught:
        compile_file(spec, defaults=[])
    (problem,) = caught.value.diagnostics
    assert problem.code == "batch.both_given"
    assert problem.location.line == 5
    assert "job.yaml:6" in problem.message


def test_missing_role_says_which_layer_could_supply_it(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "training:\n  name: a\n  model: {image: 1.dkr.ecr.us-east-1.amazonaws.com/x:1}\n"
        "  compute: {instance_type: ml.g5.xlarge, spot: true}\n  region: us-east-1\n"
        "  output: {path: s3://bucket-a/out/}\n  stopping: {max_runtime_seconds: 100}\n"
    )
    with pytest.raises(SpecError) as caught:
        compile_file(spec, defaults=[])
    codes = {d.code: d for d in caught.value.diagnostics}
    assert "trainspec.defaults.yaml" in codes["required.missing"].hint
    assert "spot.max_wait_required" in codes  # all problems at once


def test_stubbed_boto3_receives_exactly_the_planned_request():
    plan = compile_file(ROOT / "examples/training/xgboost-cpu.yaml")
    request = _request(plan)
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, request)
        client.create_training_job(**request)
        stubber.assert_no_pending_responses()


def test_an_edited_defaults_file_is_read_again(tmp_path):
    """Defaults layers are cached by content: an edit must still change the next plan."""
    spec = tmp_path / "job.yaml"
    spec.write_text((ROOT / "examples/training/xgboost-cpu.yaml").read_text())
    defaults = tmp_path / "trainspec.defaults.yaml"
    base = (ROOT / "examples/trainspec.defaults.yaml").read_text()
    regions = []
    for region in ("us-east-1", "eu-west-1", "us-east-1"):
        defaults.write_text(base.replace("region: us-east-1", f"region: {region}"))
        plan = compile_file(spec)
        regions.append(plan.job.training.region)
    assert regions == ["us-east-1", "eu-west-1", "us-east-1"]

    defaults.write_text(base + "  bogus_field: 1\n")
    for _ in range(2):  # a bad file is reported every time, never cached as good
        with pytest.raises(SpecError) as caught:
            compile_file(spec)
        assert [d.code for d in caught.value.diagnostics] == ["spec.unknown_field"]


_NO_DATA_FINETUNE = """\
training:
  name: bert-default-data
  model: {pretrained: huggingface-spc-bert-base-cased}
  compute: {instance_type: ml.p3.8xlarge}
  data: {}
  role_arn: arn:aws:iam::111122223333:role/r
  region: us-east-1
  output: {path: s3://bucket-a/out/}
"""


@pytest.mark.parametrize("spec", [*EXAMPLES, "no-data-finetune"], ids=str)
def test_infer_leaves_the_resolved_job_as_it_was(spec, tmp_path):
    # Infer shares the resolved tree's subtrees and copies only what it writes: local
    # paths made absolute, the scaled batch size, a catalog's default data and batch.
    import copy

    from trainspec.compiler import Stage
    from trainspec.compiler._infer import infer_training
    from trainspec.compiler.catalog._catalog import load_catalog

    default_data = spec == "no-data-finetune"
    if default_data:
        spec = tmp_path / "job.yaml"
        spec.write_text(_NO_DATA_FINETUNE)
    resolved = compile_file(spec, until=Stage.RESOLVE).data
    before = copy.deepcopy(dict(resolved.tree))
    inferred = infer_training(resolved, load_catalog(), Path(spec).resolve().parent)
    assert dict(resolved.tree) == before
    if default_data:  # written where the resolved job has an empty map
        assert inferred.training["data"]["training"]["uri"].startswith("s3://")
        assert inferred.training["hyperparameters"]["batch-size"] == 32  # 8 x 4 GPUs
