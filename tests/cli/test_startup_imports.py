"""`trainspec validate` and `compile` start fast enough for a pre-commit hook because they
leave out what they do not use: no ML framework, gRPC, AWS client or tuner, no botocore
session or service model (the generated shape table stands in), and no cerberus for
valid specs. Checked in a fresh interpreter, as a hook runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(str(p) for p in (ROOT / "examples").glob("t*/*.yaml"))

NEVER = (
    "torch",
    "grpc",
    "boto3",
    "optuna",
    "sqlalchemy",
    "botocore.session",  # botocore's SageMaker model comes with it
    "botocore.client",
    "trainspec.server",
    "trainspec.trainer",
    "logging",  # nothing they use logs, so the command line leaves it unconfigured
)
# Only a spec with a mistake needs cerberus, to say what is wrong.
NOT_FOR_VALID_SPECS = ("cerberus",)
# Only a tuning spec needs the tuning passes (and their rules and dataclasses).
NOT_FOR_TRAINING_SPECS = ("trainspec.compiler.tuning",)


def _modules_after(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """(exit code, sys.modules at exit) of `trainspec ARGV...` in a new interpreter."""
    out = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = ['trainspec', *{list(argv)!r}]\n"
        "from trainspec._cli import main\n"
        "main()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return run.returncode, set(json.loads(out.read_text()))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)]


# botocore's model loads only where botocore is not the shape table's (constraints.txt's)
@pytest.mark.pinned
@pytest.mark.parametrize(
    "argv",
    [
        ("validate", *SPECS),
        ("compile", str(ROOT / "examples/digits/job.yaml")),
        ("compile", str(ROOT / "examples/tuning/mnist-autotune.yaml"), "--format", "json"),
    ],
    ids=["validate-examples", "compile-training", "compile-tuning"],
)
def test_validate_and_compile_load_only_what_they_use(tmp_path, argv):
    code, modules = _modules_after(tmp_path, *argv)
    assert code == 0
    assert "trainspec.compiler" in modules  # the check saw a real run
    assert _loaded(modules, NEVER + NOT_FOR_VALID_SPECS) == []
    if argv[0] == "compile":
        tuning = "tuning" in argv[1]
        assert bool(_loaded(modules, NOT_FOR_TRAINING_SPECS)) == tuning


def test_a_spec_with_a_mistake_still_gets_every_problem(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        (ROOT / "examples/digits/job.yaml").read_text() + "surprise: 1\n", encoding="utf-8"
    )
    code, modules = _modules_after(tmp_path, "validate", str(spec))
    assert code == 1
    assert "cerberus" in modules
    assert _loaded(modules, NEVER) == []
