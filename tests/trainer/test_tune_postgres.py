"""Tuning workers sharing one job through a real PostgreSQL server (see conftest.py):
started together on an empty database, killed outright, and never showing the password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from google.protobuf import json_format
from trainspec.trainer._job_store import JobStore
from trainspec.trainer._storage_url import normalize, password

REPO = Path(__file__).resolve().parents[2]

# One tuning worker: waits for the go file (so workers start within milliseconds of each
# other), then works on the job until it is over. The storage URL comes from the
# environment, as it would from TRAINSPEC_STORAGE.
DRIVER = """
import os, sys, time
from pathlib import Path
from google.protobuf import json_format
from trainspec.trainer._local_tune import Heartbeat, run_tuning, tuning_from_plan
from trainspec.v1 import plan_pb2
plan = json_format.Parse(Path(sys.argv[1]).read_text(), plan_pb2.Plan())
settings, template = tuning_from_plan(plan)
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
result = run_tuning(
    settings, template, Path(sys.argv[2]), storage_url=os.environ["TUNE_STORAGE"],
    echo=lambda line: print(line, end="", flush=True),
    heartbeat=Heartbeat(interval_seconds=1, grace_seconds=3),
)
print("VERDICT", result.status, result.message, flush=True)
"""


def _workers(tmp_path: Path, plan, url: str, names: list[str]) -> list[subprocess.Popen]:
    (tmp_path / "plan.json").write_text(json_format.MessageToJson(plan))
    (tmp_path / "driver.py").write_text(DRIVER)
    go = tmp_path / "go"
    go.unlink(missing_ok=True)
    procs = []
    for name in names:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(tmp_path / "driver.py"),
                    str(tmp_path / "plan.json"),
                    str(tmp_path / name),  # its own root: another machine
                    str(go),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "TUNE_STORAGE": url, "WORKER": name, "TRAINING_JOB": "trial"},
            )
        )
    return procs


def _go(tmp_path: Path) -> None:
    (tmp_path / "go").touch()


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker did not finish in {timeout} s:\n{out}")
    assert proc.returncode == 0, out
    return out


def _verdict(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("VERDICT "))


def _trials(url: str, name: str = "tune-a") -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(normalize(url))
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _most_at_once(spans_file: Path) -> int:
    events = []
    for line in spans_file.read_text().splitlines():
        start, end = map(float, line.split())
        events += [(start, 1), (end, -1)]
    running = most = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        most = max(most, running)
    return most


def test_workers_started_together_on_an_empty_database_open_it_without_a_race(
    postgres_url,
) -> None:
    """Optuna creates its schema (tables, enum types) on first use; workers starting at
    once used to fail with UniqueViolation on CREATE TYPE studydirection."""
    opener = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from trainspec.trainer._optuna_storage import Heartbeat, open_storage\n"
        "import optuna\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.002)\n"
        "storage = open_storage(sys.argv[1], Heartbeat())\n"
        "optuna.create_study(study_name='s', storage=storage, load_if_exists=True)\n"
    )
    go = Path(os.environ.get("TMPDIR", "/tmp")) / f"go-{os.getpid()}-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", opener, postgres_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(3)  # every process has imported Optuna and waits
    go.touch()
    try:
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        go.unlink()
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outs)
    storage = optuna.storages.RDBStorage(normalize(postgres_url))
    try:
        assert optuna.study.get_all_study_names(storage) == ["s"]
    finally:
        storage.engine.dispose()


def test_two_workers_started_together_run_exactly_max_jobs_trials_as_one_job(
    tmp_path, make_plan, postgres_url
) -> None:
    plan = make_plan(
        tmp_path,
        {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
        },
        env={"EPOCH_SECONDS": "0.3", "SPANS_FILE": str(tmp_path / "spans.txt")},
    )
    workers = _workers(tmp_path, plan, postgres_url, ["a", "b"])
    time.sleep(2)  # both have imported everything and wait for the go file
    _go(tmp_path)
    outs = [_finish(w) for w in workers]

    # One verdict, reported by both.
    assert [_verdict(o) for o in outs] == ["VERDICT Completed all 6 trials finished"] * 2
    trials = _trials(postgres_url)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    runs = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(runs) == 6  # no trial ran beyond max_jobs, none ran twice
    assert len({t.params["x"] for t in trials}) == 6  # no parameter set run twice
    assert _most_at_once(tmp_path / "spans.txt") <= 2  # max_parallel_jobs over both workers
    # Each trial ran on one of the two roots (machines); which one is first come, first
    # served, so one worker may run them all while the other waits for a place.
    ran = [len(JobStore.for_root(tmp_path / n).list(parent="tune-a")) for n in ("a", "b")]
    assert sum(ran) == 6, ran


def test_a_killed_workers_trial_is_retried_by_the_survivor(
    tmp_path, make_plan, postgres_url
) -> None:
    plan = make_plan(
        tmp_path,
        {"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2}},
        env={"EPOCH_SECONDS": "1.5"},
    )
    (victim,) = _workers(tmp_path, plan, postgres_url, ["a"])
    _go(tmp_path)
    store = JobStore.for_root(tmp_path / "a")
    deadline = time.monotonic() + 60
    running = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "a" / "jobs.db").exists():
            running = [r for r in store.list(parent="tune-a") if r.active and r.pgid > 0]
    assert running, "worker a never started a trial"
    (survivor,) = _workers(tmp_path, plan, postgres_url, ["b"])
    _go(tmp_path)
    # The machine goes away: the tuner and its trials die at once, with no goodbye.
    victim.send_signal(signal.SIGKILL)
    for record in running:
        os.killpg(record.pgid, signal.SIGKILL)
    victim.communicate()

    out = _finish(survivor)
    assert _verdict(out) == "VERDICT Completed all 3 trials finished"
    trials = _trials(postgres_url)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states, states
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert killed, states
    retries = [t for t in trials if t.system_attrs.get("retry_history")]
    assert {n for t in retries for n in t.system_attrs["retry_history"]} == {
        t.number for t in killed
    }
    for retry in retries:  # the same parameters, run to the end by the survivor
        original = trials[retry.system_attrs["retry_history"][0]]
        assert retry.state.name == "COMPLETE"
        if original.params:  # (killed before it had any, the retry samples its own)
            assert retry.params == original.params
    assert states.count("COMPLETE") == 3  # the killed trial's retry takes its place
    assert "retried as trial" in (tmp_path / "b" / "tune-a" / "trials.txt").read_text()


SPEC = """
tuning:
  name: tune-a
  objective: {metric: score, type: MAXIMIZE}
  strategy: RANDOM
  ranges:
    x: {continuous: {min: 0, max: 1}}
  limits: {max_jobs: 2, max_parallel_jobs: 2}
  random_seed: 3
  training:
    name: t
    role_arn: arn:aws:iam::111122223333:role/SageMakerTrainingRole
    region: us-east-1
    output: {path: "s3://bucket/out/"}
    model:
      framework: {name: pytorch, version: "2.1", entry_point: train.py, source_dir: src}
    compute: {instance_type: ml.m5.large}
    hyperparameters: {epochs: 2, x: 0.5}
    environment: {CALLS_FILE: "@CALLS@"}
    metrics:
      - {name: score, regex: "score=([0-9.]+)"}
"""


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainspec", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TRAINSPEC_ROOT": "", "TRAINING_JOB": "trial", **(env or {})},
    )


def test_the_storage_password_never_appears_in_output(tmp_path, postgres_url, trial_script) -> None:
    secret = password(postgres_url)
    assert secret
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(trial_script)
    spec = tmp_path / "tune.yaml"
    spec.write_text(SPEC.replace("@CALLS@", str(tmp_path / "calls.txt")))
    root = tmp_path / "runs"

    # Wrong password and unreachable server: infrastructure failures, exit 4, URL masked.
    wrong = postgres_url.replace(secret, "Wr0ng-pa55word-42")
    closed = postgres_url.rsplit("@", 1)[0] + "@127.0.0.1:1/postgres"
    for url, hidden in ((wrong, "Wr0ng-pa55word-42"), (closed, secret)):
        done = _cli("run", str(spec), "--local", "--root", str(root), "--storage", url)
        output = done.stdout + done.stderr
        assert done.returncode == 4, output
        assert hidden not in output and "***" in output, output
        assert "Traceback" not in output

    # A job that runs, with the URL from TRAINSPEC_STORAGE: nothing it prints or writes
    # holds the password.
    run = ("run", str(spec), "--local", "--root", str(root))
    done = _cli(*run, env={"TRAINSPEC_STORAGE": postgres_url})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Completed (all 2 trials finished)" in output
    assert secret not in output and "trainspec:***@" in output
    for path in root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.torch  # trains the digits example
def test_two_digits_runs_with_one_storage_behave_as_one_job(tmp_path, postgres_url) -> None:
    """`trainspec run examples/digits/tune.yaml --local --storage URL` from two shells."""
    args = [
        "run",
        str(REPO / "examples/digits/tune.yaml"),
        "--local",
        "-q",
        "--root",
        str(tmp_path / "runs"),
        "--set",
        "tuning.training.hyperparameters.epochs=2",
    ]
    env = {**os.environ, "TRAINSPEC_ROOT": "", "TRAINSPEC_STORAGE": postgres_url}
    shells = [
        subprocess.Popen(
            [sys.executable, "-m", "trainspec", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [s.communicate(timeout=240) for s in shells]
    from trainspec.compiler import compile_file

    plan = compile_file(args[1], overrides=[args[-1]])
    name = plan.sagemaker_request["HyperParameterTuningJobName"]  # digits-tune-<digest>
    for shell, (out, err) in zip(shells, outs, strict=True):
        assert shell.returncode == 0, out + err
        assert f"{name}: Completed (all 4 trials finished)" in err, err
    # Both print the same table: one job of 4 trials, as max_jobs says.
    assert outs[0][0].split("plot:")[0] == outs[1][0].split("plot:")[0]
    trials = _trials(postgres_url, name)
    assert len(trials) == 4
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
