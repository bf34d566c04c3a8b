"""A sifting job's script imports trainspec's sifting package inside SageMaker's container,
where trainspec is not installed: proven by running the digits example from nothing but
the archive trainspec would upload, in an interpreter that has torch and numpy only."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from trainspec.trainer._sagemaker import source_archive
from trainspec.trainer._vendor import extra_source_files

pytestmark = pytest.mark.torch  # both run the digits example's training

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
SIFTING = {
    "mode": "SIFTING_MODE_RELATIVE_PROBABILISTIC",
    "beta_value": 1.0,
    "loss_history_length": 50,
}


def run_unpacked(archive: bytes, tmp_path: Path) -> str:
    code = tmp_path / "code"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(code, filter="data")
    (tmp_path / "model").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        # The container's packages (torch, numpy), read without running site: this
        # environment's .pth files, which would install trainspec itself, are skipped.
        "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
        "TRAINSPEC_SIFTING": json.dumps(SIFTING),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(code / "data" / "train"),
        "SM_CHANNEL_VALIDATION": str(code / "data" / "validation"),
        "SAGEMAKER_BASE_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-S", "train.py", "--epochs", "1"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_uploaded_source_carries_the_sifting_package(tmp_path) -> None:
    archive = source_archive(DIGITS, extra_source_files(DIGITS, sifting=True))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "trainspec/trainer/sifting/_sift_dataloader.py" in names
    output = run_unpacked(archive, tmp_path)
    assert "sifting: RelativeProbabilisticSiftConfig" in output
    assert "not installed" not in output


def test_without_it_the_script_trains_without_sifting(tmp_path) -> None:
    output = run_unpacked(source_archive(DIGITS), tmp_path)  # what SageMaker got before
    assert "not installed" in output
