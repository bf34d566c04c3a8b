"""A tuning job's results for people: every trial with SageMaker's status words, and plots."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainspec.trainer import _tuning_job as tj
from trainspec.trainer._tuning_settings import TuningSettings

# Optuna's trial states in SageMaker's words (a training job's status, and secondary
# status for a queued one), so the log, the table and `trainspec jobs` say the same.
_STATUS = {
    "COMPLETE": "Completed",
    "PRUNED": "Stopped",
    "FAIL": "Failed",
    "RUNNING": "InProgress",
    "WAITING": "Pending",
}


@dataclass(frozen=True)
class TrialSummary:
    number: int
    job_name: str
    status: str  # Completed | Stopped | Failed | InProgress | Pending
    objective: float | None  # the final value, or the last one reported before it ended
    hyperparameters: Mapping[str, Any]
    note: str = ""  # why it stopped or failed, or that it was retried
    final: bool = False  # its objective is a finished trial's final value (can be best)


@dataclass(frozen=True)
class TuningResult:
    name: str
    status: str  # Completed | Stopped | Failed
    message: str
    best: TrialSummary | None
    trials: tuple[TrialSummary, ...]
    plots: tuple[Path, ...]
    out_dir: Path

    def table(self) -> str:
        """Every trial, best marked with `*`: status, last objective, parameters, note."""
        names = sorted({k for t in self.trials for k in t.hyperparameters})
        header = ["", "trial", "job", "status", "objective", *names, "note"]
        rows = [header]
        for trial in self.trials:
            best = "*" if self.best is not None and trial.number == self.best.number else ""
            objective = "" if trial.objective is None else f"{trial.objective:.6g}"
            values = [_fmt(trial.hyperparameters.get(n, "")) for n in names]
            row = [best, str(trial.number), trial.job_name, trial.status, objective, *values]
            rows.append([*row, trial.note])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def summarize(trials: Sequence[Any]) -> tuple[TrialSummary, ...]:
    """One summary per Optuna trial, in trial order."""
    retried_by = {}
    for trial in trials:
        for number in trial.system_attrs.get(tj.RETRY_HISTORY, ()):
            retried_by[number] = trial.number
    return tuple(_summary(t, retried_by.get(t.number)) for t in trials)


def _summary(trial: Any, retry: int | None) -> TrialSummary:
    state = trial.state.name
    last_step = max(trial.intermediate_values, default=None)
    objective = trial.value if state in ("COMPLETE", "PRUNED") else None
    if objective is None and last_step is not None:
        objective = trial.intermediate_values[last_step]
    status = _STATUS.get(state, state.title())
    interrupted = trial.user_attrs.get(tj.INTERRUPTED_ATTR, "")
    note = trial.user_attrs.get(tj.MESSAGE_ATTR, "")
    if state == "PRUNED":
        note = (
            f"early stopping after epoch {last_step}" if last_step is not None else "early stopping"
        )
    elif state == "FAIL" and interrupted:
        status, note = tj.STOPPED, "stopped with the tuning job"
    elif state == "FAIL" and retry is not None:
        note = "its worker stopped responding (no heartbeat)"
    if retry is not None:
        note = f"{note}; retried as trial {retry}" if note else f"retried as trial {retry}"
    return TrialSummary(
        number=trial.number,
        job_name=trial.user_attrs.get(tj.JOB_ATTR, ""),
        status=status,
        objective=objective,
        hyperparameters=dict(trial.params),
        note=note,
        final=state == "COMPLETE" and trial.value is not None,
    )


def best_trial(settings: TuningSettings, trials: Sequence[TrialSummary]) -> TrialSummary | None:
    complete = [(t.objective, t) for t in trials if t.final and t.objective is not None]
    if not complete:
        return None
    sign = 1 if settings.maximize else -1
    return max(complete, key=lambda pair: (sign * pair[0], -pair[1].number))[1]


def plots(settings: TuningSettings, study: Any, out_dir: Path) -> tuple[Path, ...]:
    # matplotlib warns about one-trial axes (identical limits) and widens them itself.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _plots(settings, study, out_dir)


def _plots(settings: TuningSettings, study: Any, out_dir: Path) -> tuple[Path, ...]:
    """Optuna's matplotlib plots of the study, each a PNG in `out_dir`:

    objective.png  the history of the objective, early-stopped trials' last values included
    epochs.png     each trial's objective per epoch, early-stopped ones ending early
    slice.png      the objective against each hyperparameter
    importance.png which hyperparameters mattered (with 2+ ranges and 5+ finished trials)
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; PNG files only
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as ovm

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.value is not None]
    with_steps = [t for t in trials if t.intermediate_values]
    metric = settings.objective_metric
    paths: list[Path] = []

    def save(axes: Any, name: str, title: str) -> None:
        if hasattr(axes, "flat"):  # several panels: one title over them all
            figure = axes.flat[0].figure
            figure.suptitle(f"{settings.name}: {title}")
            # tight_layout would fight the shared colour bar Optuna adds; "tight" saving
            # keeps every label in the picture instead.
            figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
        else:
            figure = axes.figure
            for loc in ("left", "right"):  # Optuna's own titles, replaced by ours
                axes.set_title("", loc=loc)
            axes.set_title(f"{settings.name}: {title}")
            figure.tight_layout()
            figure.savefig(out_dir / name, dpi=100)
        plt.close(figure)
        paths.append(out_dir / name)

    plt.style.use("default")  # Optuna's plots set a style; keep files alike across runs
    if complete or pruned:
        axes = ovm.plot_optimization_history(study, target_name=metric)
        if pruned:
            axes.scatter(
                [t.number for t in pruned],
                [t.value for t in pruned],
                marker="x",
                color="tab:red",
                label="stopped early (last value)",
                zorder=3,
            )
            axes.legend(loc="best")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("trial")
        save(axes, "objective.png", "objective per trial")
    if with_steps:
        axes = ovm.plot_intermediate_values(study)
        _mark_stopped_trials(axes, {t.number for t in trials if t.state.name == "PRUNED"})
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        save(axes, "epochs.png", "objective per epoch")
    if complete:
        grid = ovm.plot_slice(study, target_name=metric)  # one panel, or an array of them
        panels = list(getattr(grid, "flat", [grid]))
        panels[0].figure.set_size_inches(max(3.6 * len(panels), 5.0) + 1.2, 4.2)
        for ax in panels:
            _readable_x_axis(ax)
        save(grid, "slice.png", "objective per hyperparameter (colour: trial number)")
    if len(settings.ranges) >= 2 and len(complete) >= 5:
        try:
            axes = ovm.plot_param_importances(study, target_name=metric)
        except (ValueError, RuntimeError):
            pass  # too few distinct values to tell importances apart
        else:
            save(axes, "importance.png", "hyperparameter importance")
    return tuple(paths)


def _mark_stopped_trials(axes: Any, stopped: set[int]) -> None:
    """Completed trials in blue, early-stopped ones red and dashed, ending in an x; one
    legend entry for each kind instead of one per trial."""
    from matplotlib.lines import Line2D

    for line in axes.get_lines():
        label = line.get_label()
        number = int(label[5:]) if label.startswith("Trial") and label[5:].isdigit() else None
        if number in stopped:
            line.set(color="tab:red", linestyle="--", alpha=0.9)
            x, y = line.get_data()
            axes.plot(x[-1:], y[-1:], marker="x", color="tab:red", markersize=9, linestyle="")
        else:
            line.set(color="tab:blue", alpha=0.6)
    handles = [Line2D([], [], color="tab:blue", label="completed")]
    if stopped:
        handles.append(
            Line2D([], [], color="tab:red", linestyle="--", marker="x", label="stopped early")
        )
    axes.legend(handles=handles, loc="best")


def _readable_x_axis(ax: Any) -> None:
    """Few, plain tick labels: log axes at 1-2-5 steps, categories without quotes."""
    from matplotlib import ticker

    if ax.get_xscale() == "log":
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0), numticks=12))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        labels = [label.get_text() for label in ax.get_xticklabels()]
        if labels and all(len(t) >= 2 and t[0] == t[-1] == "'" for t in labels):
            ax.set_xticks(ax.get_xticks(), [t[1:-1] for t in labels])
    ax.tick_params(axis="x", labelrotation=30)
