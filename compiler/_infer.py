"""The infer pass for training jobs: catalog facts, batch size × GPUs, images, paths.

Returns new data; the Resolved input is never changed. Every inferred value gets an
origin naming its rule (`rule:batch.scale_by_gpus`) and why.
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from trainspec.compiler._catalog import Catalog, InstanceType, PretrainedModel, gpus_for_batch
from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Severity
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler._resolve import Resolved

DEFAULT_BATCH_HYPERPARAMETER = "batch_size"


@dataclass(frozen=True)
class BatchSizes:
    hyperparameter: str
    per_device: int
    per_instance: int
    global_: int
    gpus_per_instance: int


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

    @property
    def training(self) -> Mapping[str, Any]:
        return self.resolved.training


@functools.cache
def frameworks() -> dict:
    ref = resources.files("trainspec.compiler.catalog").joinpath("frameworks.yaml")
    return yaml.safe_load(ref.read_text())


def _rule(rule_id: str, reason: str) -> Origin:
    return Origin(OriginKind.INFERRED, source=f"rule:{rule_id}", reason=reason)


def infer_training(resolved: Resolved, catalog: Catalog, spec_dir: str | os.PathLike) -> Inferred:
    """Fill catalog defaults, scale the batch size, and plan images and locations."""
    base = resolved.training_path
    tree, training = _own_training(resolved.tree, base)
    origins = dict(resolved.origins)
    notes: list[Diagnostic] = []

    model = training.get("model", {})
    pretrained = catalog.models.get(model.get("pretrained", ""))
    compute = training.get("compute", {})
    instance = catalog.instances.get(_instance_type_name(compute))

    _absolutize_local_paths(training, spec_dir)
    if pretrained is not None and not training.get("data"):
        training["data"] = {"train": {"uri": pretrained.default_dataset_uri(_region(training))}}
        origins[base + ("data", "train", "uri")] = Origin(
            OriginKind.CATALOG,
            source=f"catalog:models/{pretrained.id}",
            reason="the spec names no data: the model's default data set is used",
        )
        notes.append(
            Diagnostic(
                "data.default_dataset",
                _dotted(base + ("data",)),
                f"no data given: fine-tuning on the catalog's default data set "
                f"{training['data']['train']['uri']}",
                hint="add `data: {train: s3://your-bucket/prefix/}` to train on your own data",
                severity=Severity.NOTE,
            )
        )

    extras: dict[str, Any] = {}
    batch = _infer_batch(training, base, origins, instance, pretrained, extras)
    image = _image_uri(training, instance, pretrained)
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
    for key in script_mode:
        origins[base + ("hyperparameters", key)] = _rule(
            "script_mode.hyperparameters", "SageMaker's framework containers read it"
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
    )


def _own_training(resolved_tree: Mapping[str, Any], base: FieldPath) -> tuple[dict, dict]:
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
    gpus = instance.gpus
    devices = gpus_for_batch(instance)  # GPUs or Trainium chips; a CPU instance counts as 1
    count = instance_count(training.get("compute", {}))
    if per_device is None:
        given = hyperparameters.get(name)
        if isinstance(given, int) and not isinstance(given, bool):
            per_instance = given
            return BatchSizes(
                name, max(per_instance // devices, 1), per_instance, per_instance * count, gpus
            )
        return None
    per_instance = per_device * devices
    hyperparameters[name] = per_instance
    origins[base + ("hyperparameters", name)] = _rule(
        "batch.scale_by_gpus",
        f"{per_device} per device × {devices} {'GPUs' if gpus else 'CPU instance'}"
        f" of {instance.name}",
    )
    return BatchSizes(name, per_device, per_instance, per_instance * count, gpus)


def _framework_label(model: Mapping[str, Any]) -> str:
    framework = model.get("framework") or {}
    return f"{framework.get('name', '')} {framework.get('version', '')}".strip() or "image"


def _image_uri(
    training: Mapping[str, Any],
    instance: InstanceType | None,
    pretrained: PretrainedModel | None,
) -> str:
    model = training.get("model", {})
    region = _region(training)
    if "image" in model:
        return model["image"]
    if pretrained is not None:
        return pretrained.image_uri(region, gpu=bool(instance and instance.gpus))
    framework = model.get("framework")
    if not framework or not region:
        return ""
    entry = frameworks()["frameworks"].get(framework.get("name", ""))
    if entry is None:
        return ""
    account = frameworks()["registries"][entry["registry"]].get(region)
    if account is None:
        return ""
    return entry["image"].format(
        account=account,
        region=region,
        version=framework.get("version", ""),
        device="gpu" if instance is not None and instance.gpus else "cpu",
        python=framework.get("python_version") or entry["python"],
    )


def framework_regions(name: str) -> list[str]:
    entry = frameworks()["frameworks"].get(name)
    return sorted(frameworks()["registries"][entry["registry"]]) if entry else []


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
