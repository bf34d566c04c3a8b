"""`trainspec compile` output is byte-identical across processes, in every format.

Protobuf maps and Structs iterate in an order that can change from one process to the
next, so this must be checked with separate interpreters, not two calls in one.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compile(fmt: str, seed: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "trainspec", "compile", "examples/digits/job.yaml", "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


@pytest.mark.parametrize("fmt", ["yaml", "json", "textproto"])
def test_two_processes_print_the_same_bytes(fmt):
    outputs = {_compile(fmt, seed) for seed in ("1", "2", "3")}
    assert len(outputs) == 1
    assert b"CreateTrainingJob" in outputs.pop()
