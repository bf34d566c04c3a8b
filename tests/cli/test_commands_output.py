"""Every command's text and JSON output through click, and closed pipes as a real process.

One test per output of each command (`serve` and `run` are exercised in tests/server and
tests/trainer; `describe`/`stop` against SageMaker in tests/test_sagemaker_cli.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import text_format
from trainspec._cli import cli
from trainspec.compiler import load_catalog
from trainspec.trainer._job_store import JobStore
from trainspec.v1 import plan_pb2

ROOT = Path(__file__).resolve().parents[2]
XGBOOST = str(ROOT / "examples/training/xgboost-cpu.yaml")
HYPERBAND = str(ROOT / "examples/tuning/hyperband.yaml")
STAGES = ["load", "validate", "resolve", "infer", "check", "lower", "emit"]


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert "internal error:" not in result.output, result.output
    return result


def test_every_command_has_help():
    names = cli.list_commands(None)
    assert {"validate", "compile", "schema", "catalog", "jobs"} <= set(names)
    for name in names:
        assert run(name, "--help").exit_code == 0, name


@pytest.mark.parametrize("which", ["instances", "models"])
def test_catalog_text_lists_every_entry(which):
    result = run("catalog", which)
    assert result.exit_code == 0, result.output
    entries = getattr(load_catalog(), which)
    lines = result.stdout.splitlines()
    assert len(lines) == len(entries) + 1  # a header line
    assert {line.split()[0] for line in lines[1:]} == set(entries)
    assert "catalog version" in result.stderr


@pytest.mark.parametrize("which", ["instances", "models"])
def test_catalog_json_lists_every_entry(which):
    result = run("catalog", which, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    catalog = load_catalog()
    assert data["version"] == catalog.versions[which]
    key = "name" if which == "instances" else "id"
    assert [row[key] for row in data[which]] == sorted(getattr(catalog, which))
    if which == "models":  # the frozen mappings inside each entry come out as objects
        first = data["models"][0]
        assert first["default_hyperparameters"][first["batch_size_hyperparameter"]] > 0


def test_catalog_instances_min_gpus():
    result = run("catalog", "instances", "--min-gpus", "8", "--format", "json")
    assert all(row["gpus"] >= 8 for row in json.loads(result.stdout)["instances"])


def test_schema_is_json():
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["type"] == "object"


def test_validate_text_and_json_of_a_valid_spec():
    text = run("validate", XGBOOST)
    assert text.exit_code == 0, text.output
    assert text.stderr.strip() == "1 file(s) checked, 0 problem(s)"
    as_json = run("validate", XGBOOST, "--format", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == []


@pytest.mark.parametrize("fmt", ["yaml", "json", "textproto"])
def test_compile_formats_print_the_same_plan(fmt):
    result = run("compile", HYPERBAND, "--format", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "textproto":
        plan = text_format.Parse(result.stdout, plan_pb2.Plan())
        digest, operation = plan.digest, plan.sagemaker_operation
    else:
        data = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
        digest, operation = data["digest"], data["sagemaker_operation"]
    assert operation == "CreateHyperParameterTuningJob"
    assert (
        digest
        == run("compile", HYPERBAND, "--format", "json")
        .stdout.split('"digest": "')[1]
        .split('"')[0]
    )


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("spec", [XGBOOST, HYPERBAND], ids=["xgboost", "hyperband"])
def test_compile_until_every_stage_prints_yaml(stage, spec):
    result = run("compile", spec, "--until", stage)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)


def test_compile_explain_and_trials():
    explain = run("compile", XGBOOST, "--explain")
    assert explain.exit_code == 0
    assert "<- " in explain.stdout
    trials = run("compile", HYPERBAND, "--trials", "3")
    assert trials.exit_code == 0
    assert trials.stderr.strip()


def test_compile_out_writes_plan_files(tmp_path):
    result = run("compile", XGBOOST, HYPERBAND, "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["hyperband.plan.json", "xgboost-cpu.plan.json"]
    assert all(json.loads((tmp_path / name).read_text())["digest"] for name in written)


def test_submit_dry_run_prints_the_request():
    result = run("submit", XGBOOST, "--dry-run")
    assert result.exit_code == 0, result.output
    operation, _, request = result.stdout.partition(" ")
    assert operation == "CreateTrainingJob"
    assert json.loads(request[: request.rindex("}") + 1])["TrainingJobName"]


@pytest.fixture
def job_root(tmp_path) -> Path:
    store = JobStore.for_root(tmp_path)
    store.start("tune", "tuning", job_dir=str(tmp_path / "tune"))
    store.start("tune-000", "trial", parent="tune", hyperparameters={"lr": "0.1"})
    store.finish("tune-000", "Completed", metrics={"loss": 0.5}, objective=0.5)
    store.finish("tune", "Completed", objective=0.5)
    return tmp_path


def test_jobs_list_text_and_json(job_root):
    text = run("jobs", "list", "--root", str(job_root))
    assert text.exit_code == 0, text.output
    assert text.stdout.split()[:5] == ["NAME", "KIND", "STATUS", "CREATED", "OBJECTIVE"]
    assert {"tune", "tune-000"} <= set(text.stdout.split())
    as_json = run("jobs", "list", "--root", str(job_root), "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {r["name"]: r["kind"] for r in records} == {"tune": "tuning", "tune-000": "trial"}


def test_jobs_describe_text_and_json(job_root):
    text = run("jobs", "describe", "tune", "--root", str(job_root))
    assert text.exit_code == 0, text.output
    assert "name:      tune" in text.stdout
    assert "trial      tune-000 Completed objective=0.5" in text.stdout
    as_json = run("jobs", "describe", "tune", "--root", str(job_root), "--json")
    data = json.loads(as_json.stdout)
    assert data["trials"][0]["metrics"] == {"loss": 0.5}


def test_jobs_stop_of_a_finished_job(job_root):
    result = run("jobs", "stop", "tune", "--root", str(job_root))
    assert result.exit_code == 0
    assert "is not running (Completed)" in result.stdout


def _closed_pipe(args: list[str], env: dict[str, str] | None = None):
    """Run `trainspec ARGS` with stdout a pipe whose reader is already gone: every write
    fails as it does after `| head -1` has read its line and exited."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "trainspec", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "instances"],
        ["catalog", "models", "--format", "json"],
        ["schema"],
        ["compile", XGBOOST],
        ["jobs", "list"],
        ["jobs", "list", "--json"],
    ],
    ids=lambda args: " ".join(Path(a).name for a in args),
)
def test_a_closed_pipe_ends_quietly(args, job_root):
    done = _closed_pipe(args, {"TRAINSPEC_ROOT": str(job_root)})
    assert done.returncode == 0, done.stderr
    # Only what a command says on stderr anyway (catalog's version line) may remain.
    assert done.stderr.replace("catalog version", "").strip(" .-0123456789\n") == "", done.stderr


def test_a_closed_pipe_under_head_as_users_run_it(job_root):
    shell = subprocess.run(
        f"set -o pipefail; {sys.executable} -m trainspec catalog instances | head -1",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.startswith("instance type")
    assert "bug" not in shell.stderr
