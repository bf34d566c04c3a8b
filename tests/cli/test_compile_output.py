"""`trainspec compile` output is byte-identical across processes, in every format and
`--explain`.

Protobuf maps and Structs iterate in an order that can change from one process to the
next, so this must be checked with separate interpreters, not two calls in one.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compile(options: list[str], seed: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "trainspec", "compile", "examples/digits/job.yaml", *options],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


@pytest.mark.parametrize(
    "options",
    [["--format", "yaml"], ["--format", "json"], ["--format", "textproto"], ["--explain"]],
    ids=["yaml", "json", "textproto", "explain"],
)
def test_two_processes_print_the_same_bytes(options):
    outputs = {_compile(options, seed) for seed in ("1", "2", "3")}
    assert len(outputs) == 1
    assert b"CreateTrainingJob" in outputs.pop() or "--explain" in options


def test_warnings_name_the_file_from_the_working_directory(monkeypatch):
    """The plan names files from the project root (so it is the same from anywhere); the
    warnings printed to a terminal name them from where the user is, as errors do."""
    import yaml
    from click.testing import CliRunner
    from trainspec._cli import cli

    monkeypatch.chdir(ROOT / "examples" / "tuning")
    result = CliRunner().invoke(
        cli, ["compile", "hyperband.yaml", "--set", "tuning.strategy=RANDOM"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("hyperband.yaml:7:29: warning[tuning.hyperband.unused]")
    (warning,) = yaml.safe_load(result.stdout)["warnings"]
    assert warning["location"]["path"] == "examples/tuning/hyperband.yaml"
