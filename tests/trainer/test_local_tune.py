"""The local tuner: Optuna strategies, pruning, completion criteria, failures and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from google.protobuf import json_format
from trainspec.trainer._job_store import JobStore
from trainspec.trainer._local_tune import (
    Heartbeat,
    TuningError,
    _pruner,
    _sampler,
    run_tuning,
    tuning_from_plan,
)
from trainspec.v1 import plan_pb2


def tune(tmp_path: Path, plan: plan_pb2.Plan, **kwargs):
    settings, template = tuning_from_plan(plan)
    # TRAINING_JOB lets the script log which trial ran it.
    return run_tuning(settings, template, tmp_path / "runs", echo=lambda _: None, **kwargs)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(autouse=True)
def _job_name_env(monkeypatch):
    # The script logs $TRAINING_JOB; the runner passes the parent's environment through.
    monkeypatch.setenv("TRAINING_JOB", "trial")


def test_random_search_runs_max_jobs_in_parallel_and_reports_the_best(tmp_path, make_plan) -> None:
    result = tune(tmp_path, make_plan(tmp_path, {}))
    assert result.status == "Completed"
    assert [t.status for t in result.trials] == ["Completed"] * 4
    assert len(calls(tmp_path)) == 4
    best = max(result.trials, key=lambda t: t.objective)
    assert result.best == best
    assert result.best.objective == pytest.approx(
        1 - (best.hyperparameters["x"] - 0.3) ** 2, abs=1e-5
    )
    assert {p.name for p in result.plots} == {"objective.png", "epochs.png", "slice.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in result.plots)
    assert "*" in result.table() and "tune-a-000" in result.table()
    store = JobStore.for_root(tmp_path / "runs")
    assert store.get("tune-a").status == "Completed"
    assert store.get("tune-a").objective == pytest.approx(best.objective)
    trials = store.list(parent="tune-a")
    assert len(trials) == 4 and all(t.status == "Completed" for t in trials)
    assert (tmp_path / "runs" / "tune-a-000" / "output" / "model.tar.gz").exists()


def test_grid_search_tries_every_combination_once(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {
            "Strategy": "Grid",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b", "c"]}]
            },
        },
    )
    result = tune(tmp_path, plan)
    assert sorted(t.hyperparameters["kind"] for t in result.trials) == ["a", "b", "c"]
    assert result.best.hyperparameters == {"kind": "c"}


def test_grid_rejects_numeric_ranges(tmp_path, make_plan) -> None:
    with pytest.raises(TuningError, match="Grid search takes categorical ranges only"):
        tune(tmp_path, make_plan(tmp_path, {"Strategy": "Grid"}))


def test_trials_that_print_no_objective_fail_clearly(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}},
        env={"SILENT": "1"},
    )
    result = tune(tmp_path, plan)
    assert [t.status for t in result.trials] == ["Failed", "Failed"]
    assert result.best is None and result.plots == ()
    assert "printed no value of the objective metric 'score'" in result.trials[0].note
    record = JobStore.for_root(tmp_path / "runs").get("tune-a-000")
    assert record.status == "Failed" and "objective metric" in record.message


def test_objective_needs_a_metric_definition(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {"HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"}},
    )
    with pytest.raises(TuningError, match="'validation:auc' has no metric definition"):
        tuning_from_plan(plan)


def test_target_objective_value_stops_the_tuning_job(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 1},
            "TuningJobCompletionCriteria": {"TargetObjectiveMetricValue": 0.5},
        },
    )
    result = tune(tmp_path, plan)
    assert len(result.trials) == 1  # every score is above 0.5
    assert result.message == "completion criteria met: the objective reached the target 0.5"


def test_max_jobs_not_improving_stops_the_tuning_job(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {
            "Strategy": "Grid",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "CategoricalParameterRanges": [
                    {"Name": "x", "Values": ["0.3", "0.9", "0.8", "0.7", "0.6", "0.5"]}
                ]
            },
            "TuningJobCompletionCriteria": {
                "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}
            },
        },
    )
    result = tune(tmp_path, plan)
    # Grid order is random, but the run stops 3 trials after the best (x=0.3) at the latest.
    best_at = next(t.number for t in result.trials if t.hyperparameters["x"] == "0.3")
    assert len(result.trials) <= best_at + 4
    if len(result.trials) < 6:
        assert "did not improve for 3 trials" in result.message


def test_early_stopping_auto_prunes_from_streamed_metrics(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 1},
            "TrainingJobEarlyStoppingType": "Auto",
        },
    )
    result = tune(tmp_path, plan)
    states = [t.status for t in result.trials]
    assert "Stopped" in states and "Completed" in states
    pruned = next(t for t in result.trials if t.status == "Stopped")
    record = JobStore.for_root(tmp_path / "runs").get(pruned.job_name)
    assert (record.status, record.secondary_status) == ("Stopped", "EarlyStopped")


def test_hyperband_uses_optunas_hyperband_pruner(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {
            "Strategy": "Hyperband",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
            "StrategyConfig": {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 3}},
        },
    )
    settings, _ = tuning_from_plan(plan)
    pruner = _pruner(settings)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource) == (1, 3)
    assert isinstance(_sampler(settings), optuna.samplers.TPESampler)
    result = tune(tmp_path, plan)
    assert len(result.trials) == 3
    assert {t.status for t in result.trials} <= {"Completed", "Stopped"}


def test_resume_runs_only_the_missing_trials(tmp_path, make_plan) -> None:
    first = tune(
        tmp_path,
        make_plan(
            tmp_path,
            {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2}},
        ),
    )
    assert len(first.trials) == 2 and len(calls(tmp_path)) == 2
    again = tune(
        tmp_path,
        make_plan(
            tmp_path,
            {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2}},
        ),
    )
    assert again.message == "all 2 trials finished"
    assert len(calls(tmp_path)) == 2  # nothing reran
    more = tune(
        tmp_path,
        make_plan(
            tmp_path,
            {"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2}},
        ),
    )
    assert [t.number for t in more.trials] == [0, 1, 2]
    assert len(calls(tmp_path)) == 3


def test_two_runners_share_one_tuning_job_through_a_storage_url(tmp_path, make_plan) -> None:
    # Two machines = two roots (job stores) with one shared Optuna database URL.
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    settings, template = tuning_from_plan(
        make_plan(
            tmp_path,
            {"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1}},
        )
    )
    quiet = {"echo": lambda _: None, "storage_url": shared}
    first = run_tuning(replace(settings, max_jobs=2), template, tmp_path / "a", **quiet)
    second = run_tuning(settings, template, tmp_path / "b", **quiet)
    assert len(first.trials) == 2 and len(second.trials) == 3
    assert len(calls(tmp_path)) == 3  # the second runner ran only the missing trial
    assert [r.name for r in JobStore.for_root(tmp_path / "b").list(parent="tune-a")] == [
        "tune-a-002"
    ]


DRIVER = """
import os, sys
from pathlib import Path
from google.protobuf import json_format
from trainspec.trainer._local_tune import Heartbeat, run_tuning, tuning_from_plan
from trainspec.v1 import plan_pb2
plan = json_format.Parse(Path(sys.argv[1]).read_text(), plan_pb2.Plan())
settings, template = tuning_from_plan(plan)
result = run_tuning(
    settings, template, Path(sys.argv[2]), echo=lambda line: None,
    storage_url=os.environ.get("TUNE_STORAGE") or None,
    heartbeat=Heartbeat(interval_seconds=1, grace_seconds=3),
)
print(result.status, result.message, flush=True)
"""


def _driver(
    tmp_path: Path, plan: plan_pb2.Plan, root: Path, worker: str = "", storage: str = ""
) -> subprocess.Popen:
    (tmp_path / "plan.json").write_text(json_format.MessageToJson(plan))
    (tmp_path / "driver.py").write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "plan.json"), str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "WORKER": worker, "TUNE_STORAGE": storage},
    )


def test_a_trial_cut_off_by_a_killed_tuner_is_retried_once_on_resume(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}},
        env={"EPOCH_SECONDS": "2"},
    )
    root = tmp_path / "runs"
    tuner = _driver(tmp_path, plan, root)
    deadline = time.monotonic() + 60
    while not calls(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    tuner.send_signal(signal.SIGKILL)  # no goodbye: its trial stays RUNNING in the database
    tuner.communicate()
    cut_off_x = float(calls(tmp_path)[0].split()[1])

    # The rerun finds the trial without a heartbeat after the grace period, fails it and
    # Optuna's retry callback queues the same parameters.
    settings, template = tuning_from_plan(plan)
    quick = Heartbeat(interval_seconds=1, grace_seconds=3)
    result = run_tuning(settings, template, root, echo=lambda _: None, heartbeat=quick)
    assert result.status == "Completed", result.message
    assert [t.status for t in result.trials] == ["Failed", "Completed", "Completed"]
    assert "retried as trial 1" in result.trials[0].note
    assert result.trials[1].hyperparameters["x"] == pytest.approx(cut_off_x)
    again = run_tuning(settings, template, root, echo=lambda _: None, heartbeat=quick)
    assert len(again.trials) == 3  # the job is over: nothing ran again
    assert again.message == "all 2 trials finished"


def test_two_tuners_on_one_root_share_the_job_and_its_limits(tmp_path, make_plan) -> None:
    """Two `trainspec run` of one tuning job on one root (SQLite): one job, not two."""
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}},
        env={"EPOCH_SECONDS": "0.3", "SPANS_FILE": str(tmp_path / "spans.txt")},
    )
    tuners = [_driver(tmp_path, plan, tmp_path / "runs", worker) for worker in ("a", "b")]
    outs = [t.communicate(timeout=120)[0] for t in tuners]
    assert [t.returncode for t in tuners] == [0, 0], outs
    assert [o.strip() for o in outs] == ["Completed all 4 trials finished"] * 2
    assert len(calls(tmp_path)) == 4
    assert len({line.split()[1] for line in calls(tmp_path)}) == 4  # no parameter set twice
    spans = sorted(
        tuple(map(float, line.split()))
        for line in (tmp_path / "spans.txt").read_text().splitlines()
    )
    assert max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans) <= 2


def test_ctrl_c_stops_running_trials_and_resume_reruns_them(tmp_path, make_plan) -> None:
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2}},
        env={"EPOCH_SECONDS": "3"},
    )
    tuner = _driver(tmp_path, plan, tmp_path / "runs")
    deadline = time.monotonic() + 30
    while len(calls(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    tuner.send_signal(signal.SIGINT)
    out, _ = tuner.communicate(timeout=30)
    assert tuner.returncode == 0
    assert out.strip() == "Stopped stopped on request"
    store = JobStore.for_root(tmp_path / "runs")
    assert store.get("tune-a").status == "Stopped"
    assert {t.status for t in store.list(parent="tune-a")} == {"Stopped"}
    assert not any(r.active for r in store.list())

    plan = make_plan(
        tmp_path, {"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2}}
    )
    result = tune(tmp_path, plan)
    assert result.status == "Completed"
    assert [t.status for t in result.trials].count("Completed") == 3
    stopped = {t.hyperparameters["x"] for t in result.trials[:2]}
    assert stopped <= {t.hyperparameters["x"] for t in result.trials[2:]}  # rerun, once


def test_native_autotune_without_ranges_cannot_run_locally(tmp_path, make_plan) -> None:
    plan = make_plan(tmp_path, {"ParameterRanges": {}})
    plan.sagemaker_request.update({"Autotune": {"Mode": "Enabled"}})
    with pytest.raises(TuningError, match="native Autotune"):
        tuning_from_plan(plan)


@pytest.mark.torch  # trains the digits example
def test_digits_tuning_example_runs_through_the_cli(tmp_path) -> None:
    """The digits Autotune-style example, 2 short trials, as a real subprocess."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainspec",
            "run",
            str(repo / "examples/digits/tune.yaml"),
            "--local",
            "-q",
            "--root",
            str(tmp_path / "runs"),
            "--set",
            "tuning.limits.max_jobs=2",
            "--set",
            "tuning.training.hyperparameters.epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRAINSPEC_ROOT": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from trainspec.compiler import compile_file

    plan = compile_file(
        repo / "examples/digits/tune.yaml",
        overrides=["tuning.limits.max_jobs=2", "tuning.training.hyperparameters.epochs=1"],
    )
    name = plan.sagemaker_request["HyperParameterTuningJobName"]
    assert name.startswith("digits-tune-")
    assert f"best trial: {name}-00" in done.stdout
    assert (tmp_path / "runs" / name / "objective.png").exists()
    listing = subprocess.run(
        [sys.executable, "-m", "trainspec", "jobs", "list", "--root", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and f"{name}-001" in listing.stdout


def test_parallel_trial_threads_never_claim_one_requeued_trial_twice(tmp_path) -> None:
    """Queued trials popped by 4 threads at once: each runs exactly once.

    Optuna's plain RDBStorage on SQLite lets two connections claim the same WAITING trial
    or fail with "database is locked"; open_storage makes every transaction take the
    write lock first (BEGIN IMMEDIATE).
    """
    from trainspec.trainer._optuna_storage import Heartbeat, open_storage

    for attempt in range(3):
        storage = open_storage(f"sqlite:///{tmp_path}/race-{attempt}.db", Heartbeat())
        study = optuna.create_study(storage=storage)
        for x in range(40):
            study.enqueue_trial({"x": x}, skip_if_exists=False)
        study.optimize(lambda trial: trial.suggest_int("x", 0, 100), n_trials=40, n_jobs=4)
        assert sorted(t.params["x"] for t in study.trials) == list(range(40))
        assert {t.state.name for t in study.trials} == {"COMPLETE"}


def _active(root: Path) -> bool:
    record = JobStore.for_root(root).get("tune-a")
    return record is not None and record.active


def test_stopping_the_job_on_one_machine_stops_every_worker(tmp_path, make_plan) -> None:
    """`trainspec jobs stop` on one machine: the verdict in the shared storage stops the
    trials another worker (another root: another machine) runs, and a rerun resumes."""
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}},
        env={"EPOCH_SECONDS": "2"},
    )
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [_driver(tmp_path, plan, tmp_path / n, n, storage=shared) for n in ("a", "b")]
    deadline = time.monotonic() + 60
    while len(calls(tmp_path)) < 2:
        assert time.monotonic() < deadline, calls(tmp_path)
        time.sleep(0.1)
    # Stop from the root of the worker that did not start the latest trial.
    running_on = calls(tmp_path)[-1].split()[-1]
    other = "b" if running_on == "a" else "a"
    while not ((tmp_path / other / "jobs.db").exists() and _active(tmp_path / other)):
        assert time.monotonic() < deadline, "the other worker never joined"
        time.sleep(0.1)
    JobStore.for_root(tmp_path / other).request_stop("tune-a")
    outs = [w.communicate(timeout=60)[0] for w in workers]
    assert [o.strip() for o in outs] == ["Stopped stopped on request"] * 2
    assert not any(r.active for r in JobStore.for_root(tmp_path / running_on).list())
    stopped_here = JobStore.for_root(tmp_path / running_on).list(parent="tune-a")
    assert "Stopped" in {r.status for r in stopped_here}  # its running trial was stopped
    settings, template = tuning_from_plan(plan)
    stopped = optuna.load_study(study_name="tune-a", storage=shared).get_trials()
    assert "RUNNING" not in {t.state.name for t in stopped}
    queued = [t.params for t in stopped if t.state.name == "WAITING"]
    assert len(queued) == 2  # both workers' stopped trials wait for the resume

    result = run_tuning(settings, template, tmp_path / "a", storage_url=shared, echo=lambda _: None)
    assert (result.status, result.message) == ("Completed", "all 6 trials finished")
    assert [t.status for t in result.trials].count("Completed") == 6
    resumed = [t.hyperparameters for t in result.trials if t.status == "Completed"]
    assert all(params in resumed for params in queued)
