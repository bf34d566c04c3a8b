"""The SQLite job store and the `trainspec jobs` commands over it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from trainspec._cli import cli
from trainspec.trainer._job_store import JobStore


def test_start_finish_get_and_list(tmp_path: Path) -> None:
    store = JobStore.for_root(tmp_path)
    store.start("tune", "tuning", job_dir="/x/tune")
    store.start("tune-000", "trial", parent="tune", hyperparameters={"lr": "0.1"})
    store.finish("tune-000", "Completed", metrics={"acc": 0.9}, objective=0.9)

    trial = store.get("tune-000")
    assert (trial.status, trial.secondary_status, trial.parent) == (
        "Completed",
        "Completed",
        "tune",
    )
    assert trial.hyperparameters == {"lr": "0.1"} and trial.metrics == {"acc": 0.9}
    assert trial.objective == 0.9 and trial.ended >= trial.created
    assert store.get("tune").active and not trial.active
    assert [r.name for r in store.list()] == ["tune", "tune-000"]
    assert [r.name for r in store.list(parent="tune")] == ["tune-000"]
    assert store.get("missing") is None


def test_a_job_whose_runner_died_reads_as_failed(tmp_path: Path) -> None:
    # Another process records a job, then dies without a verdict (like SIGKILL).
    code = (
        "import sys; from pathlib import Path; from trainspec.trainer._job_store import JobStore;"
        f"JobStore.for_root(Path({str(tmp_path)!r})).start('lost', 'training')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    record = JobStore.for_root(tmp_path).get("lost")
    assert (record.status, record.secondary_status) == ("Failed", "Interrupted")
    assert "without recording a result" in record.message


def test_request_stop_signals_the_process_group(tmp_path: Path) -> None:
    store = JobStore.for_root(tmp_path)
    store.start("job", "training")
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        store.set_process_group("job", sleeper.pid)
        record = store.request_stop("job")
        assert record.status == "Stopping" and store.stop_requested("job")
        assert sleeper.wait(timeout=10) < 0  # ended by SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_jobs_cli_list_describe_stop(tmp_path: Path) -> None:
    store = JobStore.for_root(tmp_path)
    store.start("digits-tune", "tuning", job_dir=str(tmp_path / "digits-tune"))
    store.start("digits-tune-000", "trial", parent="digits-tune", hyperparameters={"lr": "0.1"})
    store.finish(
        "digits-tune-000",
        "Completed",
        metrics={"validation:accuracy": 0.93},
        objective=0.93,
        artifact="/x/model.tar.gz",
    )
    runner = CliRunner()
    root = ["--root", str(tmp_path)]

    listed = runner.invoke(cli, ["jobs", "list", *root])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].split() == [
        "NAME",
        "KIND",
        "STATUS",
        "CREATED",
        "OBJECTIVE",
    ]
    assert "digits-tune-000" in listed.output and "0.93" in listed.output

    as_json = runner.invoke(cli, ["jobs", "list", "--json", *root])
    assert {json.loads(line)["name"] for line in as_json.output.splitlines()} == {
        "digits-tune",
        "digits-tune-000",
    }

    described = runner.invoke(cli, ["jobs", "describe", "digits-tune", *root])
    assert described.exit_code == 0
    assert "status:    InProgress" in described.output
    assert "trial      digits-tune-000 Completed objective=0.93" in described.output

    missing = runner.invoke(cli, ["jobs", "describe", "digits-tun", *root])
    assert missing.exit_code == 1
    assert "no local job named 'digits-tun'; did you mean 'digits-tune'?" in missing.output

    done = runner.invoke(cli, ["jobs", "stop", "digits-tune-000", *root])
    assert done.exit_code == 0 and "is not running (Completed)" in done.output
    stopped = runner.invoke(cli, ["jobs", "stop", "digits-tune", *root])
    assert stopped.exit_code == 0 and "stopping digits-tune" in stopped.output
    assert store.get("digits-tune").status == "Stopping"

    # nothing has run under a fresh root yet: an answer, not an error
    empty = runner.invoke(cli, ["jobs", "list", "--root", str(tmp_path / "none")])
    assert empty.exit_code == 0, empty.output
    assert "no local jobs under" in empty.output and "error" not in empty.output
    as_json = runner.invoke(cli, ["jobs", "list", "--json", "--root", str(tmp_path / "none")])
    assert as_json.exit_code == 0 and as_json.output == ""
    (tmp_path / "fresh").mkdir()
    fresh = runner.invoke(cli, ["jobs", "list", "--root", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0 and "no local jobs under" in fresh.output
    # a job name asked for under that root is still a mistake
    unknown = runner.invoke(cli, ["jobs", "describe", "x", "--root", str(tmp_path / "none")])
    assert unknown.exit_code == 1


def test_run_without_local_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "examples/digits/job.yaml"])
    assert result.exit_code == 2 and "give --local" in result.output
