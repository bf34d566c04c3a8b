"""validate and compile print diagnostics as GitHub annotations and SARIF for CI systems."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BAD = (
    "training:\n  name: x\n  nmae: y\n"
    "  compute: {instance_type: ml.p3.2xlarge, volume_size_gb: 0}\n"
)


def trainspec(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainspec", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.parametrize("command", [["validate", "--format"], ["compile", "--error-format"]])
def test_github_annotations_point_at_the_line(tmp_path, command) -> None:
    (tmp_path / "bad, job.yaml").write_text(BAD)
    result = trainspec(*command, "github", "bad, job.yaml", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    unknown = next(line for line in lines if "spec.unknown_field" in line)
    # Properties escape ',' and ':'; the message escapes newlines as %0A.
    assert unknown.startswith("::error file=bad%2C job.yaml,line=3,col=3,title=trainspec ")
    assert unknown.endswith("::training.nmae: unknown field 'nmae'%0Ahint: did you mean 'name'?")
    assert all(line.startswith("::error ") for line in lines)


@pytest.mark.parametrize("command", [["validate", "--format"], ["compile", "--error-format"]])
def test_sarif_has_a_result_per_problem_with_its_region(tmp_path, command) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    result = trainspec(*command, "sarif", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "trainspec"
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert len(run["results"]) >= 2
    for item in run["results"]:
        assert rules[item["ruleIndex"]] == item["ruleId"] and item["level"] == "error"
        location = item["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "bad.yaml"
        assert location["region"]["startLine"] >= 2
    unknown = next(r for r in run["results"] if r["ruleId"] == "spec.unknown_field")
    assert unknown["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3,
        "startColumn": 3,
    }


def test_a_valid_spec_gives_an_empty_sarif_run(tmp_path) -> None:
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    result = trainspec(
        "validate", "--format", "sarif", str(root / "examples/digits/job.yaml"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runs"][0]["results"] == []


def test_log_level_is_taken_before_any_command(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    debug = trainspec("--log-level", "debug", "validate", "bad.yaml", cwd=tmp_path)
    assert debug.returncode == 1 and "spec.unknown_field" in debug.stderr
    bad = trainspec("--log-level", "loud", "validate", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and "loud" in bad.stderr


@pytest.mark.parametrize(
    ("argv", "configured"),
    [
        (["compile", "examples/digits/job.yaml"], []),  # offline: logging is left alone
        (["validate", "examples/digits/job.yaml"], []),
        (["compile", "--preflight", "examples/digits/job.yaml"], ["debug"]),  # boto3 logs
        (["catalog", "instances"], ["debug"]),
    ],
)
def test_logging_is_configured_where_something_logs(monkeypatch, argv, configured) -> None:
    from pathlib import Path

    from click.testing import CliRunner
    from trainspec import _cli
    from trainspec.compiler.check import _preflight

    calls: list[str] = []
    monkeypatch.setattr(_cli, "configure_logging", calls.append)
    monkeypatch.setattr(_preflight, "preflight", lambda inferred, locate: [])  # no network
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = CliRunner().invoke(_cli.cli, ["--log-level", "debug", *argv])
    assert result.exit_code == 0, result.output
    assert calls == configured
