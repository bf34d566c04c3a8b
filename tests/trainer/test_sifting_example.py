"""examples/sifting/train_digits.py, run as a user runs it: real training on bundled digits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch  # runs examples/sifting/train_digits.py

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "sifting" / "train_digits.py"
EPOCH_LINE = re.compile(
    r"^(no sifting|\w+) epoch (\d+): test accuracy ([\d.]+)%(?:, kept (\d+)%)?$", re.MULTILINE
)


def run_example(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


SCHEDULE_LINE = re.compile(
    r"^(no sifting|\w+) schedule: built (for (\d+) steps|by progress), (\d+) steps taken, "
    r"final lr ([\d.e+-]+)$",
    re.MULTILINE,
)


def test_prune_run_trains_then_prunes_the_middle_epochs():
    result = run_example(
        "--epochs", "3", "--rule", "quota", "--keep", "0.6", "--schedule", "onecycle",
        "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    epochs = EPOCH_LINE.findall(result.stdout)
    plain = [int(e) for name, e, _, _ in epochs if name == "no sifting"]
    pruned = {int(e): (float(a), int(k)) for name, e, a, k in epochs if name == "PruneConfig"}
    assert plain == [1, 2, 3] and sorted(pruned) == [1, 2, 3], result.stdout
    # The first epoch knows no losses and the last one anneals (1 of 3 epochs): all data.
    assert [pruned[e][1] for e in (1, 2, 3)] == [100, 60, 100]
    assert pruned[3][0] > 85.0  # a CNN on digits learns in 3 epochs; chance is 10%
    assert "sifting (PruneConfig) vs none: accuracy" in result.stdout
    assert "Traceback" not in result.stderr
    # The per-step schedule was built for the steps each run really took (fewer pruned).
    schedules = {name: rest for name, *rest in SCHEDULE_LINE.findall(result.stdout)}
    _, plain_built, plain_taken, plain_lr = schedules["no sifting"]
    _, pruned_built, pruned_taken, pruned_lr = schedules["PruneConfig"]
    assert plain_built == plain_taken and pruned_built == pruned_taken, result.stdout
    assert int(pruned_taken) < int(plain_taken)
    assert float(pruned_lr) < 1e-5 and float(plain_lr) < 1e-5  # annealed to the end


def test_infobatch_run_adapts_its_share_and_schedules_by_progress():
    result = run_example(
        "--epochs", "3", "--rule", "infobatch", "--schedule", "onecycle", "--device", "cpu"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = [int(k) for name, _, _, k in EPOCH_LINE.findall(result.stdout) if name == "PruneConfig"]
    # r = 0.5 of the below-mean samples: neither nothing nor half the data.
    assert kept[0] == kept[2] == 100 and 50 < kept[1] < 100, result.stdout
    schedules = {name: rest for name, *rest in SCHEDULE_LINE.findall(result.stdout)}
    assert schedules["PruneConfig"][0] == "by progress"
    assert float(schedules["PruneConfig"][3]) < 1e-5


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--rule", "quota", "--keep", "1.5"],
            {},
            "error: keep_fraction must be in (0, 1], got 1.5",
        ),
        (
            ["--rule", "infobatch", "--keep", "0.6"],
            {},
            "error: keep_fraction=0.6 applies to rule='quota' only",
        ),
        (["--device", "bogus"], {}, "error: --device 'bogus' is not a torch device"),
        (
            ["--mode", "env"],
            {"TRAINSPEC_SIFTING": '{"mode": "SIFTING_MODE_PRUNE", "keep_fraction": 2}'},
            "error: TRAINSPEC_SIFTING: keep_fraction must be in (0, 1], got 2",
        ),
    ],
)
def test_bad_settings_exit_1_with_the_problem_before_any_training(args, env, message):
    result = run_example(*args, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert "epoch" not in result.stdout
