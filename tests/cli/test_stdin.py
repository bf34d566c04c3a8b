"""`-` reads a spec from standard input: the same plan and the same located errors as the
file it stands for (`--stdin-filename`), through a real subprocess pipe."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path("examples/training/distributed.yaml")  # relative paths: a source_dir, defaults


def trainspec(*args: str, stdin: bytes = b"", cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-m", "trainspec", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=120,
    )


def test_compile_from_stdin_equals_compiling_the_file():
    from_file = trainspec("compile", str(SPEC), "--format", "json")
    piped = trainspec(
        "compile", "-", "--stdin-filename", str(SPEC), "--format", "json",
        stdin=(ROOT / SPEC).read_bytes(),
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr.decode()
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout == from_file.stdout  # byte-identical plans, the spec named alike


def test_validate_stdin_errors_are_located_under_the_given_name(tmp_path):
    text = b'{"training": {"name": "a", "bogus": 1}}'
    result = trainspec(
        "validate", "-", "--stdin-filename", "jobs/a.json", "--format", "json", stdin=text
    )
    assert result.returncode == 1
    diagnostics = json.loads(result.stdout)
    unknown = [d for d in diagnostics if d["code"] == "spec.unknown_field"]
    assert unknown and unknown[0]["location"] == {"path": "jobs/a.json", "line": 1, "column": 28}


def test_stdin_without_a_name_is_yaml_named_stdin():
    result = trainspec("validate", "-", stdin=b"training:\n  name: a\n  bogus: 1\n")
    assert result.returncode == 1
    assert b"<stdin>:3:3: error[spec.unknown_field] training.bogus" in result.stderr
    assert b"Traceback" not in result.stderr


def test_stdin_beside_files_and_folders():
    folder_only = trainspec("validate", "examples")
    checked = int(folder_only.stderr.split(b" file(s) checked")[0])
    result = trainspec(
        "validate", "examples", "-", "--stdin-filename", str(SPEC),
        stdin=(ROOT / SPEC).read_bytes(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert f"{checked + 1} file(s) checked, 0 problem(s)".encode() in result.stderr


def test_oversized_stdin_is_a_located_error():
    result = trainspec("validate", "-", stdin=b"#" * (1 << 20) + b"\n" * 8)
    assert result.returncode == 1
    assert b"<stdin>" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "-", "-"], b"can be named once"),
        (["compile", str(SPEC), "--stdin-filename", "a.yaml"], b"name `-` too"),
        (["compile", "-", "--stdin-filename", ""], b"give a file name"),
    ],
)
def test_misuse_is_a_usage_error(args, message):
    result = trainspec(*args)
    assert result.returncode == 2
    assert message in result.stderr
