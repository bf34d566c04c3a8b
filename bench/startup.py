"""Start-up of the command line, as a pre-commit hook pays it: `trainspec validate` of the
ten example specs and `trainspec compile` of one, each beside a bare `python -c pass`,
alternated in one run so that a shared machine's noise hits all three alike.

    python bench/startup.py [--rounds 9] [--python OTHER_VENV/bin/python] [--no-bytecode]

Prints the median wall and CPU (user + system) time of each and the trainspec commands'
time over the bare interpreter's (ratios: the absolute numbers move with the machine's
load; CPU time moves less than wall time on a busy machine). `--python` adds the same
commands run by another interpreter (another checkout's virtualenv), alternated with
these, to compare two versions in one run.

An installed trainspec has its modules' bytecode cached, so the commands run with
bytecode written to a temporary PYTHONPYCACHEPREFIX after a first, unmeasured round,
whatever PYTHONDONTWRITEBYTECODE says; `--no-bytecode` measures a Python that compiles
every module from source in every process instead.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p) for p in (ROOT / "examples").glob("t*/*.yaml"))


def commands(python: str, label: str) -> dict[str, list[str]]:
    suffix = f" [{label}]" if label else ""
    return {
        f"validate ({len(SPECS)} specs){suffix}": [python, "-m", "trainspec", "validate", *SPECS],
        f"compile (1 spec){suffix}": [
            python, "-m", "trainspec", "compile", str(ROOT / "examples/digits/job.yaml")
        ],
    }  # fmt: skip


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--python", help="another interpreter to run the commands with")
    parser.add_argument("--no-bytecode", action="store_true")
    args = parser.parse_args()
    table = {"python -c pass": [sys.executable, "-c", "pass"]}
    table.update(commands(sys.executable, "this" if args.python else ""))
    if args.python:
        table.update(commands(args.python, "other"))
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
            for command in table.values():  # writes the bytecode
                run(command, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
        for _ in range(args.rounds):
            for name, command in table.items():
                times[name].append(run(command, env))
    bare_wall = statistics.median(t[0] for t in times["python -c pass"])
    bare_cpu = statistics.median(t[1] for t in times["python -c pass"])
    print(f"{'command':<28} {'wall ms':>8} {'x bare':>7} {'CPU ms':>8} {'x bare':>7}")
    for name, samples in times.items():
        wall = statistics.median(t[0] for t in samples)
        cpu = statistics.median(t[1] for t in samples)
        print(
            f"{name:<28} {wall * 1000:>8.0f} {wall / bare_wall:>7.1f}"
            f" {cpu * 1000:>8.0f} {cpu / bare_cpu:>7.1f}"
        )


if __name__ == "__main__":
    main()
