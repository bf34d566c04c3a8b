"""The infer pass for training jobs: catalog facts, batch size × devices, images, paths.

Returns new data; the Resolved input is never changed. Every inferred value gets an
origin naming its rule (`rule:batch.scale_by_devices`) and why.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Severity
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler._resolve import Resolved
from trainspec.compiler.catalog._catalog import (
    Catalog,
    InstanceType,
    PretrainedModel,
    find_model,
    gpus_for_batch,
)
from trainspec.compiler.catalog._images import ImageProblem, training_image
from trainspec.compiler.catalog._jumpstart import CODE_CHANNEL_DIR
from trainspec.compiler.lower._incremental import StartModel, start_model
from trainspec.compiler.lower._incremental import origin as incremental_origin

DEFAULT_BATCH_HYPERPARAMETER = "batch_size"


@dataclass(frozen=True)
class BatchSizes:
    """What each training process, instance and step receives.

    The batch-size hyperparameter is read by every training process; a launcher that
    starts one process per device (torchrun, MPI, SMDDP) gives each process the value, so
    the hyperparameter carries the per-process batch, not the per-instance one.
    """

    hyperparameter: str
    per_device: int
    per_process: int  # the hyperparameter's value
    per_instance: int
    global_: int
    gpus_per_instance: int
    devices_per_instance: int  # GPUs, NeuronCores, or 1 for a CPU instance
    device_kind: str  # gpu | neuron_core | cpu
    processes_per_host: int

    @property
    def devices_per_process(self) -> int:
        """The factor from per-device to per-process batch."""
        return max(self.devices_per_instance // self.processes_per_host, 1)


@dataclass(frozen=True)
class Inferred:
    """A resolved job plus everything the compiler derived for it."""

    resolved: Resolved
    instance: InstanceType | None
    pretrained: PretrainedModel | None
    batch_sizes: BatchSizes | None
    image_uri: str
    script_mode: Mapping[str, str]  # sagemaker_program and friends, for framework jobs
    local_uploads: Mapping[str, str]  # local path -> planned s3:// location
    model_artifact_uri: str
    notes: tuple[Diagnostic, ...] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)  # per-job-kind additions
    start: StartModel | None = None  # incremental training: the earlier model's channel

    @property
    def training(self) -> Mapping[str, Any]:
        return self.resolved.training


def _rule(rule_id: str, reason: str) -> Origin:
    return Origin(OriginKind.INFERRED, source=f"rule:{rule_id}", reason=reason)


def infer_training(resolved: Resolved, catalog: Catalog, spec_dir: str | os.PathLike) -> Inferred:
    """Fill catalog defaults, scale the batch size, and plan images and locations."""
    base = resolved.training_path
    tree, training = _own_training(resolved.tree, base)
    origins = dict(resolved.origins)
    notes: list[Diagnostic] = []

    model = training.get("model", {})
    pretrained = find_model(catalog, model.get("pretrained", ""))
    compute = training.get("compute", {})
    instance = catalog.instances.get(_instance_type_name(compute))

    _absolutize_local_paths(training, spec_dir)
    if pretrained is not None:
        notes.extend(_pretrained_data(training, base, origins, pretrained))

    start = start_model(training)
    if start is not None:  # lowered after the data channels, as the SDK appends it
        index = len(training.get("data", {}))
        path = ("sagemaker_request", "InputDataConfig", index, "DataSource", "S3DataSource")
        origins[(*path, "S3Uri")] = incremental_origin(start)

    extras: dict[str, Any] = {}
    batch = _infer_batch(training, base, origins, instance, pretrained, extras)
    image = _image_uri(training, instance, pretrained, extras)
    if image:
        origins[("sagemaker_request", "AlgorithmSpecification", "TrainingImage")] = _rule(
            "image.from_catalog" if pretrained else "image.framework_container",
            f"image for {model.get('pretrained') or _framework_label(model)} in "
            f"{_region(training)}",
        )

    output = training.get("output", {}).get("path", "")
    name = training.get("name", "")
    artifact = _join_s3(output, name, "output", "model.tar.gz") if output and name else ""
    script_mode, uploads = _plan_uploads(training, output, name, _region(training))
    if pretrained is not None:
        script_mode, channels = _pretrained_script_mode(pretrained, _region(training), name)
        extras["pretrained_channels"] = channels
    reason = (
        f"JumpStartEstimator sets it for {pretrained.id} (the spec's container hyperparameters)"
        if pretrained is not None
        else "SageMaker's framework containers read it"
    )
    for key in script_mode:
        # they live in the request, not in the job's hyperparameters
        origins[("sagemaker_request", "HyperParameters", key)] = _rule(
            "script_mode.hyperparameters", reason
        )

    resolved_out = Resolved(resolved.job, tree, origins)
    return Inferred(
        resolved=resolved_out,
        instance=instance,
        pretrained=pretrained,
        batch_sizes=batch,
        image_uri=image,
        script_mode=script_mode,
        local_uploads=uploads,
        model_artifact_uri=artifact,
        notes=tuple(notes),
        extras=extras,
        start=start,
    )


def _own_training(resolved_tree: Mapping[str, Any], base: tuple[str, ...]) -> tuple[dict, dict]:
    """(tree, training block) sharing the resolved tree's subtrees except the dicts this
    pass writes to, which are copied: the path down to the training block, the block
    itself, its hyperparameters, data channels and framework. Copying the whole tree
    on every compile cost more than the rest of the pass."""
    tree = dict(resolved_tree)
    node = tree
    for part in base:
        node[part] = node = dict(node.get(part) or {})
    hyperparameters = node.get("hyperparameters")
    if hyperparameters is not None:
        node["hyperparameters"] = dict(hyperparameters)
    data = node.get("data")
    if data is not None:
        node["data"] = {name: dict(channel) for name, channel in data.items()}
    framework = (node.get("model") or {}).get("framework")
    if framework is not None:
        node["model"] = {**node["model"], "framework": dict(framework)}
    return tree, node


def _dotted(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def _instance_type_name(compute: Mapping[str, Any]) -> str:
    if compute.get("instance_type"):
        return compute["instance_type"]
    groups = compute.get("instance_groups") or []
    return groups[0].get("instance_type", "") if groups else ""


def instance_count(compute: Mapping[str, Any]) -> int:
    groups = compute.get("instance_groups") or []
    if groups:
        return sum(g.get("instance_count", 1) for g in groups)
    return compute.get("instance_count", 1)


def _region(training: Mapping[str, Any]) -> str:
    return training.get("region", "")


def _infer_batch(
    training: dict,
    base: FieldPath,
    origins: dict[FieldPath, Origin],
    instance: InstanceType | None,
    pretrained: PretrainedModel | None,
    extras: dict[str, Any],
) -> BatchSizes | None:
    name = training.get("batch_size_hyperparameter") or (
        pretrained.batch_size_hyperparameter if pretrained else DEFAULT_BATCH_HYPERPARAMETER
    )
    hyperparameters = training.setdefault("hyperparameters", {})
    per_device = training.get("per_device_batch_size")
    if per_device is not None and name in hyperparameters:
        extras["batch_conflict"] = name  # reported by the check pass, with both places
        return None
    if per_device is None and pretrained is not None:
        default = pretrained.default_hyperparameters.get(pretrained.batch_size_hyperparameter)
        if default is not None and name not in hyperparameters:
            per_device = int(default)
            training["per_device_batch_size"] = per_device
            origins[base + ("per_device_batch_size",)] = Origin(
                OriginKind.CATALOG,
                source=f"catalog:models/{pretrained.id}",
                reason="the catalog's default batch size is per device",
            )
    if instance is None:
        return None
    count = instance_count(training.get("compute", {}))
    processes = processes_per_host(training, instance)
    devices = gpus_for_batch(instance)
    per_process_devices = max(devices // processes, 1)

    def sizes(per_device: int, per_process: int) -> BatchSizes:
        per_instance = per_process * processes
        return BatchSizes(
            name,
            per_device,
            per_process,
            per_instance,
            per_instance * count,
            instance.gpus,
            devices,
            instance.device_kind,
            processes,
        )

    if per_device is None:
        given = hyperparameters.get(name)
        if isinstance(given, int) and not isinstance(given, bool):
            return sizes(max(given // per_process_devices, 1), given)
        return None
    per_process = per_device * per_process_devices
    hyperparameters[name] = per_process
    origins[base + ("hyperparameters", name)] = _rule(
        "batch.scale_by_devices", _scale_reason(per_device, training, instance, processes)
    )
    return sizes(per_device, per_process)


_DEVICE_WORDS = {"gpu": ("GPU", "GPUs"), "neuron_core": ("NeuronCore", "NeuronCores")}

# Launchers that start one training process per device unless told otherwise, as the
# SageMaker training toolkit does (runner.py: processes per host default to the GPUs,
# else the NeuronCores, else 1); every other setting runs one process per instance.
PER_DEVICE_LAUNCHERS = {
    "DISTRIBUTION_TYPE_TORCH_DISTRIBUTED": "torchrun",
    "DISTRIBUTION_TYPE_MPI": "mpirun",
    "DISTRIBUTION_TYPE_SMDDP": "SMDDP's mpirun",
}


def processes_per_host(training: Mapping[str, Any], instance: InstanceType) -> int:
    """How many training processes the launcher starts on one instance."""
    distribution = training.get("distribution") or {}
    if distribution.get("type") not in PER_DEVICE_LAUNCHERS:
        return 1
    return distribution.get("processes_per_host") or gpus_for_batch(instance)


def _scale_reason(
    per_device: int, training: Mapping[str, Any], instance: InstanceType, processes: int
) -> str:
    kind = instance.device_kind
    if kind == "cpu":
        return f"{per_device} per device; a CPU instance ({instance.name}) counts as one device"
    one, many = _DEVICE_WORDS[kind]
    devices = gpus_for_batch(instance)
    if processes == 1:
        return (
            f"{per_device} per {one} × {devices} {many} of {instance.name}: one training "
            "process per instance drives them all"
        )
    distribution: Mapping[str, Any] = training.get("distribution") or {}
    launcher = PER_DEVICE_LAUNCHERS[distribution["type"]]  # processes > 1: one of them
    per_process_devices = max(devices // processes, 1)
    return (
        f"{per_device} per {one} × {per_process_devices}: {launcher} starts {processes} "
        f"processes on each {instance.name} ({devices} {many}) and each one receives this value"
    )


def _framework_label(model: Mapping[str, Any]) -> str:
    framework = model.get("framework") or {}
    return f"{framework.get('name', '')} {framework.get('version', '')}".strip() or "image"


def _image_uri(
    training: Mapping[str, Any],
    instance: InstanceType | None,
    pretrained: PretrainedModel | None,
    extras: dict[str, Any],
) -> str:
    model = training.get("model", {})
    region = _region(training)
    if "image" in model:
        return model["image"]
    if pretrained is not None:
        if instance is None or not region:
            return ""
        image = pretrained.image_uri(region, instance.name)
        if image is None:
            extras["image_problem"] = _pretrained_image_problem(pretrained, region, instance)
        return image or ""
    framework = model.get("framework")
    if not framework or not region or instance is None:
        return ""
    found = training_image(
        framework.get("name", ""),
        framework.get("version", ""),
        region=region,
        instance_type=instance.name,
        python_version=framework.get("python_version", ""),
        base_framework_version=framework.get("base_framework_version", ""),
    )
    if isinstance(found, ImageProblem):
        extras["image_problem"] = found  # reported by the check pass, at its field
        return ""
    return found


TRAINING_CHANNEL = "training"  # the channel JumpStart's training scripts read


def _pretrained_data(
    training: dict, base: FieldPath, origins: dict[FieldPath, Origin], model: PretrainedModel
) -> list[Diagnostic]:
    """The user's data as channel `training` (a `train` channel is renamed), else the
    spec's default data set, with a note."""
    data = training.get("data")
    if data and "train" in data and TRAINING_CHANNEL not in data:
        data = training["data"] = {
            (TRAINING_CHANNEL if k == "train" else k): v for k, v in data.items()
        }
        prefix = base + ("data", "train")
        for path in [p for p in origins if p[: len(prefix)] == prefix]:
            origins[base + ("data", TRAINING_CHANNEL) + path[len(prefix) :]] = origins[path]
        return []
    if data:
        return []
    uri = model.default_dataset_uri(_region(training))
    if not uri:
        return []
    training["data"] = {TRAINING_CHANNEL: {"uri": uri}}
    origins[base + ("data", TRAINING_CHANNEL, "uri")] = Origin(
        OriginKind.CATALOG,
        source=f"catalog:models/{model.id}",
        reason="the spec names no data: the JumpStart spec's default_training_dataset_key",
    )
    return [
        Diagnostic(
            "data.default_dataset",
            _dotted(base + ("data",)),
            f"no data given: fine-tuning on the JumpStart spec's default data set {uri}",
            hint="add `data: {training: s3://your-bucket/prefix/}` to train on your own data",
            severity=Severity.NOTE,
        )
    ]


def _pretrained_script_mode(
    model: PretrainedModel, region: str, name: str
) -> tuple[dict[str, str], dict[str, str]]:
    """What JumpStartEstimator adds for a spec: the training toolkit's hyperparameters, and
    the `model` (pretrained weights) and, under network isolation, `code` channels."""
    container = model.container_hyperparameters
    script = model.content_uri(region, model.training_script_key)
    channels = {"model": model.content_uri(region, model.training_artifact_key)}
    if model.network_isolation:
        # the container cannot reach S3 itself: the script arrives as an input channel
        channels["code"] = script
        submit = container.get("sagemaker_submit_directory") or (
            f"{CODE_CHANNEL_DIR}/sourcedir.tar.gz"
        )
    else:
        submit = script
    hyperparameters = {
        "sagemaker_program": container.get("sagemaker_program", ""),
        "sagemaker_submit_directory": submit,
        "sagemaker_container_log_level": container.get("sagemaker_container_log_level", "20"),
        "sagemaker_region": region,
        "sagemaker_job_name": name,
    }
    return {k: v for k, v in hyperparameters.items() if v}, channels


def _pretrained_image_problem(
    model: PretrainedModel, region: str, instance: InstanceType
) -> ImageProblem:
    if region not in model.regional_aliases:
        return ImageProblem(
            "image.unknown_region",
            "region",
            f"JumpStart model {model.id} has no training image in region {region!r}",
            "regions with one: " + ", ".join(model.regions),
            region,
        )
    return ImageProblem(
        "image.unsupported_instance",
        "instance_type",
        f"JumpStart model {model.id} has no training image for {instance.name}",
        "instance types and families with one: " + ", ".join(model.image_instance_types()),
        instance.name,
    )


def _absolutize_local_paths(training: dict, spec_dir: str | os.PathLike) -> None:
    """Local paths are relative to the spec file; the plan holds absolute ones.

    `spec_dir` is already a real path; what the user wrote under it stays as written
    (no symlink resolution, which would cost a syscall per path component)."""
    framework = training.get("model", {}).get("framework")
    if framework and framework.get("source_dir") and not _is_remote(framework["source_dir"]):
        framework["source_dir"] = os.path.normpath(os.path.join(spec_dir, framework["source_dir"]))
    for channel in training.get("data", {}).values():
        uri = channel.get("uri", "")
        if uri and not _is_remote(uri):
            local = uri[len("file://") :] if uri.startswith("file://") else uri
            channel["uri"] = os.path.normpath(os.path.join(spec_dir, local))


def _is_remote(uri: str) -> bool:
    return uri.startswith(("s3://", "https://"))


def is_local(uri: str) -> bool:
    return bool(uri) and not _is_remote(uri)


def _join_s3(prefix: str, *parts: str) -> str:
    return posixpath.join(prefix.rstrip("/"), *parts) if prefix else ""


def _plan_uploads(
    training: Mapping[str, Any], output: str, name: str, region: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Script-mode hyperparameters, and where local code and data go before a submit."""
    uploads: dict[str, str] = {}
    script_mode: dict[str, str] = {}
    framework = training.get("model", {}).get("framework")
    if framework and output and name:
        source_dir = framework.get("source_dir", "")
        submit_dir = source_dir
        if not source_dir or is_local(source_dir):
            submit_dir = _join_s3(output, name, "source", "sourcedir.tar.gz")
            if source_dir:
                uploads[source_dir] = submit_dir
        script_mode = {
            "sagemaker_program": framework.get("entry_point", ""),
            "sagemaker_submit_directory": submit_dir,
            "sagemaker_region": region,
        }
    for channel_name, channel in sorted(training.get("data", {}).items()):
        uri = channel.get("uri", "")
        if is_local(uri) and output and name:
            uploads[uri] = _join_s3(output, name, "input", channel_name) + "/"
    return script_mode, uploads
