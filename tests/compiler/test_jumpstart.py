"""JumpStart specs as the pretrained catalog: lowering, the spec's rules, and every bad
input as a located error (the request parity itself is tests/sdk/test_jumpstart_parity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from trainspec._cli import cli as main
from trainspec._plan import request_of
from trainspec.compiler import SpecError, compile_file
from trainspec.compiler.catalog._jumpstart import Hyperparameter

SPECS = Path(__file__).resolve().parents[2] / "compiler" / "catalog" / "jumpstart"
BERT = "huggingface-spc-bert-base-cased"
BASE = {
    "name": "ft",
    "role_arn": "arn:aws:iam::111122223333:role/SageMakerTrainingRole",
    "region": "us-east-1",
    "output": {"path": "s3://acme/jobs/"},
    "model": {"pretrained": BERT},
    "data": {"training": "s3://acme/train/"},
    "compute": {"instance_type": "ml.p3.8xlarge"},
}


def _spec(tmp_path: Path, defaults: dict | None = None, **training) -> Path:
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"training": {**BASE, **training}}))
    if defaults is not None:
        (tmp_path / "trainspec.defaults.yaml").write_text(yaml.safe_dump(defaults))
    return spec


def _errors(spec: Path) -> dict[str, object]:
    with pytest.raises(SpecError) as raised:
        compile_file(spec)
    return {d.code: d for d in raised.value.diagnostics}


def test_lowering_adds_weights_script_toolkit_hyperparameters_and_tags(tmp_path):
    plan = compile_file(_spec(tmp_path, defaults={}))
    request = request_of(plan)
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["model"]["ContentType"] == "application/x-sagemaker-model"
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://jumpstart-cache-prod-us-east-1/huggingface-training/"
        "train-huggingface-spc-bert-base-cased.tar.gz"
    )
    assert channels["code"]["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        "/spc/prepack/v1.1.0/sourcedir.tar.gz"
    )
    assert channels["training"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://acme/train/"
    hyperparameters = request["HyperParameters"]
    assert hyperparameters["sagemaker_program"] == "transfer_learning.py"
    assert hyperparameters["sagemaker_submit_directory"] == (
        "/opt/ml/input/data/code/sourcedir.tar.gz"  # the script arrives as channel `code`
    )
    assert hyperparameters["batch-size"] == "32"  # the spec's 8 per GPU × 4 GPUs
    assert hyperparameters["adam-learning-rate"] == "2e-05"
    assert request["EnableNetworkIsolation"] is True
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 360000
    assert {"Key": "sagemaker-sdk:jumpstart-model-version", "Value": "2.0.3"} in request["Tags"]
    reasons = {p.field_path: p.reason for p in plan.provenance}
    assert "per GPU" in reasons["training.hyperparameters.batch-size"]


def test_no_data_takes_the_default_data_set_with_a_note(tmp_path):
    spec = _spec(tmp_path, defaults={})
    raw = yaml.safe_load(spec.read_text())
    del raw["training"]["data"]
    spec.write_text(yaml.safe_dump(raw))
    plan = compile_file(spec)
    channels = {c["ChannelName"]: c for c in request_of(plan)["InputDataConfig"]}
    assert channels["training"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://jumpstart-cache-prod-us-east-1/training-datasets/QNLI/"
    )
    assert any(w.code == "data.default_dataset" for w in plan.warnings)


def test_a_train_channel_is_sent_as_training(tmp_path):
    plan = compile_file(_spec(tmp_path, defaults={}, data={"train": "s3://acme/t/"}))
    names = [c["ChannelName"] for c in request_of(plan)["InputDataConfig"]]
    assert names == ["training", "model", "code"]


@pytest.mark.parametrize(
    ("training", "code", "field", "hint"),
    [
        ({"model": {"pretrained": "huggingface-spc-bert-base-case"}}, "catalog.unknown_model",
         "training.model.pretrained", "did you mean 'huggingface-spc-bert-base-cased'?"),
        ({"model": {"pretrained": f"{BERT}@1.0.0"}}, "catalog.unknown_model_version",
         "training.model.pretrained", f"did you mean '{BERT}@2.0.3'?"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameter.out_of_range",
         "training.hyperparameters.epochs", "an integer in [1, 1000]"),
        ({"hyperparameters": {"adam-learning-rate": "fast"}}, "hyperparameter.out_of_range",
         "training.hyperparameters.adam-learning-rate", "a number in [1e-08, 1]"),
        ({"hyperparameters": {"reinitialize-top-layer": "Maybe"}},
         "hyperparameter.out_of_range", "training.hyperparameters.reinitialize-top-layer",
         "one of 'Auto', 'True', 'False'"),
        ({"per_device_batch_size": 512}, "hyperparameter.out_of_range",
         "training.hyperparameters.batch-size", "[1, 1024]"),
        ({"compute": {"instance_type": "ml.g5.2xlarge"}}, "catalog.unsupported_instance_type",
         "training.compute.instance_type", "did you mean 'ml.g4dn.2xlarge'?"),
        ({"region": "ap-southeast-7"}, "image.unknown_region", "training.region",
         "regions with one: "),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v and " " not in v else "",
)  # fmt: skip
def test_bad_input_is_a_located_error(tmp_path, training, code, field, hint):
    errors = _errors(_spec(tmp_path, defaults={}, **training))
    assert code in errors, errors
    found = errors[code]
    assert found.field_path == field and hint in found.hint
    assert found.location is not None and found.location.line > 0


def test_batch_above_the_spec_maximum_says_it_was_scaled(tmp_path):
    errors = _errors(_spec(tmp_path, defaults={}, per_device_batch_size=512))
    assert "per-device 512 × 4 devices" in errors["hyperparameter.out_of_range"].message


def test_a_defaults_file_adds_a_jumpstart_spec(tmp_path):
    spec = json.loads((SPECS / f"{BERT}.json").read_text())
    spec["model_id"], spec["version"] = "acme-spc-bert", "9.9.9"
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "acme.json").write_text(json.dumps(spec, indent=1))
    defaults = {"catalog": {"jumpstart_specs": ["specs/acme.json"]}}
    plan = compile_file(_spec(tmp_path, defaults, model={"pretrained": "acme-spc-bert@9.9.9"}))
    tags = {t["Key"]: t["Value"] for t in request_of(plan)["Tags"]}
    assert tags["sagemaker-sdk:jumpstart-model-id"] == "acme-spc-bert"


def test_a_json_that_is_not_a_jumpstart_spec_is_located(tmp_path):
    (tmp_path / "x.json").write_text('{\n  "name": "not a spec"\n}\n')
    spec = json.loads((SPECS / f"{BERT}.json").read_text())
    spec["hyperparameters"][0]["type"] = "complex"
    del spec["training_artifact_key"]
    (tmp_path / "broken.json").write_text(json.dumps(spec, indent=1))
    defaults = {"catalog": {"jumpstart_specs": ["x.json", "broken.json", "missing.json"]}}
    with pytest.raises(SpecError) as raised:
        compile_file(_spec(tmp_path, defaults))
    found = {(d.code, d.field_path): d for d in raised.value.diagnostics}
    not_spec = found[("catalog.not_a_jumpstart_spec", "")]
    assert not_spec.location.path.endswith("x.json") and not_spec.location.line == 1
    bad_type = found[("catalog.jumpstart_spec", "hyperparameters[0].type")]
    assert bad_type.location.path.endswith("broken.json") and bad_type.location.line > 1
    assert ("catalog.jumpstart_spec", "training_artifact_key") in found
    missing = found[("catalog.jumpstart_spec_missing", "catalog.jumpstart_specs[2]")]
    assert missing.location.path.endswith("trainspec.defaults.yaml")


def test_cli_exits_1_with_located_errors_and_no_traceback(tmp_path):
    spec = _spec(tmp_path, defaults={}, hyperparameters={"epochs": 5000})
    result = CliRunner().invoke(main, ["compile", str(spec)])
    assert result.exit_code == 1, result.output
    assert "job.yaml:" in result.output and "error[hyperparameter.out_of_range]" in result.output
    assert "Traceback" not in result.output


def test_catalog_models_lists_source_and_version():
    result = CliRunner().invoke(main, ["catalog", "models"])
    assert result.exit_code == 0, result.output
    assert f"{BERT}" in result.output and "2.0.3" in result.output
    assert "aws/sagemaker-python-sdk@v2.257.6" in result.output


def test_hyperparameter_rules():
    epochs = Hyperparameter("epochs", "int", 3, "algorithm", min=1, max=10)
    assert epochs.problem(3) == "" and epochs.problem("4") == ""
    assert "integer" in epochs.problem(2.5) and "maximum" in epochs.problem(11)
    assert "integer" in epochs.problem(True)
    flag = Hyperparameter("flag", "text", "True", "algorithm", options=("True", "False"))
    assert flag.problem("False") == "" and "not one of" in flag.problem("yes")


def test_autotune_keeps_inferred_ranges_within_the_spec_bounds(tmp_path):
    spec = tmp_path / "tune.yaml"
    training = {
        **BASE,
        "model": {"pretrained": "pytorch-ic-mobilenet-v2"},
        "compute": {"instance_type": "ml.m5.xlarge"},
        "hyperparameters": {"learning_rate": 0.9},  # the rule's decade would reach 9
    }
    tuning = {
        "name": "mobilenet-tune",
        "objective": {"metric": "pytorch-ic:val-accuracy", "type": "MAXIMIZE"},
        "autotune": True,
        "training": training,
    }
    spec.write_text(yaml.safe_dump({"tuning": tuning}))
    plan = compile_file(spec, defaults=[])
    ranges = request_of(plan)["HyperParameterTuningJobConfig"]["ParameterRanges"]
    (rate,) = [r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "learning_rate"]
    assert (float(rate["MinValue"]), float(rate["MaxValue"])) == (0.09, 1.0)
    reasons = {p.field_path: p.reason for p in plan.provenance}
    assert "JumpStart spec's min and max" in reasons["tuning.ranges.learning_rate"]


def test_incremental_training_only_where_the_spec_allows_it(tmp_path):
    """`model.from_*` on a JumpStart model follows its spec's incremental_training_supported."""
    artifact = "s3://acme-ml-artifacts/jobs/earlier/output/model.tar.gz"
    spec = json.loads((SPECS / f"{BERT}.json").read_text())
    assert spec["incremental_training_supported"] is True
    allowed = compile_file(
        _spec(tmp_path, defaults={}, model={"pretrained": BERT, "from_artifact": artifact})
    )
    channels = {c["ChannelName"]: c for c in request_of(allowed)["InputDataConfig"]}
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"] == artifact

    spec["model_id"], spec["incremental_training_supported"] = "acme-frozen", False
    (tmp_path / "frozen.json").write_text(json.dumps(spec, indent=1))
    defaults = {"catalog": {"jumpstart_specs": ["frozen.json"]}}
    errors = _errors(
        _spec(tmp_path, defaults, model={"pretrained": "acme-frozen", "from_artifact": artifact})
    )
    found = errors["model.incremental_unsupported"]
    assert found.field_path == "training.model.from_artifact"
    assert "acme-frozen" in found.message and found.location is not None
