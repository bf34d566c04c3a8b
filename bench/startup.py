"""Start-up of the command line, as a pre-commit hook pays it: `trainspec validate` of the
ten example specs and `trainspec compile` of one, each beside a bare `python -c pass`,
alternated in one run so that a shared machine's noise hits all three alike.

    python bench/startup.py [--rounds 9]

Prints the median wall time of each and the trainspec commands' time over the bare
interpreter's (ratios: the absolute numbers move with the machine's load).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p) for p in (ROOT / "examples").glob("t*/*.yaml"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    f"validate ({len(SPECS)} specs)": [sys.executable, "-m", "trainspec", "validate", *SPECS],
    "compile (1 spec)": [
        sys.executable, "-m", "trainspec", "compile", str(ROOT / "examples/digits/job.yaml")
    ],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c pass"])
    print(f"{'command':<24} {'median ms':>10} {'x bare python':>14}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<24} {median * 1000:>10.0f} {median / bare:>14.1f}")


if __name__ == "__main__":
    main()
