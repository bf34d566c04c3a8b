"""`trainspec diff` and `trainspec lock` on real git repositories, through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEFAULTS = """\
training:
  role_arn: arn:aws:iam::111122223333:role/Train
  region: us-east-1
  output: {path: s3://acme-ml/jobs/}
  stopping:
    max_runtime_seconds: 3600
"""

SPEC_A = """\
training:
  name: job-a
  model:
    framework: {name: pytorch, version: "2.1", entry_point: train.py, source_dir: ../src}
  data:
    train: s3://acme-ml/data/train/
  compute:
    instance_type: ml.g5.xlarge
  per_device_batch_size: 16
  hyperparameters: {epochs: 2}
"""

SPEC_B = """\
training:
  name: job-b
  model:
    framework: {name: pytorch, version: "2.1", entry_point: train.py, source_dir: ../src}
  data:
    train: s3://acme-ml/data/b/
  compute:
    instance_type: ml.m5.large
"""


def trainspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRAINSPEC_DEBUG": ""},
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('train')\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.yaml").write_text(SPEC_A)
    (tmp_path / "jobs" / "b.yaml").write_text(SPEC_B)
    (tmp_path / "trainspec.defaults.yaml").write_text(DEFAULTS)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def change_instance_and_default(repo: Path) -> None:
    """The second commit: one spec's instance type and one default of every spec."""
    spec = repo / "jobs" / "a.yaml"
    spec.write_text(SPEC_A.replace("ml.g5.xlarge", "ml.g5.12xlarge"))
    defaults = repo / "trainspec.defaults.yaml"
    defaults.write_text(DEFAULTS.replace("3600", "7200"))
    git(repo, "commit", "-q", "-am", "bigger instance, longer runtime")


def by_path(spec: dict) -> dict:
    return {c["path"]: c for c in spec["changes"]}


def test_diff_against_the_previous_commit_shows_spec_and_defaults_effects(repo):
    change_instance_and_default(repo)
    result = trainspec("diff", "--against", "HEAD~1", "--format", "json", cwd=repo)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["different"] is True
    specs = {s["spec"]: s for s in document["specs"]}
    assert sorted(specs) == ["jobs/a.yaml", "jobs/b.yaml"]

    a = by_path(specs["jobs/a.yaml"])
    instance = a["training.compute.instance_type"]
    assert (instance["old"], instance["new"], instance["group"]) == (
        "ml.g5.xlarge",
        "ml.g5.12xlarge",
        "compute",
    )
    assert instance["old_origin"] == instance["new_origin"] == "spec jobs/a.yaml:8:20"
    # 16 per GPU: one process drives 1 GPU, then 4.
    batch = a["training.hyperparameters.batch_size"]
    assert (batch["old"], batch["new"], batch["group"]) == (16, 64, "hyperparameters")
    assert batch["new_origin"].startswith("inferred rule:batch.scale_by_devices")
    assert a["batch_sizes.per_instance"]["new"] == 64
    runtime = a["training.stopping.max_runtime_seconds"]
    assert (runtime["old"], runtime["new"]) == (3600, 7200)
    assert runtime["old_origin"] == "defaults trainspec.defaults.yaml:6:26"

    b = by_path(specs["jobs/b.yaml"])
    assert "training.compute.instance_type" not in b
    assert b["training.stopping.max_runtime_seconds"]["new_origin"] == (
        "defaults trainspec.defaults.yaml:6:26"
    )
    for name, spec in specs.items():
        old, new = spec["envelope"]["old"], spec["envelope"]["new"]
        assert (old["worst_case_seconds"], new["worst_case_seconds"]) == (3600, 7200), name
        assert new["worst_case_cost"] > old["worst_case_cost"], name
    assert specs["jobs/a.yaml"]["envelope"]["new"]["worst_case_cost"] == pytest.approx(
        2 * 7.09, abs=0.01
    )
    assert [r["code"] for r in specs["jobs/a.yaml"]["risks"]] == ["cost_increase"]

    text = trainspec("diff", "--against", "HEAD~1", cwd=repo)
    assert text.returncode == 1
    assert "worst-case cost 1.41 -> 14.18 USD (+12.77, +905.7%)" in text.stdout
    assert "max duration 1h00m -> 2h00m (+1h00m)" in text.stdout
    assert "training.compute.instance_type: ml.g5.xlarge -> ml.g5.12xlarge" in text.stdout
    assert "! risk[cost_increase]" in text.stdout
    # Byte-stable: the same comparison prints the same bytes.
    assert trainspec("diff", "--against", "HEAD~1", cwd=repo).stdout == text.stdout

    markdown = trainspec("diff", "--against", "HEAD~1", "--format", "markdown", cwd=repo)
    assert markdown.returncode == 1
    assert "### `jobs/a.yaml` (" in markdown.stdout
    assert (
        "| `training.compute.instance_type` | ml.g5.xlarge | ml.g5.12xlarge "
        "| spec jobs/a.yaml:8:20 |"
    ) in markdown.stdout

    # The working tree is HEAD: nothing changes against it.
    same = trainspec("diff", "--against", "HEAD", cwd=repo)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "jobs/a.yaml: unchanged" in same.stdout


def test_lock_check_fails_until_the_lock_is_refreshed(repo):
    written = trainspec("lock", "jobs", cwd=repo)
    assert written.returncode == 0, written.stderr
    lock = repo / "jobs" / "a.plan.lock.yaml"
    text = lock.read_text()
    assert text.startswith("# trainspec lock of jobs/a.yaml")
    assert "trainspec 0.1.0" in text.splitlines()[2]
    assert yaml.safe_load(text)["versions"]["catalogs"]["instances"]
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "locks")
    assert trainspec("lock", "--check", "jobs", cwd=repo).returncode == 0
    # The lock is a plan: diffing it with its spec finds nothing.
    assert trainspec("diff", "jobs/a.plan.lock.yaml", "jobs/a.yaml", cwd=repo).returncode == 0

    change_instance_and_default(repo)
    stale = trainspec("lock", "--check", "jobs", cwd=repo)
    assert stale.returncode == 1
    assert "jobs/a.yaml: jobs/a.plan.lock.yaml is stale" in stale.stderr
    assert "jobs/b.yaml: jobs/b.plan.lock.yaml is stale" in stale.stderr
    assert "training.compute.instance_type: ml.g5.xlarge -> ml.g5.12xlarge" in stale.stdout
    assert lock.read_text() == text  # --check writes nothing

    assert trainspec("lock", "jobs", cwd=repo).returncode == 0
    fresh = trainspec("lock", "--check", "jobs", cwd=repo)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "2 lock(s) current" in fresh.stderr


def test_a_lock_is_the_same_from_another_directory_and_into_a_lock_dir(repo):
    assert trainspec("lock", "jobs/a.yaml", cwd=repo).returncode == 0
    beside = (repo / "jobs" / "a.plan.lock.yaml").read_text()
    elsewhere = trainspec("lock", "a.yaml", "--dir", "../locks", cwd=repo / "jobs")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (repo / "locks" / "jobs" / "a.plan.lock.yaml").read_text() == beside
    check = trainspec("lock", "--check", "--dir", "locks", "jobs/a.yaml", cwd=repo)
    assert check.returncode == 0, check.stderr
    missing = trainspec("lock", "--check", "jobs/b.yaml", cwd=repo)
    assert missing.returncode == 1
    assert "no lock file" in missing.stderr


def test_only_provenance_differs_passes_unless_strict(repo):
    assert trainspec("lock", "jobs/b.yaml", cwd=repo).returncode == 0
    spec = repo / "jobs" / "b.yaml"
    spec.write_text("# a comment moves every line\n" + SPEC_B)
    check = trainspec("lock", "--check", "jobs/b.yaml", cwd=repo)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "provenance or versions differ" in check.stderr
    assert trainspec("lock", "--check", "--strict", "jobs/b.yaml", cwd=repo).returncode == 1


def risky_pair(tmp_path: Path, review: str = "") -> tuple[Path, Path]:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "train.py").write_text("")
    if review:
        (tmp_path / "trainspec.defaults.yaml").write_text(review)
    old = """\
training:
  name: guarded
  model:
    framework: {name: pytorch, version: "2.1", entry_point: train.py, source_dir: src}
  region: us-east-1
  role_arn: arn:aws:iam::111122223333:role/Train
  output: {path: s3://acme-ml/jobs/, kms_key_id: alias/ml}
  data: {train: s3://acme-ml/data/train/}
  compute: {instance_type: ml.p3.2xlarge, spot: true, volume_kms_key_id: alias/ml}
  stopping: {max_runtime_seconds: 3600, max_wait_seconds: 7200}
  network:
    subnets: [subnet-0a1b2c3d]
    security_group_ids: [sg-0a1b2c3d]
    network_isolation: true
    inter_container_encryption: true
"""
    new = """\
training:
  name: guarded
  model:
    framework: {name: pytorch, version: "2.1", entry_point: train.py, source_dir: src}
  region: us-east-1
  role_arn: arn:aws:iam::111122223333:role/Admin
  output: {path: s3://acme-ml/jobs/}
  data: {train: s3://other-bucket/train/, extra: s3://acme-ml/extra/}
  compute: {instance_type: ml.g5.xlarge}
  stopping: {max_runtime_seconds: 3600}
"""
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(new)
    return tmp_path / "old.yaml", tmp_path / "new.yaml"


def risks_of(tmp_path: Path) -> list[tuple[str, str]]:
    result = trainspec("diff", "old.yaml", "new.yaml", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (spec,) = json.loads(result.stdout)["specs"]
    return [(r["code"], r["path"]) for r in spec["risks"]]


def test_every_risk_a_reviewer_must_see_is_flagged(tmp_path):
    risky_pair(tmp_path)
    assert risks_of(tmp_path) == [
        ("data_elsewhere", "training.data.extra"),
        ("data_elsewhere", "training.data.train"),
        ("encryption_off", "training.compute.volume_kms_key_id"),
        ("encryption_off", "training.network.inter_container_encryption"),
        ("encryption_off", "training.output.kms_key_id"),
        ("instance_family_change", "training.compute.instance_type"),
        ("network_isolation_off", "training.network.network_isolation"),
        ("network_isolation_off", "training.network.subnets"),
        ("role_change", "training.role_arn"),
        ("spot_off", "training.compute.spot"),
    ]
    text = trainspec("diff", "old.yaml", "new.yaml", cwd=tmp_path).stdout
    assert "! risk[role_change] training.role_arn: role arn:aws:iam::111122223333:role/Train" in (
        text
    )
    assert "\n  security\n" in text and "\n  data\n" in text


def test_the_defaults_file_review_block_sets_what_is_flagged(tmp_path):
    review = (
        "review:\n  ignore: [data_elsewhere, encryption_off, network_isolation_off,"
        " role_change, spot_off, instance_family_change]\n"
    )
    _, new = risky_pair(tmp_path, review)
    assert risks_of(tmp_path) == []
    # The spot job cost less per hour: a smaller instance, no spot, a shorter wait.
    new.write_text(new.read_text().replace("ml.g5.xlarge", "ml.p3.8xlarge"))
    assert [code for code, _ in risks_of(tmp_path)] == ["cost_increase"]
    (tmp_path / "trainspec.defaults.yaml").write_text(review + "  cost_increase_percent: 100000\n")
    assert risks_of(tmp_path) == []
    (tmp_path / "trainspec.defaults.yaml").write_text(review + "  ignore: [nope]\n")
    bad = trainspec("diff", "old.yaml", "new.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr


def test_usage_errors_exit_two_and_bad_specs_exit_one(tmp_path_factory, repo):
    for args in (
        ["diff"],
        ["diff", "jobs/a.yaml"],
        ["diff", "jobs/a.yaml", "jobs/missing.yaml"],
        ["diff", "--against", "no-such-rev"],
        ["diff", "--against", "--help-me"],
        ["diff", "--against", "HEAD", "--format", "html"],
        ["lock"],
    ):
        result = trainspec(*args, cwd=repo)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    outside = tmp_path_factory.mktemp("outside")
    (outside / "a.yaml").write_text(SPEC_A)
    not_repo = trainspec("diff", "--against", "HEAD", "a.yaml", cwd=outside)
    assert not_repo.returncode == 2
    assert "not a git repository" in not_repo.stderr

    (repo / "jobs" / "a.yaml").write_text("training:\n  nam: a\n")
    bad = trainspec("diff", "--against", "HEAD", cwd=repo)
    assert bad.returncode == 1
    assert "jobs/a.yaml:2:3: error[spec.unknown_field]" in bad.stderr
    (repo / "jobs" / "plan.yaml").write_text("sagemaker_operation: x\ndigest: y\nprovenance: 3\n")
    broken = trainspec("diff", "jobs/plan.yaml", "jobs/b.yaml", cwd=repo)
    assert broken.returncode == 1
    assert "error[diff.bad_plan]" in broken.stderr and "Traceback" not in broken.stderr


def test_the_old_revision_compiles_with_its_own_defaults_and_new_specs_show_as_added(repo):
    git(repo, "mv", "jobs/b.yaml", "jobs/c.yaml")
    git(repo, "commit", "-q", "-m", "rename")
    result = trainspec("diff", "--against", "HEAD~1", "--format", "json", cwd=repo)
    assert result.returncode == 1
    status = {s["spec"]: s["status"] for s in json.loads(result.stdout)["specs"]}
    assert status == {"jobs/a.yaml": "unchanged", "jobs/b.yaml": "removed", "jobs/c.yaml": "added"}
    # A problem in the old revision names the file there, not the temporary copy.
    (repo / "jobs" / "c.yaml").write_text(SPEC_B)
    (repo / "jobs" / "a.yaml").write_text("training:\n  nam: a\n")
    git(repo, "commit", "-q", "-am", "broken")
    (repo / "jobs" / "a.yaml").write_text(SPEC_A)
    fixed = trainspec("diff", "--against", "HEAD", "--format", "json", cwd=repo)
    assert fixed.returncode == 1
    assert "HEAD:jobs/a.yaml:2:3" in fixed.stderr


@pytest.mark.parametrize(
    "args",
    [["diff", "--against", "HEAD", "--format", "markdown"], ["lock", "jobs"]],
)
def test_diff_and_lock_never_import_torch_or_grpc(repo, args):
    code = (
        f"import sys; from trainspec._cli import main; sys.argv=['trainspec', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "assert 'torch' not in sys.modules and 'grpc' not in sys.modules, 'heavy import'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr


WORKFLOW = (
    Path(__file__).resolve().parents[2] / "examples/github/.github/workflows/trainspec-review.yml"
)


def run_workflow(repo: Path, tmp: Path) -> tuple[dict[str, subprocess.CompletedProcess], str]:
    """Run the example workflow's trainspec steps as GitHub would, in order, until one
    fails; the pull request's base branch is `main` at `origin/main`."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["review"]["steps"]
    outputs = tmp / "github_output"
    outputs.write_text("")
    env = {
        **os.environ,
        "BASE": "main",
        "GITHUB_OUTPUT": str(outputs),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = {}
    for step in steps:
        if "trainspec " not in step.get("run", "") or "pip install" in step["run"]:
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        done[step["name"]] = result
        if result.returncode:
            break
    return done, outputs.read_text()


def test_the_example_workflow_reviews_a_pull_request(repo, tmp_path_factory):
    assert trainspec("lock", "jobs", cwd=repo).returncode == 0
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "locks")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "bigger")
    change_instance_and_default(repo)  # a pull request that forgot to refresh the locks

    forgot, outputs = run_workflow(repo, tmp_path_factory.mktemp("run1"))
    assert forgot["Validate specs"].returncode == 0
    assert forgot["Plan diff against the base branch"].returncode == 0
    assert outputs == "changed=1\n"
    comment = (repo / "plan-diff.md").read_text()
    assert "## trainspec plan diff: `origin/main` -> `working tree`" in comment
    assert "| `training.hyperparameters.batch_size` | 16 | 64 |" in comment
    assert forgot["Lock files are current"].returncode == 1

    assert trainspec("lock", "jobs", cwd=repo).returncode == 0
    git(repo, "commit", "-q", "-am", "refresh locks")
    refreshed, _ = run_workflow(repo, tmp_path_factory.mktemp("run2"))
    assert refreshed["Lock files are current"].returncode == 0

    (repo / "jobs" / "a.yaml").write_text(SPEC_A.replace("name: job-a", "name: job_a"))
    invalid, _ = run_workflow(repo, tmp_path_factory.mktemp("run3"))
    annotations = invalid["Validate specs"]
    assert annotations.returncode == 1
    assert annotations.stdout.startswith("::error file=jobs/a.yaml,line=2,")
    assert "Plan diff against the base branch" not in invalid


def test_a_lock_from_an_older_catalog_is_stale_and_says_what_made_it(repo):
    assert trainspec("lock", "jobs/a.yaml", cwd=repo).returncode == 0
    lock = repo / "jobs" / "a.plan.lock.yaml"
    # What a lock made before a price update looks like.
    old = yaml.safe_load(lock.read_text())
    old["envelope"]["price_per_instance_hour"] = 1.0
    old["envelope"]["worst_case_cost"] = old["envelope"]["expected_cost"] = 1.0
    old["versions"]["catalogs"]["instances"] = "2026.01.01-1"
    lock.write_text(yaml.safe_dump(old))
    stale = trainspec("lock", "--check", "jobs/a.yaml", cwd=repo)
    assert stale.returncode == 1
    assert "worst-case cost 1.00 -> 1.41 USD (+0.41, +41.0%)" in stale.stdout
    assert "instances 2026.01.01-1" in stale.stdout and "instances 2026.12" in stale.stdout
    assert "! risk[cost_increase]" in stale.stdout


def test_two_specs_that_would_share_a_lock_are_a_usage_error(repo):
    spec = yaml.safe_load(SPEC_B)
    (repo / "jobs" / "b.json").write_text(json.dumps(spec))
    result = trainspec("lock", "jobs", cwd=repo)
    assert result.returncode == 2
    assert "would share the lock" in result.stderr
    assert not (repo / "jobs" / "a.plan.lock.yaml").exists()
