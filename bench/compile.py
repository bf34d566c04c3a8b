"""Bench: in-process compile of the examples: specs/s, p50/p99 per spec, share per pass.

    python bench/compile.py [--rounds 200]
Each round compiles every example; per-pass shares come from timing the driver stopped
after each pass (`until=`) in the same run, so they are differences of medians. p50/p99
are also given per kind of spec: training and fine-tuning specs (issue 4's compiler) and
tuning specs (which add Autotune inference and a second request), with the p50 of the
slowest spec of each kind on its own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from trainspec.compiler import Stage, compile_file

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(spec: Path, until: Stage, rounds: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        compile_file(spec, until=until)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    specs = sorted(
        p
        for p in (ROOT / "examples").rglob("*.yaml")
        if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
    )
    # Compiling each once also warms the caches: catalogs, botocore's model, cerberus schema.
    kinds = {spec: _kind(spec) for spec in specs}
    by_kind: dict[str, list[float]] = {"training": [], "tuning": []}
    per_spec: dict[Path, float] = {}  # each spec's own p50
    per_stage = {stage: 0.0 for stage in Stage}
    for spec in specs:
        previous = 0.0
        for stage in Stage:
            median, samples = _median_seconds(spec, stage, args.rounds)
            per_stage[stage] += max(median - previous, 0.0)
            previous = median
            if stage is Stage.EMIT:
                by_kind[kinds[spec]].extend(samples)
                per_spec[spec] = median
    all_samples = sorted(by_kind["training"] + by_kind["tuning"])
    total = sum(per_stage.values())
    print(f"{len(specs)} example specs x {args.rounds} rounds, in-process, file read included")
    print(f"specs/s {1 / statistics.mean(all_samples):.0f}")
    print(f"all specs ({len(specs)}): {_percentiles(all_samples)}")
    for kind, samples in by_kind.items():
        count = len(samples) // args.rounds
        print(f"{kind} specs ({count}): {_percentiles(sorted(samples))}")
        slowest = max((s for s in specs if kinds[s] == kind), key=per_spec.__getitem__)
        print(
            f"  slowest {kind} spec alone: p50 {per_spec[slowest] * 1e3:.2f} ms "
            f"({slowest.relative_to(ROOT)})"
        )
    print(
        "share of time per pass: "
        + ", ".join(f"{stage.name.lower()} {per_stage[stage] / total:.0%}" for stage in Stage)
    )


def _kind(spec: Path) -> str:
    plan = compile_file(spec)
    return "tuning" if plan.sagemaker_operation == "CreateHyperParameterTuningJob" else "training"


def _percentiles(samples: list[float]) -> str:
    p50 = statistics.median(samples)
    p99 = samples[max(int(len(samples) * 0.99) - 1, 0)]
    verdict = "met" if p50 <= 1e-3 else "MISSED"
    return f"p50 {p50 * 1e3:.2f} ms   p99 {p99 * 1e3:.2f} ms   (target p50 <= 1 ms: {verdict})"


if __name__ == "__main__":
    main()
