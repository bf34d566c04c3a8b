"""The request a user copies out of `trainspec compile` or `submit --dry-run` is what boto3
takes: botocore's own ParamValidator accepts it as printed, in every output format."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from click.testing import CliRunner
from google.protobuf import json_format, text_format
from trainspec._cli import cli
from trainspec.v1 import plan_pb2

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    str(p.relative_to(ROOT))
    for p in (ROOT / "examples").rglob("*.yaml")
    if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
)
SERVICE = botocore.session.get_session().get_service_model("sagemaker")


def param_errors(operation: str, request: dict) -> str:
    """ParamValidator's report for `request`; empty when boto3 would send it."""
    shape = SERVICE.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else ""


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("spec", EXAMPLES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_printed_request_passes_param_validator(spec, fmt):
    text = invoke("compile", spec, "--format", fmt)
    plan = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    request = plan["sagemaker_request"]
    assert param_errors(plan["sagemaker_operation"], request) == ""
    # The canonical string beside it is the same request.
    assert json.loads(plan["sagemaker_request_json"]) == request


@pytest.mark.parametrize("spec", EXAMPLES)
def test_textproto_carries_the_typed_request(spec):
    plan = text_format.Parse(invoke("compile", spec, "--format", "textproto"), plan_pb2.Plan())
    request = json.loads(plan.sagemaker_request_json)
    assert param_errors(plan.sagemaker_operation, request) == ""
    # The Struct holds the same values, as doubles: what the JSON string is there for.
    struct = json_format.MessageToDict(plan.sagemaker_request)
    assert struct == request
    assert param_errors(plan.sagemaker_operation, struct) != ""


@pytest.mark.parametrize("spec", EXAMPLES)
def test_dry_run_prints_the_typed_request(spec):
    text = invoke("submit", spec, "--dry-run")
    operation, _, body = text[text.index("Create") :].partition(" ")
    assert param_errors(operation, json.loads(body)) == ""


def test_integers_print_as_integers():
    text = invoke("compile", "examples/digits/job.yaml", "--format", "yaml")
    resources = yaml.safe_load(text)["sagemaker_request"]["ResourceConfig"]
    assert resources == {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
    assert type(resources["InstanceCount"]) is int
    assert "InstanceCount: 1\n" in text
