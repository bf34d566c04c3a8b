"""SageMaker's training container conventions on the local disk: job layout and SM_* env."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainspec.trainer._metrics import MetricDefinition
from trainspec.trainer._toolkit import (
    SAGEMAKER_PREFIX,
    TOOLKIT_OWN,
    cmd_args,
    decode_hyperparameters,
    process_environment,
    toolkit_view,
)
from trainspec.trainer._vendor import extra_source_files, uses_sifting

CURRENT_HOST = "algo-1"  # the first (master) host of every job


class ContainerError(Exception):
    """The job cannot be laid out (a missing channel, an unwritable root); user-facing."""


# SageMaker's job name rule: letters, digits and inner hyphens, so a name is always one
# path component (no separator, no `..`, never empty) and a job directory stays in its root.
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def check_job_name(name: str) -> str:
    """`name` if it is a valid job name; ContainerError before any path is built from it."""
    if not _JOB_NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ContainerError(
            f"invalid job name {shown!r}: 1-63 letters, digits and hyphens, starting and "
            "ending with a letter or digit"
        )
    return name


def job_dir(root: Path, name: str, host: str = CURRENT_HOST) -> Path:
    """`<root>/<name>` (algo-1's), refusing any name that would leave the root."""
    base = Path(root).resolve()
    if host == CURRENT_HOST:
        return base / check_job_name(name)
    return base / ".hosts" / check_job_name(name) / host


@dataclass(frozen=True)
class Channel:
    """An input channel: a local directory or file, or an S3 URI, plus its config."""

    name: str
    uri: str
    input_mode: str = "File"
    content_type: str = ""
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"
    compression: str = "None"
    s3_data_type: str = "S3Prefix"

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def data_config(self) -> dict[str, str]:
        """This channel's entry of inputdataconfig.json."""
        entry = {
            "TrainingInputMode": self.input_mode,
            "S3DistributionType": self.distribution,
            "RecordWrapperType": self.record_wrapper,
        }
        if self.content_type:
            entry["ContentType"] = self.content_type
        if self.compression != "None":
            entry["CompressionType"] = self.compression
        return entry


@dataclass(frozen=True)
class TrainingRun:
    """Everything the local runner needs for one training job (from a plan, or a trial)."""

    name: str
    entry_point: str  # relative to source_dir (or to the unpacked source_archive)
    source_dir: Path | None  # None when the source is `source_archive`
    hyperparameters: Mapping[str, str]  # the request's HyperParameters (strings)
    channels: tuple[Channel, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    metric_definitions: tuple[MetricDefinition, ...] = ()
    max_runtime_seconds: int = 86400
    instance_type: str = "local"
    instance_count: int = 1
    region: str = ""
    # A heterogeneous cluster's groups: (name, instance type, count); empty for one group.
    instance_groups: tuple[tuple[str, str, int], ...] = ()
    # GPUs of the planned instance (from the plan's batch sizes), to say what a machine
    # without them simulates; 0 when none or unknown.
    gpus_per_instance: int = 0
    # A pretrained model's script archive (its `sagemaker_submit_directory`: an s3:// URI,
    # or a path under /opt/ml/ in one of its channels), unpacked into code/ before the run.
    source_archive: str = ""

    @property
    def hosts(self) -> tuple[Host, ...]:
        """The containers of the job, as SageMaker names them: algo-1 ... algo-N, group by
        group in the request's order."""
        groups = self.instance_groups or (
            ("homogeneousCluster", self.instance_type, self.instance_count),
        )
        hosts: list[Host] = []
        for group, instance_type, count in groups:
            for _ in range(max(count, 1)):
                hosts.append(Host(f"algo-{len(hosts) + 1}", group, instance_type))
        return tuple(hosts)


@dataclass(frozen=True)
class Host:
    """One container of a job: its name, instance group and instance type."""

    name: str
    group: str
    instance_type: str


@dataclass(frozen=True)
class JobLayout:
    """One host's job directory, playing `/opt/ml/`: `<root>/<job>/` for algo-1 (the
    master, whose model is the job's artifact), `<root>/.hosts/<job>/algo-N/` for the others."""

    job_dir: Path

    @property
    def code_dir(self) -> Path:
        return self.job_dir / "code"

    @property
    def input_dir(self) -> Path:
        return self.job_dir / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def model_dir(self) -> Path:
        return self.job_dir / "model"

    @property
    def output_dir(self) -> Path:
        return self.job_dir / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.job_dir / "checkpoints"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def log_file(self) -> Path:
        return self.output_dir / "training.log"

    @property
    def artifact(self) -> Path:
        return self.output_dir / "model.tar.gz"

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def prepare_layout(run: TrainingRun, root: Path, host: Host | None = None) -> JobLayout:
    """Create (or refresh) `host`'s job directory (algo-1's by default) for `run`.

    As on SageMaker, the source folder is copied into code/ and the entry point runs
    there. Checkpoints survive a rerun of the same job name so a killed run resumes;
    model/, output/, code/ and the channels are rebuilt. S3 channels and a source archive
    are not fetched here (see `_s3_inputs.fetch_inputs`).
    """
    host = host or run.hosts[0]
    layout = JobLayout(job_dir(root, run.name, host.name))
    for channel in run.channels:
        if not channel.is_s3 and not Path(channel.uri).exists():
            raise ContainerError(
                f"data channel {channel.name!r}: {channel.uri} does not exist "
                "(fix training.data in the spec, or create the data first)"
            )
    try:
        for stale in (layout.model_dir, layout.output_dir, layout.input_dir, layout.code_dir):
            if stale.exists():
                shutil.rmtree(stale)
        for folder in (
            layout.config_dir,
            layout.data_dir,
            layout.model_dir,
            layout.output_data_dir,
            layout.checkpoint_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        if run.source_dir is None:
            layout.code_dir.mkdir()
        else:
            copy_source(
                run.source_dir,
                layout.code_dir,
                extra_source_files(run.source_dir, sifting=uses_sifting(run.environment)),
            )
        _write_json(layout.config_dir / "hyperparameters.json", dict(run.hyperparameters))
        _write_json(layout.config_dir / "resourceconfig.json", resource_config(run, host))
        _write_json(
            layout.config_dir / "inputdataconfig.json",
            {c.name: c.data_config() for c in run.channels},
        )
        for channel in run.channels:
            if not channel.is_s3:
                _link_channel(Path(channel.uri), layout.channel_dir(channel.name))
    except OSError as exc:
        raise ContainerError(
            f"cannot create the job directory {layout.job_dir}: {exc.strerror or exc} "
            "(choose a writable --root)"
        ) from None
    return layout


def copy_source(source_dir: Path, code_dir: Path, extra: Mapping[str, bytes]) -> None:
    """The source folder as SageMaker unpacks it into /opt/ml/code: links followed and
    caches left out, as in the uploaded archive, plus its `extra` files (see _vendor)."""
    shutil.copytree(
        source_dir, code_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git")
    )
    for name, content in extra.items():
        target = code_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _link_channel(source: Path, target: Path) -> None:
    # A symlink keeps big local data where it is; a single file gets a folder of its own
    # because SageMaker always presents a channel as a directory.
    if source.is_dir():
        target.symlink_to(source.resolve(), target_is_directory=True)
    else:
        target.mkdir(parents=True)
        (target / source.name).symlink_to(source.resolve())


def resource_config(run: TrainingRun, host: Host) -> dict[str, object]:
    """resourceconfig.json as SageMaker writes it for `host`'s container."""
    hosts = run.hosts
    groups: dict[str, dict[str, object]] = {}
    members: dict[str, list[str]] = {}
    for each in hosts:
        names = members.setdefault(each.group, [])
        names.append(each.name)
        groups.setdefault(
            each.group,
            {
                "instance_group_name": each.group,
                "instance_type": each.instance_type,
                "hosts": names,
            },
        )
    return {
        "current_host": host.name,
        "current_instance_type": host.instance_type,
        "current_group_name": host.group,
        "hosts": [each.name for each in hosts],
        "instance_groups": list(groups.values()),
        "network_interface_name": "eth0",
    }


def count_gpus() -> int:
    """NVIDIA GPUs visible to this machine, without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def container_env(
    run: TrainingRun, layout: JobLayout, host: Host | None = None, *, num_gpus: int | None = None
) -> dict[str, str]:
    """What `host`'s entry point finds in its environment: the SM_* variables the training
    toolkit derives from the job directory, the few others SageMaker and the toolkit set,
    and the job's own environment."""
    host = host or run.hosts[0]
    view = toolkit_view(
        str(layout.job_dir),
        hyperparameters=run.hyperparameters,
        resource_config=resource_config(run, host),
        input_data_config={c.name: c.data_config() for c in run.channels},
        job_name=run.name,
        num_cpus=os.cpu_count() or 1,
        num_gpus=count_gpus() if num_gpus is None else num_gpus,
    )
    env = {**view.env, **process_environment(run.name, host.name, run.hyperparameters)}
    # The toolkit inside the container reads /opt/ml; here the job directory plays it.
    env["SAGEMAKER_BASE_DIR"] = str(layout.job_dir)
    env.update(run.environment)
    return env


def entry_args(run: TrainingRun) -> list[str]:
    """The entry point's arguments, as the toolkit builds them from the hyperparameters."""
    user = decode_hyperparameters(
        {k: v for k, v in run.hyperparameters.items() if not _toolkit_setting(k)}
    )
    return cmd_args(user)


def _toolkit_setting(key: str) -> bool:
    return key in TOOLKIT_OWN or key.startswith(SAGEMAKER_PREFIX)
