"""What a new user meets first: hints that add to the message, `--explain` that shows
every value the request has, and `jobs list` on a fresh root."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from trainspec._cli import cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "examples/training/pytorch-script.yaml")


def _compile(*args: str):
    return CliRunner().invoke(cli, ["compile", SCRIPT, *args])


def _error_and_hint(output: str) -> tuple[str, str]:
    lines = output.splitlines()
    error = next(line for line in lines if "error[" in line)
    hint = next((line.strip() for line in lines if line.strip().startswith("hint:")), "")
    return error, hint.removeprefix("hint:").strip()


def test_the_name_hint_offers_a_fix_instead_of_repeating_the_rule():
    result = _compile("--set", "training.name=my_job!")
    assert result.exit_code == 1
    error, hint = _error_and_hint(result.output)
    assert "spec.pattern.sagemaker_name" in error
    assert "'my-job'" in hint
    assert hint.removeprefix("write ") not in error  # the old hint was the message again


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("two", False), ("'2'", True), ('"3"', True)],
)
def test_the_quotes_hint_only_when_the_number_was_quoted(value, quoted):
    result = _compile("--set", f"training.compute.instance_count={value}")
    assert result.exit_code == 1
    _, hint = _error_and_hint(result.output)
    assert ("without quotes" in hint) is quoted
    assert hint


def test_explain_names_an_override_once_and_shows_script_mode_values():
    result = _compile("--set", "training.compute.instance_count=2", "--explain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not any("--set --set" in line for line in lines)
    assert any(line.strip() == "<- --set training.compute.instance_count=2" for line in lines)
    values = {}
    for line in lines:
        if not line.startswith(" "):
            path, _, value = line.partition(" ")
            values[path] = value.strip()
    request_keys = ("sagemaker_program", "sagemaker_submit_directory", "sagemaker_region")
    for key in request_keys:
        assert values[f"sagemaker_request.HyperParameters.{key}"], key
    assert values["sagemaker_request.HyperParameters.sagemaker_program"] == '"train.py"'
