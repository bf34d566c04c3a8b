"""Tuning storage URLs and the shared job's rules: passwords masked, limits over all workers,
one verdict; and `trainspec run`'s --storage / TRAINSPEC_STORAGE / defaults file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from trainspec.trainer import _tuning_job as tj
from trainspec.trainer._storage_url import (
    StorageURLError,
    dialect,
    masked,
    normalize,
    scrub,
    sqlite_path,
)
from trainspec.trainer._tuning_settings import ParameterRange, TuningSettings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tuner:s3cret@db:5432/optuna", "postgresql://tuner:***@db:5432/optuna"),
        ("postgresql://tuner:p%40ss@db/optuna", "postgresql://tuner:***@db/optuna"),
        ("postgresql://tuner@db/optuna", "postgresql://tuner@db/optuna"),
        ("postgresql://db/optuna?user=u&password=pw", "postgresql://db/optuna?user=u&password=***"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_masked_urls_never_show_the_password(url, shown) -> None:
    assert masked(url) == shown


def test_scrub_hides_every_spelling_of_the_password() -> None:
    url = "postgresql://tuner:p%40ss@db/optuna"
    text = "failed for p@ss and p%40ss (postgresql://tuner:p%40ss@db/optuna)"
    assert "p@ss" not in scrub(text, url) and "p%40ss" not in scrub(text, url)


def test_only_sqlite_and_postgresql_are_taken() -> None:
    assert dialect("sqlite:///x.db") == "sqlite"
    assert normalize("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlite_path("sqlite:////tmp/a%20b.db") == Path("/tmp/a b.db")
    with pytest.raises(StorageURLError, match=r"mysql://u:\*\*\*@h/d.*sqlite:///PATH"):
        dialect("mysql://u:hunter2@h/d")


# --- the shared job's rules, over hand-built trials -------------------------------------


def _trial(number: int, state: str, value: float | None = None, **system: object) -> object:
    """What the rules read of an Optuna FrozenTrial."""
    return SimpleNamespace(
        number=number, state=SimpleNamespace(name=state), value=value, system_attrs=system
    )


def _settings(**changes: object) -> TuningSettings:
    base = TuningSettings(
        name="t",
        strategy="Random",
        objective_metric="m",
        maximize=True,
        ranges=(ParameterRange("x", "continuous", 0, 1),),
        max_jobs=4,
        max_parallel_jobs=2,
    )
    return TuningSettings(**{**base.__dict__, **changes})


def test_limits_count_every_workers_running_and_queued_trials() -> None:
    settings = _settings()
    running = [_trial(0, "COMPLETE", 0.5), _trial(1, "RUNNING"), _trial(2, "RUNNING")]
    assert tj.next_step(settings, tj.count(running)) is tj.Step.WAIT  # 2 running anywhere
    one_left = [_trial(0, "COMPLETE", 0.5), _trial(1, "COMPLETE", 0.6), _trial(2, "RUNNING")]
    assert tj.next_step(settings, tj.count(one_left)) is tj.Step.RUN
    full = [*one_left, _trial(3, "WAITING")]
    assert tj.next_step(settings, tj.count(full)) is tj.Step.RUN  # the queued one, not a 5th
    budget_used = [*one_left, _trial(3, "RUNNING", None)]
    counts = tj.count(budget_used)
    assert counts.used == 4
    assert tj.next_step(_settings(max_parallel_jobs=3), counts) is tj.Step.WAIT


def test_a_retried_trial_is_replaced_by_its_retry_in_the_count() -> None:
    trials = [_trial(0, "FAIL"), _trial(1, "COMPLETE", 0.4, retry_history=[0])]
    counts = tj.count(trials)
    assert (counts.failed, counts.completed, counts.used) == (0, 1, 1)


def test_the_verdict_is_decided_from_the_shared_trials() -> None:
    done = [_trial(i, "COMPLETE", 0.1 * i) for i in range(4)]
    assert tj.decide(_settings(), done, elapsed_seconds=0, stop_requested=False) == tj.Verdict(
        "Completed", "all 4 trials finished", "budget", 4
    )
    assert tj.decide(_settings(), done[:3], elapsed_seconds=0, stop_requested=False) is None
    assert tj.decide(_settings(), done, elapsed_seconds=0, stop_requested=True).status == "Stopped"
    target = tj.decide(
        _settings(target_objective_value=0.2), done[:3], elapsed_seconds=0, stop_requested=False
    )
    assert target.message.endswith("reached the target 0.2")
    late = tj.decide(
        _settings(max_runtime_seconds=10), done[:1], elapsed_seconds=11, stop_requested=False
    )
    assert (late.status, late.rule) == ("Stopped", "runtime")
    # A job that ran out of trials continues when max_jobs is raised; a stopped one resumes.
    verdict = tj.decide(_settings(), done, elapsed_seconds=0, stop_requested=False)
    assert tj.reopens(verdict, _settings(max_jobs=5)) and not tj.reopens(verdict, _settings())
    assert tj.Verdict.from_attr(verdict.to_attr()) == verdict


def test_a_grid_runs_each_combination_once_even_with_a_larger_budget() -> None:
    grid = _settings(
        strategy="Grid",
        max_jobs=10,
        ranges=(ParameterRange("k", "categorical", values=("a", "b", "c")),),
    )
    assert grid.trial_budget == 3
    tried = [_trial(i, "COMPLETE", 0.5) for i in range(3)]
    assert tj.decide(grid, tried, elapsed_seconds=0, stop_requested=False).message == (
        "all 3 grid combinations were tried"
    )


# --- trainspec run: where the storage URL comes from --------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainspec",
            "run",
            str(tmp_path / "digits" / "tune.yaml"),
            "--local",
            "-q",
            "--root",
            str(tmp_path / "runs"),
            "--set",
            "tuning.limits.max_jobs=1",
            "--set",
            "tuning.limits.max_parallel_jobs=1",
            "--set",
            "tuning.training.hyperparameters.epochs=1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(env),
    )


def _env(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRAINSPEC_STORAGE"}
    return {**env, "TRAINSPEC_ROOT": "", **(extra or {})}


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """The digits example with a defaults file of its own."""
    import shutil

    shutil.copytree(REPO / "examples" / "digits", tmp_path / "digits")
    shutil.copy(REPO / "examples" / "trainspec.defaults.yaml", tmp_path / "trainspec.defaults.yaml")
    return tmp_path


def test_bad_storage_urls_are_clear_errors(digits) -> None:
    done = _run(digits, "--storage", "mysql://tuner:hunter2@db/optuna")
    assert done.returncode == 1, done.stderr
    shown = "error: tuning storage 'mysql://tuner:***@db/optuna' is not a database URL"
    assert shown in done.stderr
    assert "hunter2" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_database_is_an_infrastructure_failure(digits) -> None:
    url = "postgresql://tuner:hunter2@127.0.0.1:1/optuna"
    done = _run(digits, env={"TRAINSPEC_STORAGE": url})
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "error: tuning storage postgresql://tuner:***@127.0.0.1:1/optuna failed:" in output
    assert "the database or the disk failed, not the spec" in output
    assert "hunter2" not in output and "Traceback" not in output


@pytest.mark.torch  # trains the digits example
def test_the_defaults_file_names_the_storage_below_the_variable_and_the_flag(digits) -> None:
    from_defaults = digits / "from-defaults.db"
    with open(digits / "trainspec.defaults.yaml", "a", encoding="utf-8") as defaults:
        defaults.write(f"local:\n  tuning_storage: sqlite:///{from_defaults}\n")
    done = _run(digits)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"in sqlite:///{from_defaults}" in done.stderr and from_defaults.exists()
    assert not (digits / "runs" / "optuna.db").exists()
    # $TRAINSPEC_STORAGE, then --storage, win over it (an unusable URL shows which one won).
    done = _run(digits, env={"TRAINSPEC_STORAGE": "mysql://env@db/x"})
    assert done.returncode == 1 and "'mysql://env@db/x'" in done.stderr, done.stderr
    done = _run(digits, "--storage", "mysql://flag@db/x", env={"TRAINSPEC_STORAGE": "x"})
    assert done.returncode == 1 and "'mysql://flag@db/x'" in done.stderr, done.stderr


def test_a_full_disk_or_a_lost_database_is_infrastructure_not_input() -> None:
    import errno
    import sqlite3

    import sqlalchemy
    from trainspec.trainer._optuna_storage import infrastructure_error, is_infrastructure

    url = "postgresql://tuner:hunter2@db/optuna"
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/optuna.db")
    assert is_infrastructure(full)
    assert str(infrastructure_error(full, url)) == (
        "tuning storage postgresql://tuner:***@db/optuna failed: "
        "No space left on device: /runs/optuna.db"
    )
    assert is_infrastructure(sqlite3.OperationalError("database or disk is full"))
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("password hunter2 refused"))
    assert "hunter2" not in str(infrastructure_error(lost, url))
    assert not is_infrastructure(ValueError("a bug")) and not is_infrastructure(
        OSError(errno.ENOENT, "No such file")
    )
