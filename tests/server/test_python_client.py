"""The Python client example against a live server."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

CLIENT = pathlib.Path(__file__).parents[2] / "examples" / "clients" / "python" / "client.py"
DATA = pathlib.Path(__file__).parent / "data"


def run_client(port: int, spec: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLIENT), "--address", f"127.0.0.1:{port}", str(DATA / spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_client_prints_a_plan_and_the_violations(server):
    good = run_client(server.port, "valid.yaml")
    assert good.returncode == 0, good.stderr
    assert "operation: CreateTrainingJob" in good.stdout
    # The request as boto3 takes it: integers stay integers (a Struct would say 1.0).
    request = json.loads(good.stdout[good.stdout.index("{") :])
    assert request["ResourceConfig"]["InstanceCount"] == 1
    assert '"InstanceCount": 1,' in good.stdout
    bad = run_client(server.port, "invalid.yaml")
    assert bad.returncode == 1, bad.stderr
    assert "training.hyperparamters: unknown field 'hyperparamters' [spec.unknown_field]" in (
        bad.stdout
    )
    assert "invalid.yaml:11:3 spec.unknown_field" in bad.stdout
