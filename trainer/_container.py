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

CURRENT_HOST = "algo-1"
# SageMaker's script-mode toolkit keeps its own settings in the hyperparameters under
# this prefix; they are not the user's and never reach SM_HPS or the command line.
_SAGEMAKER_PREFIX = "sagemaker_"


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


def job_dir(root: Path, name: str) -> Path:
    """`<root>/<name>`, refusing any name that would leave the root."""
    return Path(root).resolve() / check_job_name(name)


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
    entry_point: str  # relative to source_dir
    source_dir: Path
    hyperparameters: Mapping[str, str]  # the request's HyperParameters (strings)
    channels: tuple[Channel, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    metric_definitions: tuple[MetricDefinition, ...] = ()
    max_runtime_seconds: int = 86400
    instance_type: str = "local"
    instance_count: int = 1
    region: str = ""


@dataclass(frozen=True)
class JobLayout:
    """The job directory: `<root>/<job>/` plays `/opt/ml/`."""

    job_dir: Path

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


def user_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """The hyperparameters without SageMaker's own `sagemaker_*` settings."""
    return {k: v for k, v in hyperparameters.items() if not k.startswith(_SAGEMAKER_PREFIX)}


def _decoded(value: str) -> object:
    # The SageMaker toolkit JSON-decodes each hyperparameter for SM_HPS when it can.
    try:
        return json.loads(value)
    except ValueError:
        return value


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def prepare_layout(run: TrainingRun, root: Path) -> JobLayout:
    """Create (or refresh) the job directory for `run` under `root`.

    Checkpoints survive a rerun of the same job name so a killed run resumes; model/,
    output/ and the channels are rebuilt. S3 channels are not fetched here (see
    `_local_run.fetch_s3_channels`).
    """
    layout = JobLayout(job_dir(root, run.name))
    for channel in run.channels:
        if not channel.is_s3 and not Path(channel.uri).exists():
            raise ContainerError(
                f"data channel {channel.name!r}: {channel.uri} does not exist "
                "(fix training.data in the spec, or create the data first)"
            )
    try:
        for stale in (layout.model_dir, layout.output_dir, layout.input_dir):
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
        _write_json(layout.config_dir / "hyperparameters.json", dict(run.hyperparameters))
        _write_json(layout.config_dir / "resourceconfig.json", resource_config(run))
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


def _link_channel(source: Path, target: Path) -> None:
    # A symlink keeps big local data where it is; a single file gets a folder of its own
    # because SageMaker always presents a channel as a directory.
    if source.is_dir():
        target.symlink_to(source.resolve(), target_is_directory=True)
    else:
        target.mkdir(parents=True)
        (target / source.name).symlink_to(source.resolve())


def resource_config(run: TrainingRun) -> dict[str, object]:
    """resourceconfig.json: one local host, as the container on algo-1 sees it."""
    return {
        "current_host": CURRENT_HOST,
        "current_instance_type": run.instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": [CURRENT_HOST],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": run.instance_type,
                "hosts": [CURRENT_HOST],
            }
        ],
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
    run: TrainingRun, layout: JobLayout, *, num_gpus: int | None = None
) -> dict[str, str]:
    """The SM_* variables SageMaker's training toolkit sets, plus the job's environment."""
    hps = {k: _decoded(v) for k, v in user_hyperparameters(run.hyperparameters).items()}
    channel_dirs = {c.name: str(layout.channel_dir(c.name)) for c in run.channels}
    gpus = count_gpus() if num_gpus is None else num_gpus
    cpus = os.cpu_count() or 1
    module_name = Path(run.entry_point).stem
    training_env = {
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": CURRENT_HOST,
        "current_instance_type": run.instance_type,
        "hosts": [CURRENT_HOST],
        "hyperparameters": hps,
        "input_config_dir": str(layout.config_dir),
        "input_data_config": {c.name: c.data_config() for c in run.channels},
        "input_dir": str(layout.input_dir),
        "is_master": True,
        "job_name": run.name,
        "log_level": 20,
        "master_hostname": CURRENT_HOST,
        "model_dir": str(layout.model_dir),
        "module_dir": str(run.source_dir),
        "module_name": module_name,
        "network_interface_name": "eth0",
        "num_cpus": cpus,
        "num_gpus": gpus,
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "output_intermediate_dir": str(layout.output_dir / "intermediate"),
        "resource_config": resource_config(run),
        "user_entry_point": run.entry_point,
    }
    env = {
        "SM_MODEL_DIR": str(layout.model_dir),
        "SM_CHANNELS": json.dumps(sorted(channel_dirs)),
        "SM_HPS": json.dumps(hps, sort_keys=True),
        "SM_NUM_GPUS": str(gpus),
        "SM_NUM_CPUS": str(cpus),
        "SM_HOSTS": json.dumps([CURRENT_HOST]),
        "SM_CURRENT_HOST": CURRENT_HOST,
        "SM_CURRENT_INSTANCE_TYPE": run.instance_type,
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
        "SM_OUTPUT_DIR": str(layout.output_dir),
        "SM_INPUT_DIR": str(layout.input_dir),
        "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
        "SM_INPUT_DATA_CONFIG": json.dumps(training_env["input_data_config"], sort_keys=True),
        "SM_RESOURCE_CONFIG": json.dumps(training_env["resource_config"], sort_keys=True),
        "SM_CHECKPOINT_DIR": str(layout.checkpoint_dir),
        "SM_USER_ENTRY_POINT": run.entry_point,
        "SM_MODULE_NAME": module_name,
        "SM_MODULE_DIR": str(run.source_dir),
        "SM_LOG_LEVEL": "20",
        "SM_FRAMEWORK_PARAMS": "{}",
        "SM_TRAINING_ENV": json.dumps(training_env, sort_keys=True),
        "SM_USER_ARGS": json.dumps(hyperparameter_args(run.hyperparameters)),
    }
    for name, path in channel_dirs.items():
        env[f"SM_CHANNEL_{name.upper()}"] = path
    for name, value in user_hyperparameters(run.hyperparameters).items():
        env[f"SM_HP_{name.upper().replace('-', '_')}"] = value
    env.update(run.environment)
    return env


def hyperparameter_args(hyperparameters: Mapping[str, str]) -> list[str]:
    """`--name value` pairs, as SageMaker's toolkit passes them to the entry point."""
    args: list[str] = []
    for name, value in sorted(user_hyperparameters(hyperparameters).items()):
        args += [f"--{name}", value]
    return args
