"""Trial preview: grid combinations, seeded random draws, Hyperband brackets (`--trials N`)."""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from trainspec.compiler.tuning._autotune import as_number, enum_short, range_kind

HYPERBAND_ETA = 3
DEFAULT_SEED = 0


def preview_trials(tuning: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """What the first `n` trials of an inferred tuning tree look like.

    Grid: the combinations in order (names sorted, values as written). Random and
    Bayesian: `n` draws seeded by `random_seed` (0 when unset), deterministic; Bayesian
    search starts with random draws like these, later trials depend on results. Hyperband:
    one row per bracket and rung (`n` does not apply).
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    ranges: Mapping[str, Any] = tuning.get("ranges") or {}
    strategy = enum_short(tuning.get("strategy"), "STRATEGY_") or "BAYESIAN"
    if strategy == "HYPERBAND":
        hyperband = tuning.get("hyperband") or {}
        max_jobs = (tuning.get("limits") or {}).get("max_jobs")
        return hyperband_brackets(
            int(hyperband.get("min_resource") or 1),
            int(hyperband.get("max_resource") or 1),
            max_jobs=int(max_jobs) if max_jobs else None,
        )
    names = sorted(ranges)
    if strategy == "GRID":
        values = [list(range_kind(ranges[name])[1].get("values") or ()) for name in names]
        combos = itertools.islice(itertools.product(*values), n)
        return [
            {"trial": i + 1, **dict(zip(names, combo, strict=True))}
            for i, combo in enumerate(combos)
        ]
    seed = tuning.get("random_seed")
    rng = random.Random(DEFAULT_SEED if seed is None else int(seed))
    return [
        {"trial": i + 1, **{name: _draw(rng, ranges[name]) for name in names}} for i in range(n)
    ]


def hyperband_brackets(
    min_resource: int, max_resource: int, eta: int = HYPERBAND_ETA, *, max_jobs: int | None = None
) -> list[dict[str, Any]]:
    """Hyperband's successive-halving brackets (Li et al. 2018) as rows.

    Each row: bracket s, rung i, how many trials run at that rung, and the resource
    (whole epochs, never below min_resource) each of them has reached there. With
    `max_jobs`, no more trials start than the tuning job may run: brackets fill in
    Hyperband's order until the budget is spent (SageMaker does not publish how it
    spreads a smaller budget, so this is the plain reading).
    """
    if not 1 <= min_resource <= max_resource:
        raise ValueError(
            f"need 1 <= min_resource <= max_resource, got {min_resource} and {max_resource}"
        )
    # The small epsilon keeps exact powers (27 / 1 with eta 3) from rounding down.
    s_max = math.floor(math.log(max_resource / min_resource) / math.log(eta) + 1e-9)
    budget = max_jobs if max_jobs is not None else math.inf
    rows = []
    for s in range(s_max, -1, -1):
        starting = min(math.ceil((s_max + 1) / (s + 1) * eta**s), budget)
        if starting <= 0:
            break
        budget -= starting
        for i in range(s + 1):
            trials = math.floor(starting * eta ** (-i))
            if trials == 0:
                break
            epochs = max(min_resource, round(max_resource * eta ** (i - s)))
            rows.append({"bracket": s, "rung": i, "trials": trials, "resource": epochs})
    return rows


@functools.lru_cache(maxsize=256)  # a pure function of two ints, asked on every compile
def hyperband_resource_fraction(min_resource: int, max_resource: int) -> float:
    """Resource Hyperband spends, as a fraction of running every trial to max_resource."""
    spent = full = 0.0
    previous = 0.0
    for row in hyperband_brackets(min_resource, max_resource):
        if row["rung"] == 0:
            previous = 0.0
            full += row["trials"] * max_resource
        spent += row["trials"] * (row["resource"] - previous)
        previous = row["resource"]
    return spent / full if full else 1.0


def format_trials(rows: Sequence[Mapping[str, Any]], *, note: str = "") -> str:
    """A plain-text table of preview rows (columns in first-row order), then a note."""
    if not rows:
        return "(no trials)\n" + (f"{note}\n" if note else "")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if note:
        lines.append(note)
    return "\n".join(lines) + "\n"


def _draw(rng: random.Random, parameter_range: Any) -> Any:
    kind, body = range_kind(parameter_range)
    if kind == "categorical":
        values = list(body.get("values") or ())
        return rng.choice(values) if values else None
    lo, hi = as_number(body.get("min")), as_number(body.get("max"))
    if kind is None or lo is None or hi is None or lo > hi:
        return None
    scaling = enum_short(body.get("scaling"), "SCALING_")
    if scaling == "LOGARITHMIC" and lo > 0:
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    elif scaling == "REVERSE_LOGARITHMIC" and kind == "continuous" and lo >= 0 and hi < 1:
        value = 1 - math.exp(rng.uniform(math.log(1 - hi), math.log(1 - lo)))
    else:
        value = rng.uniform(lo, hi)
    if kind == "integer":
        return min(int(hi), max(int(lo), round(value)))
    return _round(value)


def _round(value: float) -> float | int:
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() else rounded


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
