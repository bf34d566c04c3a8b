"""The SageMaker Python SDK, in its own virtualenv, as the reference the parity tests use.

The SDK is never a dependency of trainspec: it runs as a subprocess with the interpreter
named by TRAINSPEC_SDK_PYTHON (.ci/run installs it, pinned by .ci/sdk-requirements.txt),
else `.venv-sdk/bin/python` when present. Without one the parity tests skip, except
under CI=true, where a missing SDK fails them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent


def _sdk_python() -> str | None:
    named = os.environ.get("TRAINSPEC_SDK_PYTHON")
    if named:
        return named
    local = ROOT / ".venv-sdk" / "bin" / "python"
    return str(local) if local.exists() else None


@pytest.fixture(scope="session")
def run_sdk(tmp_path_factory):
    """run_sdk(script, cases) -> the script's JSON answer, computed by the SDK."""
    python = _sdk_python()
    if python is None:
        if os.environ.get("CI") == "true":
            pytest.fail("TRAINSPEC_SDK_PYTHON is not set: .ci/run installs the SDK's venv")
        pytest.skip("no SageMaker Python SDK venv (.venv-sdk or TRAINSPEC_SDK_PYTHON)")
    folder = tmp_path_factory.mktemp("sdk")

    def run(script: str, cases: list) -> list:
        given, answer = folder / f"{script}.in.json", folder / f"{script}.out.json"
        given.write_text(json.dumps(cases), encoding="utf-8")
        env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "AWS_DEFAULT_REGION": ""}
        env.pop("AWS_DEFAULT_REGION")
        done = subprocess.run(
            [python, str(HERE / script), str(given), str(answer)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            check=False,
        )
        if done.returncode:
            sys.stderr.write(done.stderr[-4000:])
            pytest.fail(f"{script} failed in the SDK's venv (exit {done.returncode})")
        return json.loads(answer.read_text(encoding="utf-8"))

    return run
