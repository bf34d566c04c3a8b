"""Plans are the same from any working directory and any checkout path: byte for byte,
digest included, because they name local files relative to the project root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from trainspec._cmd_compile import plan_text
from trainspec.compiler import compile_file, spec_root
from trainspec.compiler._places import plan_name, project_root

ROOT = Path(__file__).resolve().parents[2]
SPECS = ["examples/digits/job.yaml", "examples/digits/tune.yaml", "examples/tuning/grid.yaml"]


def checkout(at: Path, *, git: bool = True) -> Path:
    """A copy of the repository's examples at `at`, a repository root when `git`."""
    shutil.copytree(ROOT / "examples", at / "examples", ignore=shutil.ignore_patterns("node_*"))
    if git:
        (at / ".git").mkdir()
    return at


def compiled(spec: Path, cwd: Path, monkeypatch) -> str:
    monkeypatch.chdir(cwd)
    return plan_text(compile_file(spec), "json")


@pytest.mark.parametrize("spec", SPECS)
def test_same_plan_from_two_working_directories(spec, tmp_path, monkeypatch):
    from_root = compiled(Path(spec), ROOT, monkeypatch)
    elsewhere = compiled(ROOT / spec, tmp_path, monkeypatch)
    beside = compiled(Path(Path(spec).name), (ROOT / spec).parent, monkeypatch)
    assert from_root == elsewhere == beside
    assert str(ROOT) not in from_root and str(tmp_path) not in from_root


@pytest.mark.parametrize("spec", SPECS)
def test_same_plan_from_two_checkout_paths(spec, tmp_path, monkeypatch):
    one = checkout(tmp_path / "a")
    two = checkout(tmp_path / "b" / "deeper" / "other-name")
    first = compiled(one / spec, one, monkeypatch)
    second = compiled(Path(spec), two, monkeypatch)
    assert first == second
    # ... and the same plan as this repository's own: the checkout's place is not in it.
    assert first == compiled(ROOT / spec, tmp_path, monkeypatch)
    assert '"path": "examples/trainspec.defaults.yaml"' in first


def test_same_digest_from_two_copies_outside_any_repository(tmp_path, monkeypatch):
    # No .git: the folder of the nearest trainspec.defaults.yaml is the project root.
    one = checkout(tmp_path / "x", git=False)
    two = checkout(tmp_path / "y" / "z", git=False)
    spec = "examples/digits/job.yaml"
    assert project_root((one / spec).parent) == str((one / "examples").resolve())
    plans = [compile_file(copy / spec) for copy in (one, two)]
    assert plans[0].digest == plans[1].digest
    assert plans[0].job.training.model.framework.source_dir == "digits"
    assert plans[0].job.training.data["train"].uri == "digits/data/train"


def test_local_paths_are_named_from_the_root_in_posix_form(tmp_path):
    root = checkout(tmp_path / "repo")
    plan = compile_file(root / "examples/digits/job.yaml")
    assert plan.job.training.model.framework.source_dir == "examples/digits"
    assert plan.job.training.data["validation"].uri == "examples/digits/data/validation"
    assert spec_root(root / "examples/digits/job.yaml") == str(root.resolve())


def test_data_reports_name_the_folder_from_the_root(tmp_path, monkeypatch):
    root = checkout(tmp_path / "repo")
    text = root / "examples" / "training" / "text"
    text.mkdir()
    # the example fine-tunes a sentence-pair model: label, sentence 1, sentence 2
    (text / "data.csv").write_text("1,great film,yes\n0,dull,no\n1,loved it,yes\n")
    spec = root / "examples" / "training" / "local-text.yaml"
    spec.write_text(
        (root / "examples/training/finetune-text.yaml")
        .read_text()
        .replace("s3://acme-ml/qnli/train/", "text/")
    )
    monkeypatch.chdir(tmp_path)
    plan = compile_file(spec)
    assert [(r.channel, r.path, r.samples) for r in plan.data_reports] == [
        ("training", "examples/training/text", 3)
    ]
    assert str(tmp_path) not in plan_text(plan, "json")


def test_a_path_outside_the_root_keeps_its_absolute_name(tmp_path):
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    outside = tmp_path / "datasets" / "digits"
    outside.mkdir(parents=True)
    assert plan_name(str(outside), str(root)) == str(outside.resolve())
    assert plan_name(str(root / "a" / "b"), str(root)) == "a/b"
    assert plan_name(str(root), str(root)) == "."


def test_the_spec_folder_is_the_root_when_nothing_marks_one(tmp_path):
    folder = tmp_path / "lonely"
    folder.mkdir()
    assert project_root(folder) == str(folder.resolve())
