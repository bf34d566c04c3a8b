"""The Node client example (@grpc/grpc-js + @grpc/proto-loader) against a live server."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

NODE_DIR = pathlib.Path(__file__).parents[2] / "examples" / "clients" / "node"
DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules").is_dir():
        if node is None or shutil.which("npm") is None:
            if os.environ.get("CI"):  # CI installs Node: a missing one is a broken setup
                pytest.fail("node/npm are not installed, but CI must run the Node client")
            pytest.skip("node/npm are not installed; the Node client cannot run")
        pytest.fail(
            f"{NODE_DIR / 'node_modules'} is missing: run `npm ci` in {NODE_DIR} (.ci/run does)"
        )
    return node


def run_client(node: str, port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, "client.js", "--address", f"127.0.0.1:{port}", *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_client_compiles_a_spec_and_prints_the_plan(node, server):
    done = run_client(node, server.port, str(DATA / "valid.yaml"))
    assert done.returncode == 0, done.stderr
    assert "operation: CreateTrainingJob" in done.stdout
    assert "digest: sha256:" in done.stdout
    assert '"InstanceType": "ml.p3.8xlarge"' in done.stdout
    assert '"TrainingJobName": "grpc-sentiment' in done.stdout


def test_node_client_prints_the_request_boto3_takes(node, server):
    import json

    import botocore.session
    from botocore.validate import ParamValidator
    from trainspec.compiler import compile_file

    done = run_client(node, server.port, str(DATA / "valid.yaml"))
    assert done.returncode == 0, done.stderr
    body = done.stdout.split("sagemaker_request:\n", 1)[1]
    request, _ = json.JSONDecoder().raw_decode(body)
    plan = compile_file(DATA / "valid.yaml")
    assert request == json.loads(plan.sagemaker_request_json)
    assert request["ResourceConfig"]["InstanceCount"] == 1
    shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .operation_model("CreateTrainingJob")
        .input_shape
    )
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_node_client_decodes_the_error_details_of_a_bad_spec(node, server):
    done = run_client(node, server.port, str(DATA / "invalid.yaml"))
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert out.startswith("INVALID_ARGUMENT: the spec is invalid")
    assert "ErrorInfo: reason=INVALID_SPEC domain=trainspec.dev" in out
    assert (
        "BadRequest violation: field=training.hyperparamters reason=spec.unknown_field "
        "description=unknown field 'hyperparamters'"
    ) in out
    assert "BadRequest violation: field=training.per_device_batch_size" in out
    assert (
        "Diagnostic: invalid.yaml:11:3 SEVERITY_ERROR[spec.unknown_field] "
        "training.hyperparamters: unknown field 'hyperparamters' "
        "(hint: did you mean 'hyperparameters'?)"
    ) in out
    assert "RequestInfo: request_id=" in out


def test_node_client_sends_a_bearer_token_over_tls(node, start_server, pki):
    running = start_server(tls_cert=pki["server_cert"], tls_key=pki["server_key"], token="tok")
    ca = pathlib.Path(pki["folder"].decode()) / "ca.pem"
    spec = str(DATA / "valid.yaml")
    without = subprocess.run(
        [node, "client.js", "--address", f"localhost:{running.port}", "--ca", str(ca), spec],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without.returncode == 2 and "UNAUTHENTICATED" in without.stdout
    done = subprocess.run(
        [
            node,
            "client.js",
            "--address",
            f"localhost:{running.port}",
            "--ca",
            str(ca),
            "--token",
            "tok",
            "--validate-only",
            spec,
        ],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid (validate_only: no plan returned)" in done.stdout
