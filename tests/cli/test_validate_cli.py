"""`trainspec validate`, `compile` and `schema` through click and as a real subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from trainspec._cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
)
BAD = {
    "both.yaml": "training: {name: a}\ntuning: {name: b}\n",
    "typo.yaml": "training:\n  nam: a\n",
    "list.yaml": "training:\n  compute:\n    - instance_type: ml.m5.large\n",
    "enum.yaml": "training:\n  data: {train: {uri: s3://bucket-a/x/, input_mode: Stream}}\n",
    "empty.yaml": "",
    "tabs.yaml": "training:\n\tname: a\n",
}


def test_valid_examples_exit_zero():
    result = CliRunner().invoke(cli, ["validate", str(ROOT / "examples")])
    assert result.exit_code == 0, result.output


def test_bad_specs_exit_one_with_located_json_diagnostics(tmp_path):
    for name, text in BAD.items():
        (tmp_path / name).write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1
    diagnostics = json.loads(result.stdout)
    files = {Path(d["location"]["path"]).name for d in diagnostics}
    assert files == set(BAD)
    assert all(d["location"]["line"] >= 1 for d in diagnostics if d["code"] != "load.empty")


def test_text_output_format(tmp_path):
    (tmp_path / "typo.yaml").write_text(BAD["typo.yaml"])
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "typo.yaml")])
    assert result.exit_code == 1
    assert "typo.yaml:2:3: error[spec.unknown_field] training.nam: unknown field 'nam'" in (
        result.stderr
    )
    assert "hint: did you mean 'name'?" in result.stderr


def test_usage_error_exits_two():
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 2
    assert CliRunner().invoke(cli, ["compil"]).exit_code == 2


def test_schema_accepts_every_example_and_rejects_the_bad_corpus(tmp_path):
    result = CliRunner().invoke(cli, ["schema"])
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for spec in EXAMPLE_SPECS:
        assert list(validator.iter_errors(yaml.safe_load(spec.read_text()))) == [], spec
    for name in ("both.yaml", "typo.yaml", "list.yaml", "enum.yaml"):
        assert list(validator.iter_errors(yaml.safe_load(BAD[name]))), name


def test_compile_subprocess_is_deterministic_and_never_imports_torch():
    spec = str(ROOT / "examples/training/finetune-vision.yaml")
    code = (
        "import sys; from trainspec._cli import main; sys.argv=['trainspec','compile',"
        f"{spec!r},'--format','json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'grpc' not in sys.modules, 'heavy import'"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        )
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout
    assert json.loads(runs[0].stdout)["sagemaker_operation"] == "CreateTrainingJob"


@pytest.mark.parametrize("fmt", ["yaml", "json", "textproto"])
def test_compile_formats(fmt):
    result = CliRunner().invoke(
        cli, ["compile", str(ROOT / "examples/training/xgboost-cpu.yaml"), "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    assert "CreateTrainingJob" in result.stdout


def test_explain_names_an_origin_for_every_value():
    result = CliRunner().invoke(
        cli, ["compile", str(ROOT / "examples/training/finetune-text.yaml"), "--explain"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    origins = [line for line in lines if line.strip().startswith("<-")]
    assert len(origins) == len(lines) // 2
    assert any("rule:batch.scale_by_devices" in line for line in origins)


def test_folders_skip_plan_outputs(tmp_path):
    spec = ROOT / "examples/training/xgboost-cpu.yaml"
    for fmt in ("yaml", "json", "textproto"):
        compiled = CliRunner().invoke(
            cli, ["compile", str(spec), "--out", str(tmp_path), "--format", fmt]
        )
        assert compiled.exit_code == 0, compiled.output
    assert len(list(tmp_path.glob("*.plan.*"))) == 3
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "0 file(s) checked, 0 problem(s)"


def test_folders_report_dangling_and_looping_links(tmp_path):
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "moved-away.yaml")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    (tmp_path / "specs").symlink_to(tmp_path / "no-such-folder")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "gone.txt")  # not a spec: ignored
    result = CliRunner().invoke(cli, ["validate", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1, result.output
    found = {Path(d["location"]["path"]).name: d for d in json.loads(result.stdout)}
    assert set(found) == {"dangling.yaml", "loop.yaml", "specs"}
    assert {d["code"] for d in found.values()} == {"load.broken_link"}
    assert "points to nothing" in found["dangling.yaml"]["message"]
    assert "loops back on itself" in found["loop.yaml"]["message"]
    text = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert text.exit_code == 1
    assert "3 file(s) checked, 3 problem(s) in 3 file(s)" in text.stderr


def test_a_defaults_file_mistake_is_reported_once_for_the_folder(tmp_path):
    (tmp_path / "trainspec.defaults.yaml").write_text("training:\n  regin: us-east-1\n")
    spec = (ROOT / "examples/training/xgboost-cpu.yaml").read_text()
    (tmp_path / "a.yaml").write_text(spec)
    (tmp_path / "b.yaml").write_text(spec)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert [(Path(d["location"]["path"]).name, d["code"]) for d in found] == [
        ("trainspec.defaults.yaml", "spec.unknown_field")
    ]


def test_validate_takes_compile_s_options(tmp_path):
    spec = str(ROOT / "examples/training/xgboost-cpu.yaml")
    over = ["validate", spec, "--set", "training.compute.instance_count=two"]
    assert CliRunner().invoke(cli, over).exit_code == 1
    assert CliRunner().invoke(cli, ["compile", *over[1:]]).exit_code == 1
    costly = ["validate", spec, "--max-cost", "0.01"]
    assert CliRunner().invoke(cli, costly).exit_code == 1
    assert CliRunner().invoke(cli, ["compile", *costly[1:]]).exit_code == 1
    assert CliRunner().invoke(cli, ["validate", spec, "--max-cost", "100000"]).exit_code == 0


def test_schema_carries_the_limits_that_keep_requests_valid():
    schema = json.loads(CliRunner().invoke(cli, ["schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    corpus = ROOT / "tests/compiler/data/agreement"
    for name in ("environment_value_too_long.yaml", "channels_21.yaml"):
        assert list(validator.iter_errors(yaml.safe_load((corpus / name).read_text()))), name
    too_big = {"tuning": {"name": "a", "random_seed": 2**31}}  # int32, no rule of its own
    assert list(validator.iter_errors(too_big))


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_a_deeply_nested_set_value_is_a_located_error(command):
    spec = str(ROOT / "examples/training/xgboost-cpu.yaml")
    for depth in (70, 5000):  # past the loader's limit, and past Python's recursion limit
        value = "[" * depth + "]" * depth
        result = CliRunner().invoke(
            cli, [command, spec, "--set", f"training.hyperparameters.x={value}"]
        )
        assert result.exit_code == 1, result.output
        assert "error[load.too_deep] training.hyperparameters.x:" in result.stderr
        assert "internal error" not in result.stderr


def test_mistakes_in_the_spec_defaults_and_set_come_in_one_run(tmp_path):
    (tmp_path / "trainspec.defaults.yaml").write_text("training:\n  regin: us-east-1\n")
    (tmp_path / "job.yaml").write_text("training:\n  nam: job\n")
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(tmp_path / "job.yaml"),
            "--set",
            "training.compute.instance_count=two",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1
    found = {(d["field_path"], d["code"]) for d in json.loads(result.stdout)}
    assert found == {
        ("training.nam", "spec.unknown_field"),
        ("training.regin", "spec.unknown_field"),
        ("training.compute.instance_count", "spec.type"),
    }


def test_a_folder_inside_a_hidden_one_and_an_unreadable_json(tmp_path):
    folder = tmp_path / ".config" / "specs"
    folder.mkdir(parents=True)
    (folder / "job.yaml").write_text("training:\n  nam: job\n")
    locked = folder / "locked.json"
    locked.write_text('{"training": {}}')
    locked.chmod(0)
    try:
        result = CliRunner().invoke(cli, ["validate", str(folder), "--format", "json"])
    finally:
        locked.chmod(0o600)
    assert result.exit_code == 1, result.output
    codes = {Path(d["location"]["path"]).name: d["code"] for d in json.loads(result.stdout)}
    assert codes["job.yaml"] == "spec.unknown_field"
    if os.geteuid() != 0:  # root reads it anyway
        assert codes["locked.json"] == "load.unreadable"
