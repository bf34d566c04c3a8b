"""Run a tuning plan's trials locally with Optuna, as one worker of a tuning job.

Any number of workers (threads here, processes, other machines) share one tuning job
through one database: they take turns under the job's lock to decide whether a trial may
start, so `max_jobs` and `max_parallel_jobs` hold for the whole job, and the first worker
to find the job over stores the verdict that every worker then reports. Optuna's heartbeats
find trials whose worker died, and its retry callback queues their parameters again.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from trainspec.trainer import _job_store as js
from trainspec.trainer import _optuna_storage as storage_mod
from trainspec.trainer import _tuning_job as tj
from trainspec.trainer._container import ContainerError, TrainingRun, check_job_name, job_dir
from trainspec.trainer._local_run import RunResult, run_training
from trainspec.trainer._metrics import MetricPoint
from trainspec.trainer._optuna_storage import Heartbeat, InfrastructureError
from trainspec.trainer._storage_url import StorageURLError, default_storage_url, masked
from trainspec.trainer._tuning_report import (
    TrialSummary,
    TuningResult,
    best_trial,
    plots,
    summarize,
)
from trainspec.trainer._tuning_settings import (
    ParameterRange,
    TuningError,
    TuningSettings,
    last_epoch,
    tuning_from_plan,
    tuning_from_request,
)

__all__ = [
    "Heartbeat",
    "InfrastructureError",
    "ParameterRange",
    "TrialSummary",
    "TuningError",
    "TuningResult",
    "TuningSettings",
    "default_storage_url",
    "run_tuning",
    "tuning_from_plan",
    "tuning_from_request",
]

# How often an idle worker thread looks again whether a trial may start.
_POLL_SECONDS = 1.0
_WORKERS_ATTR = "trainspec_workers"


def _sampler(settings: TuningSettings, worker: int = 0) -> Any:
    import optuna

    # Workers sharing a job must not draw the same numbers: each joins with its own seed
    # (the first keeps the plan's, so a one-worker run is reproducible).
    seed = None if settings.random_seed is None else settings.random_seed + worker
    if settings.strategy == "Grid":
        space = {}
        for r in settings.ranges:
            if r.kind != "categorical":
                raise TuningError(
                    f"Grid search takes categorical ranges only; {r.name} is {r.kind}"
                )
            space[r.name] = list(r.values)
        return optuna.samplers.GridSampler(space, seed=seed)
    if settings.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Bayesian and Hyperband: TPE is Optuna's model-based sampler; SageMaker's Hyperband
    # also samples with a Bayesian model. constant_liar counts running trials as bad
    # results, so trials started in parallel do not crowd the same point.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _pruner(settings: TuningSettings) -> Any:
    import optuna

    if settings.strategy == "Hyperband":
        max_resource: Any = settings.max_resource or "auto"
        return optuna.pruners.HyperbandPruner(
            min_resource=max(settings.min_resource, 1), max_resource=max_resource
        )
    if settings.early_stopping == "Auto":
        # SageMaker's rule: stop a trial whose objective is worse than the median of
        # earlier trials at the same epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, r: ParameterRange) -> Any:
    if r.kind == "categorical":
        return trial.suggest_categorical(r.name, list(r.values))
    log = r.scaling == "Logarithmic"
    if r.kind == "integer":
        return trial.suggest_int(r.name, int(r.low), int(r.high), log=log)
    # Optuna has no reverse-logarithmic distribution; such ranges are searched linearly.
    return trial.suggest_float(r.name, r.low, r.high, log=log)


def _as_hyperparameter(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class _TrialFailed(Exception):
    """A trial ended without an objective value; Optuna records it as FAIL."""


def run_tuning(
    settings: TuningSettings,
    template: TrainingRun,
    root: Path,
    *,
    storage_url: str | None = None,
    echo: Callable[[str], None] | None = None,
    heartbeat: Heartbeat | None = None,
) -> TuningResult:
    """Work on the tuning job until it is over, and return its results.

    Trials persist in Optuna's RDB storage (SQLite under `root` unless `storage_url`
    names a shared database) and in the job store. Every worker started on the same job
    shares its limits and verdict; a rerun resumes a stopped job (its interrupted trials
    first) and reports a finished one without starting trials.

    Raises TuningError for a plan or URL that cannot run, InfrastructureError when the
    database or disk fails.
    """
    import optuna

    echo = echo or _print
    root = Path(root)
    check_job_name(settings.name)  # before any path is made from it
    url = storage_url or default_storage_url(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        store = js.JobStore.for_root(root)
        out_dir = job_dir(root, settings.name)
        out_dir.mkdir(parents=True, exist_ok=True)
    except Exception as exc:
        if storage_mod.is_infrastructure(exc):
            raise InfrastructureError(f"cannot use {root} for local jobs: {exc}") from None
        raise ContainerError(f"cannot use {root} for local jobs: {exc}") from None
    previous_verbosity = optuna.logging.get_verbosity()
    # Optuna would log every failed trial with a traceback; the tuner reports them itself.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        try:
            storage = storage_mod.open_storage(url, heartbeat or Heartbeat())
        except StorageURLError as exc:
            raise TuningError(str(exc)) from None
        worker = _Worker(settings, template, root, storage, url, store, echo)
        worker.run()
        result = worker.result(out_dir)
    except (TuningError, ContainerError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if storage_mod.is_infrastructure(exc):
            raise storage_mod.infrastructure_error(exc, url) from None
        raise
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
    return result


class _Worker:
    """This process's share of one tuning job: up to `max_parallel_jobs` trial threads."""

    def __init__(
        self,
        settings: TuningSettings,
        template: TrainingRun,
        root: Path,
        storage: Any,
        url: str,
        store: js.JobStore,
        echo: Callable[[str], None],
    ) -> None:
        import optuna

        self.settings, self.template, self.root = settings, template, root
        self.url, self.store, self._echo = url, store, echo
        self.storage = storage
        self.lock = storage_mod.JobLock(storage, url, settings.name)
        self._echo_lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._abort = threading.Event()
        direction: Literal["maximize", "minimize"] = "maximize" if settings.maximize else "minimize"
        # Validate the strategy before anything is stored (Grid with numeric ranges).
        _sampler(settings)
        optuna.create_study(
            study_name=settings.name, storage=storage, direction=direction, load_if_exists=True
        )
        with self.lock.held():
            probe = optuna.load_study(study_name=settings.name, storage=storage)
            index = int(probe.user_attrs.get(_WORKERS_ATTR, 0))
            probe.set_user_attr(_WORKERS_ATTR, index + 1)
        self.study = optuna.load_study(
            study_name=settings.name,
            storage=storage,
            sampler=_sampler(settings, index),
            pruner=_pruner(settings),
        )
        self.study_id = storage.get_study_id_from_name(settings.name)
        if self.study.direction.name.lower() != direction:
            raise TuningError(
                f"tuning job {settings.name} in {masked(url)} was started to "
                f"{self.study.direction.name.lower()} its objective; this plan would {direction} it"
            )

    def echo(self, line: str) -> None:
        with self._echo_lock:
            self._echo(line)

    # -- joining and leaving the job -------------------------------------------------------

    def run(self) -> None:
        name = self.settings.name
        with self.lock.held():
            stored = self._stored_verdict()
            if stored is not None and not tj.reopens(stored, self.settings):
                self.echo(f"tuning job {name} is over: {stored.status} ({stored.message})\n")
                return
            if stored is not None:
                self.study.set_user_attr(tj.VERDICT_ATTR, None)
                self.study.set_user_attr(tj.STARTED_ATTR, None)
            if self.study.user_attrs.get(tj.STARTED_ATTR) is None:
                self.study.set_user_attr(tj.STARTED_ATTR, time.time())
            counts = tj.count(self.study.get_trials(deepcopy=False))
        if stored is not None or counts.used:
            how = "resuming" if stored is not None or not counts.running else "joining"
            self.echo(
                f"{how} tuning job {name}: {counts.finished} trial(s) finished, "
                f"{counts.running} running, {counts.waiting} queued\n"
            )
        existing = self.store.get(name)
        if existing is None or not existing.active:
            self.store.start(name, "tuning", job_dir=str(job_dir(self.root, name)))
        threads = [
            threading.Thread(target=self._trial_loop, name=f"{name}-trials-{i}", daemon=True)
            for i in range(max(self.settings.max_parallel_jobs, 1))
        ]
        try:
            with _ctrl_c_stops(self.store, name, self.echo):
                for thread in threads:
                    thread.start()
                self._watch(threads)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                self.store.finish(name, js.STOPPED, message="interrupted (Ctrl-C); rerun to resume")
            raise
        if self._errors:
            raise self._errors[0]

    def _watch(self, threads: list[threading.Thread]) -> None:
        # The job's verdict may come from another machine: a stop there stops this
        # worker's running trials here, through the local job store.
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=2.0)
            if self._abort.is_set():
                continue
            try:
                verdict = self._stored_verdict()
            except Exception as exc:
                self._fail(exc)
                continue
            if verdict is not None and verdict.status == tj.STOPPED:
                record = self.store.get(self.settings.name)
                if record is not None and record.active and not record.stop_requested:
                    self.store.request_stop(self.settings.name)

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._abort.set()

    def _stored_verdict(self) -> tj.Verdict | None:
        return tj.Verdict.from_attr(self.study.user_attrs.get(tj.VERDICT_ATTR))

    # -- the trial loop ----------------------------------------------------------------------

    def _trial_loop(self) -> None:
        import optuna

        try:
            while not self._abort.is_set():
                step = self._claim()
                if isinstance(step, tj.Verdict):
                    return
                if step is tj.Step.WAIT:
                    time.sleep(_POLL_SECONDS)
                    continue
                # The lock is held: the objective releases it once its trial exists and
                # has its parameters, so no other worker can start one in between.
                try:
                    self.study.optimize(self._objective, n_trials=1, catch=(_TrialFailed,))
                except optuna.exceptions.UpdateFinishedTrialError:
                    self.echo(
                        "a trial of this worker went without a heartbeat for too long, so "
                        "another worker failed it and queued it again; its result is dropped\n"
                    )
                finally:
                    self.lock.release()
                self._progress()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.lock.close()

    def _claim(self) -> tj.Step | tj.Verdict:
        """Under the job's lock: the job's verdict if it is over, else whether to start a
        trial (then the lock stays held for the objective to release)."""
        import optuna

        self.lock.acquire()
        try:
            # Fail trials whose worker stopped sending heartbeats; Optuna's retry callback
            # queues their parameters again.
            optuna.storages.fail_stale_trials(self.study)
            self._fail_unstarted()
            verdict = self._stored_verdict()
            if verdict is None:
                trials = self.study.get_trials(deepcopy=False)
                started = self.study.user_attrs.get(tj.STARTED_ATTR) or time.time()
                verdict = tj.decide(
                    self.settings,
                    trials,
                    elapsed_seconds=time.time() - float(started),
                    stop_requested=self.store.stop_requested(self.settings.name),
                )
                if verdict is not None:
                    self.study.set_user_attr(tj.VERDICT_ATTR, verdict.to_attr())
                else:
                    step = tj.next_step(self.settings, tj.count(trials))
                    if step is tj.Step.RUN:
                        return step  # still holding the lock
                    self.lock.release()
                    return step
            self.lock.release()
            return verdict
        except BaseException:
            self.lock.release()
            raise

    def _objective(self, trial: Any) -> float:
        import optuna

        settings = self.settings
        try:
            # A first heartbeat before the job name: a trial with its own job name has a
            # heartbeat row, so Optuna can find it stale (see _fail_unstarted).
            self.storage.record_heartbeat(self._trial_id(trial.number))
            values = {r.name: _suggest(trial, r) for r in settings.ranges}
            job = _job_name(settings, trial.number)
            trial.set_user_attr(tj.JOB_ATTR, job)
        finally:
            self.lock.release()
        hyperparameters = dict(self.template.hyperparameters)
        hyperparameters.update({k: _as_hyperparameter(v) for k, v in values.items()})
        run = replace(self.template, name=job, hyperparameters=hyperparameters)
        last = last_epoch(settings, hyperparameters)
        reported: list[tuple[int, float]] = []
        self.echo(f"[{job}] starting: {', '.join(f'{k}={_fmt(v)}' for k, v in values.items())}\n")

        pruned: list[bool] = []

        def on_metric(point: MetricPoint) -> bool:
            if point.name != settings.objective_metric or pruned:
                # Lines printed after the decision, before the process stops, are not
                # the trial's: it ends at the epoch early stopping judged.
                return False
            # Epochs count from 1, as Hyperband's min/max resource do.
            epoch = point.step + 1
            trial.report(point.value, epoch)
            reported.append((epoch, point.value))
            if last is not None and epoch >= last:
                return False  # its last epoch has run: stopping now would save nothing
            if trial.should_prune():
                pruned.append(True)
            return bool(pruned)

        started = float(self.study.user_attrs.get(tj.STARTED_ATTR) or time.time())
        budget = None
        if settings.max_runtime_seconds is not None:
            budget = max(started + settings.max_runtime_seconds - time.time(), 0.0)
        result = run_training(
            run,
            self.root,
            store=self.store,
            kind="trial",
            parent=settings.name,
            echo=lambda line: self.echo(f"[{job}] {line}"),
            on_metric=on_metric,
            max_runtime_seconds=budget,
        )
        value = _trial_value(settings, result)
        shown = "" if value is None else f", {settings.objective_metric}={value:.6g}"
        if result.secondary_status == "EarlyStopped":
            epoch, value = reported[-1] if reported else (None, value)
            shown = "" if value is None else f", {settings.objective_metric}={value:.6g}"
            self.echo(f"[{job}] Stopped by early stopping{_after(epoch)}{shown}\n")
            raise optuna.TrialPruned()
        if result.secondary_status == js.STOPPED:
            # Stopped with the tuning job: queue the same parameters to run on resume.
            trial.set_user_attr(tj.INTERRUPTED_ATTR, "stopped")
            self._requeue(trial)
            self.echo(f"[{job}] Stopped with the tuning job; it runs again on resume\n")
            raise _TrialFailed("stopped with the tuning job")
        if value is None:
            if result.ok:
                message = (
                    f"trial {job} printed no value of the objective metric "
                    f"{settings.objective_metric!r} (check its regex in training.metrics)"
                )
            else:
                message = f"trial {job} {result.status.lower()}: {result.message}"
            self.store.finish(
                job,
                js.FAILED if result.ok else result.status,
                secondary_status=js.FAILED if result.ok else result.secondary_status,
                message=message,
                artifact=str(result.artifact or ""),
                metrics=result.metrics,
            )
            trial.set_user_attr(tj.MESSAGE_ATTR, message.splitlines()[0])
            self.echo(f"[{job}] Failed: {message.splitlines()[0]}\n")
            raise _TrialFailed(message)
        self.store.finish(
            job,
            result.status,
            secondary_status=result.secondary_status,
            message=result.message,
            artifact=str(result.artifact or ""),
            metrics=result.metrics,
            objective=value,
        )
        self.echo(f"[{job}] {result.status}{shown}\n")
        return value

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _fail_unstarted(self) -> None:
        """Fail and retry running trials that never got their job name.

        NOTE [unstarted trials]: Optuna only finds a trial stale once it has a heartbeat,
        and a worker killed between creating a trial and its first heartbeat leaves one
        RUNNING forever. Workers create trials and name them under the job's lock, so a
        running trial without its own job name, seen under the lock, has no worker left.
        """
        import optuna

        callback = self.storage.get_heartbeat_stale_trial_callback()
        for trial in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        ):
            if trial.user_attrs.get(tj.JOB_ATTR) == _job_name(self.settings, trial.number):
                continue
            trial_id = self._trial_id(trial.number)
            try:
                failed = self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if failed and callback is not None:
                callback(self.study, self.storage.get_trial(trial_id))

    def _requeue(self, trial: Any) -> None:
        import optuna

        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        history = [*frozen.system_attrs.get(tj.RETRY_HISTORY, ()), frozen.number]
        self.study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=frozen.params,
                distributions=frozen.distributions,
                system_attrs={"failed_trial": history[0], tj.RETRY_HISTORY: history},
            )
        )

    def _progress(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        counts = tj.count(trials)
        best = best_trial(self.settings, summarize(trials))
        shown = (
            f"; best {self.settings.objective_metric}={best.objective:.6g} ({best.job_name})"
            if best
            else ""
        )
        self.echo(
            f"progress: {counts.finished}/{self.settings.max_jobs} trials finished "
            f"({counts.completed} completed, {counts.stopped_early} stopped early, "
            f"{counts.failed} failed), {counts.running} running{shown}\n"
        )

    # -- the result ------------------------------------------------------------------------

    def result(self, out_dir: Path) -> TuningResult:
        settings = self.settings
        verdict = self._stored_verdict()
        if verdict is None:  # this worker left early (stopped locally before deciding)
            verdict = tj.Verdict(tj.STOPPED, "stopped on request", "request", settings.max_jobs)
        trials = summarize(self.study.get_trials(deepcopy=False))
        best = best_trial(settings, trials)
        pictures = plots(settings, self.study, out_dir)
        result = TuningResult(
            settings.name, verdict.status, verdict.message, best, trials, pictures, out_dir
        )
        (out_dir / "trials.txt").write_text(result.table() + "\n", encoding="utf-8")
        self.store.finish(
            settings.name,
            verdict.status,
            message=verdict.message,
            objective=best.objective if best else None,
            metrics=(
                {settings.objective_metric: best.objective}
                if best and best.objective is not None
                else None
            ),
        )
        return result


def _job_name(settings: TuningSettings, number: int) -> str:
    return f"{settings.name}-{number:03d}"


def _after(epoch: int | None) -> str:
    return "" if epoch is None else f" after epoch {epoch}"


@contextlib.contextmanager
def _ctrl_c_stops(store: js.JobStore, name: str, echo: Callable[[str], None]) -> Iterator[None]:
    """The first Ctrl-C stops the tuning job like `trainspec jobs stop`: every worker's
    running trials are stopped and run again on resume; a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        echo(f"stopping tuning job {name} (Ctrl-C again to abort)\n")
        store.request_stop(name)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print(line: str) -> None:
    import sys

    sys.stdout.write(line)
    sys.stdout.flush()


def _trial_value(settings: TuningSettings, result: RunResult) -> float | None:
    # A completed trial's objective is the metric's last value (SageMaker's final value).
    if result.ok or result.secondary_status == "EarlyStopped":
        value = result.metrics.get(settings.objective_metric)
        if value is not None and math.isfinite(value):
            return value
    return None
