"""Bench: `trainspec validate` on a folder of 200 valid specs, interpreter start included.

Prints wall time of the whole command and, side by side in the same run, the time of a
bare `python -c pass` start so the ratio says what validating itself costs.
    python bench/validate.py [--specs 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(command: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    examples = sorted((ROOT / "examples" / "training").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as folder:
        # validate compiles each spec: it needs what the examples rely on around them
        shutil.copy(ROOT / "examples" / "trainspec.defaults.yaml", folder)
        shutil.copytree(ROOT / "examples" / "training" / "src", Path(folder) / "src")
        for index in range(args.specs):
            source = examples[index % len(examples)]
            shutil.copy(source, Path(folder) / f"{index:03d}-{source.name}")
        trainspec = [sys.executable, "-m", "trainspec", "validate", folder]
        validate = _time(trainspec, args.repeat)
        bare = _time([sys.executable, "-c", "pass"], args.repeat)
    print(
        f"validate {args.specs} specs: {validate:.2f} s wall (median of {args.repeat}), "
        f"interpreter start alone {bare:.2f} s, ratio {validate / bare:.1f}x; "
        f"target < 3 s: {'met' if validate < 3 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
