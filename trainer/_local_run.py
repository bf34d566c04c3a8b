"""Run one training plan on this machine as SageMaker's training container would."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from trainspec.trainer import _job_store as js
from trainspec.trainer._artifacts import ArtifactError, pack_model
from trainspec.trainer._container import (
    Channel,
    ContainerError,
    Host,
    JobLayout,
    TrainingRun,
    container_env,
    count_gpus,
    prepare_layout,
)
from trainspec.trainer._launch import free_port, host_commands, simulation_notes
from trainspec.trainer._metrics import MetricParser, MetricPoint, definitions_from_request
from trainspec.trainer._requirements import job_python
from trainspec.trainer._s3_inputs import fetch_inputs
from trainspec.v1 import job_spec_pb2, plan_pb2

# SageMaker gives a stopped script 120 s after SIGTERM; locally a short grace keeps
# tests and Ctrl-C snappy while still letting a script save a checkpoint.
STOP_GRACE_SECONDS = 10.0
_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class RunResult:
    """How a local training job ended."""

    name: str
    status: str  # Completed | Failed | Stopped
    secondary_status: str  # Completed | Failed | Stopped | MaxRuntimeExceeded | ...
    message: str
    exit_code: int | None
    metrics: Mapping[str, float]
    artifact: Path | None
    layout: JobLayout
    seconds: float
    metric_history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == js.COMPLETED


# A callback told of each metric value as it is printed; returning True stops the job
# (the tuner's pruning).
MetricCallback = Callable[[MetricPoint], bool]


def training_run_from_plan(plan: plan_pb2.Plan, base: Path | None = None) -> TrainingRun:
    """The TrainingRun of a `CreateTrainingJob` plan. `base` is the folder the plan's local
    paths are relative to (its spec's project root); by default the working directory."""
    if plan.sagemaker_operation != "CreateTrainingJob":
        raise ContainerError(
            f"plan is a {plan.sagemaker_operation or 'empty'} plan, not a training job"
        )
    request = json_format.MessageToDict(plan.sagemaker_request)
    run = training_run_from_parts(
        request["TrainingJobName"],
        plan.job.training,
        request,
        hyperparameters=request.get("HyperParameters", {}),
        base=base,
    )
    sizes = plan.batch_sizes
    return replace(run, gpus_per_instance=sizes.devices_per_instance * (sizes.device_kind == "gpu"))


def training_run_from_parts(
    name: str,
    spec: job_spec_pb2.TrainingJobSpec,
    request: Mapping[str, Any],
    *,
    hyperparameters: Mapping[str, str],
    base: Path | None = None,
) -> TrainingRun:
    """A TrainingRun from a resolved training spec and its (training-job) request part.

    `request` is a CreateTrainingJob request or a tuning job's TrainingJobDefinition; the
    resolved spec supplies what the request cannot: the local source and data paths, which
    are relative to `base` (the working directory when None).
    """
    base = base or Path.cwd()
    kind = spec.model.WhichOneof("kind")
    source_dir: Path | None = None
    source_archive = ""
    if kind == "framework":
        framework = spec.model.framework
        source_dir = (base / (framework.source_dir or ".")).resolve()
        entry_point = framework.entry_point or hyperparameters.get("sagemaker_program", "")
        entry_path = source_dir / entry_point
        if not entry_point or not entry_path.is_file():
            raise ContainerError(
                f"entry point {str(entry_path) if entry_point else '(none)'} does not exist "
                "(check training.model.framework.entry_point and source_dir)"
            )
    elif kind == "pretrained":
        # JumpStart's script arrives as the toolkit fetches it on SageMaker: an archive that
        # `sagemaker_submit_directory` names, run as `sagemaker_program`.
        entry_point = str(hyperparameters.get("sagemaker_program", ""))
        source_archive = str(hyperparameters.get("sagemaker_submit_directory", ""))
        if not entry_point or not source_archive:
            raise ContainerError(
                f"job {name!r}: the pretrained model {spec.model.pretrained!r} has no "
                "sagemaker_program and sagemaker_submit_directory hyperparameters to run"
            )
    else:
        raise ContainerError(
            "local runs need a script: a framework model with an entry point, or a "
            f"pretrained (JumpStart) model; job {name!r} uses a {kind or 'missing'} model, "
            "which runs on SageMaker only (trainspec submit)"
        )
    channels = []
    request_channels = {c["ChannelName"]: c for c in request.get("InputDataConfig", [])}
    for channel_name in sorted(spec.data):
        source = spec.data[channel_name]
        if source.HasField("file_system"):
            raise ContainerError(
                f"data channel {channel_name!r} is an EFS/FSx file system, which local runs "
                "cannot mount; give a local path or an s3:// URI"
            )
        uri = source.uri.removeprefix("file://")
        if uri and not uri.startswith("s3://"):
            uri = str(base / uri)
        channels.append(_channel(channel_name, uri, request_channels.get(channel_name, {})))
    # Channels the compiler adds (a pretrained model's weights and script, incremental
    # training's earlier model) are in the request only, always on S3.
    for channel_name, config in request_channels.items():
        s3 = config.get("DataSource", {}).get("S3DataSource", {})
        if channel_name not in spec.data and s3.get("S3Uri"):
            channels.append(_channel(channel_name, s3["S3Uri"], config))
    environment = dict(request.get("Environment", {}))
    if spec.HasField("sifting") and "TRAINSPEC_SIFTING" not in environment:
        environment["TRAINSPEC_SIFTING"] = json_format.MessageToJson(
            spec.sifting, preserving_proto_field_name=True, indent=None
        )
    metrics = definitions_from_request(
        request.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
    )
    resources = request.get("ResourceConfig", {})
    return TrainingRun(
        name=name,
        entry_point=entry_point,
        source_dir=source_dir,
        source_archive=source_archive,
        hyperparameters={k: str(v) for k, v in hyperparameters.items()},
        channels=tuple(channels),
        environment=environment,
        metric_definitions=metrics,
        max_runtime_seconds=int(
            request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        ),
        instance_type=resources.get("InstanceType", "local"),
        instance_count=int(resources.get("InstanceCount", 1)),
        instance_groups=tuple(
            (g["InstanceGroupName"], g["InstanceType"], int(g["InstanceCount"]))
            for g in resources.get("InstanceGroups", [])
        ),
        region=spec.region,
    )


def with_local_channels(run: TrainingRun, local: Mapping[str, Path]) -> TrainingRun:
    """`run` with the channels `local` names read from local files or folders instead of
    S3 (a pretrained model's weights or script fetched some other way, data at hand)."""
    names = {c.name for c in run.channels}
    unknown = sorted(set(local) - names)
    if unknown:
        raise ContainerError(
            f"job {run.name!r} has no channel {', '.join(map(repr, unknown))}; its channels: "
            + ", ".join(sorted(names))
        )
    return replace(
        run,
        channels=tuple(
            replace(c, uri=str(Path(local[c.name]).resolve())) if c.name in local else c
            for c in run.channels
        ),
    )


def _channel(name: str, uri: str, config: Mapping[str, Any]) -> Channel:
    """A channel at `uri` with its request entry's settings (SageMaker's defaults)."""
    s3 = config.get("DataSource", {}).get("S3DataSource", {})
    return Channel(
        name=name,
        uri=uri,
        input_mode=config.get("InputMode", "File"),
        content_type=config.get("ContentType", ""),
        distribution=s3.get("S3DataDistributionType", "FullyReplicated"),
        record_wrapper=config.get("RecordWrapperType", "None"),
        compression=config.get("CompressionType", "None"),
        s3_data_type=s3.get("S3DataType", "S3Prefix"),
    )


def run_training(
    run: TrainingRun,
    root: Path,
    *,
    store: js.JobStore | None = None,
    kind: str = "training",
    parent: str = "",
    echo: Callable[[str], None] | None = None,
    on_metric: MetricCallback | None = None,
    max_runtime_seconds: float | None = None,
) -> RunResult:
    """Lay out the job, run its entry point, report metrics and pack model.tar.gz.

    Raises ContainerError for problems found before the script starts (missing entry
    point or data channel, unwritable root, S3 inputs that cannot be fetched: then
    InputsUnavailable when S3 or the disk failed); everything after that is a RunResult.
    """
    echo = echo or _print
    root = Path(root)
    if store is None:
        try:
            store = js.JobStore.for_root(root)
        except (OSError, Exception) as exc:  # sqlite3.Error has no common OSError base
            raise ContainerError(f"cannot use {root} for local jobs: {exc}") from None
    previous = store.get(run.name)
    if previous is not None and previous.status == js.COMPLETED:
        # Checkpoints are for resuming a run that did not finish; a rerun of a completed
        # job starts from scratch.
        shutil.rmtree(Path(previous.job_dir) / "checkpoints", ignore_errors=True)
    layout = prepare_layout(run, root)
    # Every other host gets a job directory of its own, as each container has its /opt/ml.
    others = [(host, prepare_layout(run, root, host)) for host in run.hosts[1:]]
    for each in (layout, *(other for _host, other in others)):
        fetch_inputs(run, each, root, echo)
    python = job_python(layout.code_dir, root, echo)
    store.start(
        run.name,
        kind,
        parent=parent,
        job_dir=str(layout.job_dir),
        hyperparameters=run.hyperparameters,
    )
    started = time.monotonic()
    try:
        hosts = [(run.hosts[0], layout), *others]
        result = _execute(run, hosts, python, store, echo, on_metric, max_runtime_seconds, started)
    except BaseException:
        # KeyboardInterrupt (or a bug) while the script runs: the store must not keep
        # showing the job as running.
        store.finish(run.name, js.STOPPED, message="interrupted (Ctrl-C)")
        raise
    store.finish(
        run.name,
        result.status,
        secondary_status=result.secondary_status,
        message=result.message,
        artifact=str(result.artifact or ""),
        metrics=result.metrics,
    )
    return result


def _print(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def _execute(
    run: TrainingRun,
    hosts: list[tuple[Host, JobLayout]],
    python: str,
    store: js.JobStore,
    echo: Callable[[str], None],
    on_metric: MetricCallback | None,
    max_runtime_seconds: float | None,
    started: float,
) -> RunResult:
    parser = MetricParser(run.metric_definitions)
    layout = hosts[0][1]  # the master's: its model is the job's artifact
    limit: float = run.max_runtime_seconds
    if max_runtime_seconds is not None:
        limit = min(limit, max_runtime_seconds)
    reason: list[str] = []  # why trainspec ended the process, first reason wins
    local_gpus = count_gpus()
    for note in simulation_notes(run, run.gpus_per_instance, local_gpus):
        echo(f"[trainspec] simulating: {note}\n")
    commands = host_commands(run, free_port(), python)
    processes: list[subprocess.Popen[str]] = []
    for (host, host_layout), command in zip(hosts, commands, strict=True):
        env = dict(os.environ)
        env.update(container_env(run, host_layout, host, num_gpus=local_gpus))
        env["PYTHONUNBUFFERED"] = "1"  # logs stream line by line, as in CloudWatch
        processes.append(
            subprocess.Popen(
                command,
                cwd=host_layout.code_dir,  # the toolkit runs the entry point from /opt/ml/code
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # A process group each: stopping the job kills every host's tree.
                start_new_session=True,
                text=True,
                errors="replace",
                bufsize=1,
            )
        )
    process = processes[0]
    store.set_process_group(run.name, process.pid)

    def stop(why: str) -> None:
        if not reason:
            reason.append(why)
        _terminate(processes)

    timer = threading.Timer(max(limit, 0), stop, args=("MaxRuntimeExceeded",))
    timer.daemon = True
    timer.start()
    # A stop asked for before the process group was recorded found nothing to signal.
    if store.stop_requested(run.name):
        stop("Stopped")
    tail: list[str] = []
    prefix = len(hosts) > 1  # CloudWatch keeps a stream per host; here lines say their host
    try:
        followers = [
            threading.Thread(
                target=_follow,
                args=(p, h_layout, echo, f"[{host.name}] " if prefix else ""),
                daemon=True,
            )
            for p, (host, h_layout) in zip(processes[1:], hosts[1:], strict=True)
        ]
        for follower in followers:
            follower.start()
        with open(layout.log_file, "w", encoding="utf-8") as log:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                echo(f"[{hosts[0][0].name}] {line}" if prefix else line)
                tail = [*tail, line][-_LOG_TAIL_LINES:]
                for point in parser.feed(line):  # metrics, as SageMaker's, from algo-1
                    if on_metric is not None and on_metric(point):
                        stop("EarlyStopped")
        process.wait()
        if process.returncode or reason or store.stop_requested(run.name):
            _terminate(processes)  # a job whose master ended badly ends on every host
        for each in processes:
            each.wait()
        for follower in followers:
            follower.join()
    except BaseException:
        _terminate(processes)
        raise
    finally:
        timer.cancel()
        for each in processes:
            if each.stdout is not None:
                each.stdout.close()

    # The job fails when any host fails, as on SageMaker.
    exit_code = next((p.returncode for p in processes if p.returncode), 0)
    if not reason and store.stop_requested(run.name):
        reason.append("Stopped")
    status, secondary, message = _verdict(run, layout, exit_code, reason, tail, limit)
    artifact = None
    packable = status == js.COMPLETED or (status == js.STOPPED and any(layout.model_dir.iterdir()))
    if packable:
        try:
            artifact = pack_model(layout.model_dir, layout.artifact)
        except ArtifactError as exc:
            status, secondary, message = js.FAILED, js.FAILED, f"packing the model failed: {exc}"
    if status == js.FAILED:
        with contextlib.suppress(OSError):
            if not layout.failure_file.exists():
                layout.failure_file.write_text(message + "\n", encoding="utf-8")
    return RunResult(
        name=run.name,
        status=status,
        secondary_status=secondary,
        message=message,
        exit_code=exit_code,
        metrics=parser.final(),
        artifact=artifact,
        layout=layout,
        seconds=time.monotonic() - started,
        metric_history={d.name: parser.history(d.name) for d in run.metric_definitions},
    )


def _follow(
    process: subprocess.Popen[str], layout: JobLayout, echo: Callable[[str], None], prefix: str
) -> None:
    """Log another host's output to its own training.log, and echo it with its name."""
    with open(layout.log_file, "w", encoding="utf-8") as log:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            echo(prefix + line)


def _verdict(
    run: TrainingRun,
    layout: JobLayout,
    exit_code: int,
    reason: list[str],
    tail: list[str],
    limit: float,
) -> tuple[str, str, str]:
    if reason and reason[0] == "MaxRuntimeExceeded":
        return (
            js.STOPPED,
            "MaxRuntimeExceeded",
            f"stopped after the maximum runtime of {limit:g} s; checkpoints are kept in "
            f"{layout.checkpoint_dir}",
        )
    if reason and reason[0] == "EarlyStopped":
        return js.STOPPED, "EarlyStopped", "stopped early by the tuner (pruned)"
    if reason:
        return js.STOPPED, js.STOPPED, "stopped on request"
    if exit_code == 0:
        return js.COMPLETED, js.COMPLETED, "training completed"
    failure = ""
    with contextlib.suppress(OSError):
        # SageMaker convention: the script may explain itself in output/failure.
        failure = layout.failure_file.read_text(encoding="utf-8").strip()
    if exit_code < 0:
        try:
            signame = signal.Signals(-exit_code).name
        except ValueError:
            signame = f"signal {-exit_code}"
        message = (
            f"the entry point was killed by {signame}; checkpoints are kept in "
            f"{layout.checkpoint_dir}, run the job again to resume"
        )
    else:
        message = f"the entry point {run.entry_point} exited with status {exit_code}"
    if failure:
        message += f": {failure}"
    elif tail:
        message += "; last log lines:\n" + "".join(tail[-5:]).rstrip()
    return js.FAILED, js.FAILED, message


def _terminate(processes: subprocess.Popen[str] | list[subprocess.Popen[str]]) -> None:
    """SIGTERM each host's process group, then SIGKILL them after a grace period (in the
    background)."""
    group = processes if isinstance(processes, list) else [processes]
    running = [p for p in group if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)

    def kill_later() -> None:
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)

    if running:
        threading.Thread(target=kill_later, daemon=True).start()
