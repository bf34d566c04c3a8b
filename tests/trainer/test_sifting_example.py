"""examples/sifting/train_digits.py, run as a user runs it: real training on bundled digits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_prune_run_trains_then_prunes_the_middle_epochs():
    result = run_example("--epochs", "3", "--keep", "0.6", "--device", "cpu")
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


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--keep", "1.5"], {}, "error: keep_fraction must be in (0, 1], got 1.5"),
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
