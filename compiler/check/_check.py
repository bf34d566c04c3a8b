"""The check pass for training jobs: completeness and cross-field rules, all at once.

These are rules SageMaker enforces server-side (or that would fail the job) that no
single field's type can express. Each returns Diagnostics; none stops the others.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    Severity,
    format_path,
)
from trainspec.compiler._infer import (
    PER_DEVICE_LAUNCHERS,
    Inferred,
    is_local,
)
from trainspec.compiler._origin import OriginKind
from trainspec.compiler.catalog._catalog import Catalog, PretrainedModel
from trainspec.compiler.check._local_files import EVERYWHERE, LocalFiles, not_checked
from trainspec.compiler.lower._incremental import check_start
from trainspec.compiler.lower._lower import SIFTING_ENVIRONMENT_VARIABLE, lowered_hyperparameters

Locate = Callable[[FieldPath], "Location | None"]

# Where a missing required value can come from, for the error's hint.
_REQUIRED = {
    ("name",): "the spec",
    ("role_arn",): "trainspec.defaults.yaml (`training.role_arn`) or the spec",
    ("region",): "trainspec.defaults.yaml (`training.region`) or the spec",
    ("output", "path"): "trainspec.defaults.yaml (`training.output.path`) or the spec",
    ("model",): "the spec (`pretrained`, `framework` or `image`)",
}

MAX_HYPERPARAMETERS = 100
MAX_CHANNELS = 20
MAX_ENVIRONMENT = 100


def check_training(
    inferred: Inferred, catalog: Catalog, locate: Locate, local_files: LocalFiles = EVERYWHERE
) -> list[Diagnostic]:
    """Every completeness and cross-field problem of the training job.

    Local paths are looked at only where `local_files` allows; others get a note."""
    base = inferred.resolved.training_path
    training = inferred.training
    context = _Context(base, training, locate, catalog, inferred, local_files)
    problems: list[Diagnostic] = []
    for rule in _RULES:
        problems.extend(rule(context))
    return problems


class _Context:
    def __init__(
        self,
        base: FieldPath,
        training: Mapping[str, Any],
        locate: Locate,
        catalog: Catalog,
        inferred: Inferred,
        local_files: LocalFiles,
    ) -> None:
        self.base: FieldPath = base
        self.training: Mapping[str, Any] = training
        self._locate = locate
        self.catalog: Catalog = catalog
        self.inferred: Inferred = inferred
        self.local_files: LocalFiles = local_files

    def not_checked(self, *parts: str | int) -> Diagnostic:
        path = self.path(*parts)
        return not_checked(format_path(path), self._locate(path))

    def path(self, *parts: str | int) -> FieldPath:
        return self.base + parts

    def error(
        self,
        code: str,
        parts: tuple[str | int, ...],
        message: str,
        hint: str = "",
        value: Any = None,
    ) -> Diagnostic:
        path = self.path(*parts)
        extra = {} if value is None else {"value": value}
        return Diagnostic(code, format_path(path), message, hint, self._locate(path), **extra)

    def warning(
        self,
        code: str,
        parts: tuple[str | int, ...],
        message: str,
        hint: str = "",
        value: Any = None,
    ) -> Diagnostic:
        return replace(self.error(code, parts, message, hint, value), severity=Severity.WARNING)

    def get(self, *parts: str) -> Any:
        node: Any = self.training
        for part in parts:
            # `type() is dict` first: an ABC isinstance is a Python-level call, and this
            # runs for every field a rule reads
            if type(node) is not dict and not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node


def _required(c: _Context) -> Iterator[Diagnostic]:
    for parts, supplier in _REQUIRED.items():
        if not c.get(*parts):
            yield c.error(
                "required.missing",
                parts,
                "is required but no layer sets it",
                hint=f"set it in {supplier}",
            )
    compute = c.get("compute") or {}
    if not compute.get("instance_type") and not compute.get("instance_groups"):
        yield c.error(
            "required.missing",
            ("compute", "instance_type"),
            "is required but no layer sets it",
            hint="set it in the spec or trainspec.defaults.yaml, e.g. ml.g5.xlarge "
            "(`trainspec catalog instances` lists them)",
        )


def _known_catalog_entries(c: _Context) -> Iterator[Diagnostic]:
    compute = c.get("compute") or {}
    names: list[tuple[tuple[str | int, ...], Any]] = [
        (("compute", "instance_type"), compute.get("instance_type"))
    ]
    for index, group in enumerate(compute.get("instance_groups") or []):
        names.append(
            (("compute", "instance_groups", index, "instance_type"), group.get("instance_type"))
        )
    for parts, name in names:
        if name and name not in c.catalog.instances:
            close = difflib.get_close_matches(name, list(c.catalog.instances), n=1, cutoff=0.6)
            yield c.error(
                "catalog.unknown_instance_type",
                parts,
                f"{name!r} is not a SageMaker training instance type",
                hint=f"did you mean {close[0]!r}?"
                if close
                else "`trainspec catalog instances` lists them",
                value=name,
            )
    pretrained = c.get("model", "pretrained")
    model_id, _, version = (pretrained or "").partition("@")
    if model_id and model_id not in c.catalog.models:
        close = difflib.get_close_matches(model_id, list(c.catalog.models), n=1, cutoff=0.5)
        yield c.error(
            "catalog.unknown_model",
            ("model", "pretrained"),
            f"{model_id!r} is not in the model catalog",
            hint=f"did you mean {close[0]!r}?"
            if close
            else "`trainspec catalog models` lists them",
            value=pretrained,
        )
    elif model_id and version and version != c.catalog.models[model_id].version:
        known = c.catalog.models[model_id].version
        yield c.error(
            "catalog.unknown_model_version",
            ("model", "pretrained"),
            f"the catalog has version {known} of {model_id}, not {version!r}",
            hint=f"did you mean '{model_id}@{known}'? (or name no version: {model_id}); a "
            "defaults file adds other versions with catalog.jumpstart_specs",
            value=pretrained,
        )
    if c.inferred.pretrained is not None:
        yield from _pretrained(c, c.inferred.pretrained)
    framework = c.get("model", "framework")
    if framework:
        if not framework.get("entry_point"):
            yield c.error(
                "required.missing",
                ("model", "framework", "entry_point"),
                "is required for a framework model",
                hint="name the script the container runs, e.g. train.py",
            )
        if not framework.get("version"):
            yield c.error(
                "required.missing",
                ("model", "framework", "version"),
                "is required for a framework model",
                hint='e.g. version: "2.1"',
            )
    problem = c.inferred.extras.get("image_problem")
    if problem is not None and (not framework or framework.get("version")):
        yield c.error(
            problem.rule,
            _IMAGE_FIELDS.get(problem.field, ("model", "framework", problem.field)),
            problem.message,
            hint=problem.hint,
            value=problem.value,
        )


def _pretrained(c: _Context, model: PretrainedModel) -> Iterator[Diagnostic]:
    """The JumpStart spec's rules: its supported instance types, and each of its
    hyperparameters typed and within its range or options."""
    compute = c.get("compute") or {}
    names: list[tuple[tuple[str | int, ...], Any]] = [
        (("compute", "instance_type"), compute.get("instance_type"))
    ]
    for index, group in enumerate(compute.get("instance_groups") or []):
        names.append(
            (("compute", "instance_groups", index, "instance_type"), group.get("instance_type"))
        )
    supported = list(model.supported_instance_types)
    for parts, name in names:
        if name and name in c.catalog.instances and name not in supported:
            close = difflib.get_close_matches(name, supported, n=1, cutoff=0.6)
            yield c.error(
                "catalog.unsupported_instance_type",
                parts,
                f"JumpStart model {model.id} {model.version} does not support {name}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "supported: "
                + ", ".join(supported),
                value=name,
            )
    hyperparameters = c.get("hyperparameters") or {}
    batch = c.inferred.batch_sizes
    for name, spec in model.algorithm_hyperparameters.items():
        if name not in hyperparameters:
            continue
        value = hyperparameters[name]
        why = spec.problem(value)
        if why:
            scaled = (
                f" (per-device {batch.per_device} × {batch.devices_per_process} devices)"
                if batch is not None and name == batch.hyperparameter
                else ""
            )
            yield c.error(
                "hyperparameter.out_of_range",
                ("hyperparameters", name),
                f"{why}{scaled}",
                hint=f"JumpStart model {model.id} {model.version} takes {spec.allowed()}",
                value=value,
            )


# Where an ImageProblem's field lives in the spec; the rest are model.framework.<field>.
_IMAGE_FIELDS = {"region": ("region",), "instance_type": ("compute", "instance_type")}


def _batch(c: _Context) -> Iterator[Diagnostic]:
    name = c.inferred.extras.get("batch_conflict")
    if name:
        other = c._locate(c.path("hyperparameters", name))
        yield c.error(
            "batch.both_given",
            ("per_device_batch_size",),
            f"is given together with the batch-size hyperparameter {name!r}"
            + (f" ({other})" if other else ""),
            hint=f"keep per_device_batch_size (trainspec sets {name} to it × the GPUs of "
            "the instance) or remove it and set the hyperparameter yourself",
        )


def _spot_and_time(c: _Context) -> Iterator[Diagnostic]:
    stopping = c.get("stopping") or {}
    compute = c.get("compute") or {}
    runtime = stopping.get("max_runtime_seconds")
    wait = stopping.get("max_wait_seconds")
    if compute.get("spot"):
        if not wait:
            yield c.error(
                "spot.max_wait_required",
                ("stopping", "max_wait_seconds"),
                "is required with managed spot training",
                hint="set it to at least max_runtime_seconds",
            )
        elif runtime and wait < runtime:
            yield c.error(
                "spot.max_wait_lt_runtime",
                ("stopping", "max_wait_seconds"),
                f"{wait} is less than max_runtime_seconds ({runtime})",
                hint="spot jobs wait for capacity inside max_wait_seconds: "
                "make it at least max_runtime_seconds",
                value=wait,
            )
        if not (c.get("checkpoint") or {}).get("s3_uri"):
            yield c.warning(
                "spot.no_checkpoint",
                ("compute", "spot"),
                "managed spot training without checkpoints starts over from the beginning "
                "after every interruption",
                hint="set checkpoint.s3_uri and save checkpoints to /opt/ml/checkpoints "
                "(SageMaker syncs that folder to it)",
            )
        if compute.get("keep_alive_seconds"):
            yield c.error(
                "spot.no_warm_pool",
                ("compute", "keep_alive_seconds"),
                "warm pools are not available with managed spot training",
                hint="remove keep_alive_seconds or turn spot off",
            )
    elif wait:
        yield c.error(
            "spot.max_wait_without_spot",
            ("stopping", "max_wait_seconds"),
            "is only allowed with managed spot training",
            hint="set compute.spot: true or remove max_wait_seconds",
            value=wait,
        )


def _instance_groups(c: _Context) -> Iterator[Diagnostic]:
    compute = c.get("compute") or {}
    groups = compute.get("instance_groups") or []
    if not groups:
        return
    for key in ("instance_type", "instance_count"):
        origin = c.inferred.resolved.origins.get(c.path("compute", key))
        if key in compute and origin is not None and origin.kind is not OriginKind.BUILTIN:
            yield c.error(
                "compute.groups_exclusive",
                ("compute", key),
                "cannot be given with instance_groups",
                hint="give the instance type and count of each group instead",
            )
    for index, group in enumerate(groups):
        for key in ("name", "instance_type"):
            if not group.get(key):
                yield c.error(
                    "required.missing",
                    ("compute", "instance_groups", index, key),
                    "is required for each instance group",
                    hint="e.g. name: workers, instance_type: ml.g5.xlarge",
                )
    names = [g.get("name") for g in groups]
    for index, group_name in enumerate(names):
        if group_name in names[:index]:
            yield c.error(
                "compute.group_name_duplicate",
                ("compute", "instance_groups", index, "name"),
                f"{group_name!r} names two instance groups",
                value=group_name,
            )


def _volume_kms(c: _Context) -> Iterator[Diagnostic]:
    compute = c.get("compute") or {}
    instance = c.inferred.instance
    if compute.get("volume_kms_key_id") and instance is not None and instance.local_nvme_gb:
        yield c.error(
            "compute.volume_kms_with_nvme",
            ("compute", "volume_kms_key_id"),
            f"{instance.name} has local NVMe storage, which SageMaker encrypts itself; "
            "it rejects a volume KMS key",
            hint="remove volume_kms_key_id for this instance type",
        )


def _hyperparameters(c: _Context) -> Iterator[Diagnostic]:
    hyperparameters = c.get("hyperparameters") or {}
    # Counted as lowered: the batch size and the sagemaker_* entries trainspec adds are
    # in the request too. A tuning job's check counts them with the one AMT adds.
    lowered = lowered_hyperparameters(c.inferred)
    if len(lowered) > MAX_HYPERPARAMETERS and c.inferred.resolved.job == "training":
        origins = c.inferred.resolved.origins
        added = [
            name
            for name in lowered
            if getattr(origins.get(c.path("hyperparameters", name)), "kind", None)
            in (None, OriginKind.INFERRED)
        ]
        yield c.error(
            "hyperparameters.too_many",
            ("hyperparameters",),
            f"the request would carry {len(lowered)} hyperparameters"
            + (f", {len(added)} of them added by trainspec ({', '.join(added)})" if added else "")
            + f"; SageMaker takes at most {MAX_HYPERPARAMETERS}",
            hint="drop hyperparameters that keep their default value",
        )
    for key, value in hyperparameters.items():
        if len(str(value)) > 2500:
            yield c.error(
                "hyperparameters.value_too_long",
                ("hyperparameters", key),
                "is longer than SageMaker's 2500 characters",
            )


def _metrics(c: _Context) -> Iterator[Diagnostic]:
    names: list[str] = []
    for index, metric in enumerate(c.get("metrics") or []):
        regex = metric.get("regex", "")
        name = metric.get("name", "")
        missing = [key for key in ("name", "regex") if not metric.get(key)]
        for key in missing:
            yield c.error(
                "required.missing",
                ("metrics", index, key),
                "is required for each metric",
                hint="e.g. {name: validation:loss, regex: 'validation loss: ([0-9.]+)'}",
            )
        if missing:
            continue
        if name in names:
            yield c.error(
                "metrics.duplicate_name",
                ("metrics", index, "name"),
                f"{name!r} is defined twice",
                value=name,
            )
        names.append(name)
        try:
            groups = re.compile(regex).groups
        except re.error as exc:
            yield c.error(
                "metrics.regex_invalid",
                ("metrics", index, "regex"),
                f"does not compile: {exc.msg} at position {exc.pos}",
                hint="SageMaker applies it to each log line",
                value=regex,
            )
            continue
        if groups != 1:
            yield c.error(
                "metrics.regex_groups",
                ("metrics", index, "regex"),
                f"has {groups} capture groups; it needs exactly one for the value",
                hint="e.g. 'validation loss: ([0-9.]+)'; use (?:...) for others",
                value=regex,
            )
    if len(names) > 40:
        yield c.error("metrics.too_many", ("metrics",), "SageMaker takes at most 40 metrics")


def _network(c: _Context) -> Iterator[Diagnostic]:
    network = c.get("network") or {}
    subnets, groups = network.get("subnets"), network.get("security_group_ids")
    if bool(subnets) != bool(groups):
        given, missing = ("subnets", "security_group_ids")
        if not subnets:
            given, missing = missing, given
        yield c.error(
            "network.vpc_incomplete",
            ("network", missing),
            f"is required with {given}: a VPC configuration needs both",
            hint=f"set network.{missing} (they may come from trainspec.defaults.yaml) "
            f"or remove network.{given}",
        )


def _environment(c: _Context) -> Iterator[Diagnostic]:
    environment = c.get("environment") or {}
    count = len(environment)
    if c.get("sifting") and SIFTING_ENVIRONMENT_VARIABLE not in environment:
        count += 1
    if count > MAX_ENVIRONMENT:
        yield c.error(
            "environment.too_many",
            ("environment",),
            f"{count} variables with the {SIFTING_ENVIRONMENT_VARIABLE} that sifting adds; "
            f"SageMaker takes at most {MAX_ENVIRONMENT}",
            hint="drop variables the job does not read",
        )


def _data(c: _Context) -> Iterator[Diagnostic]:
    network = c.get("network") or {}
    has_vpc = bool(network.get("subnets")) and bool(network.get("security_group_ids"))
    channels = c.get("data") or {}
    if len(channels) > MAX_CHANNELS:
        yield c.error(
            "data.too_many",
            ("data",),
            f"has {len(channels)} channels with all layers merged; "
            f"SageMaker takes at most {MAX_CHANNELS}",
            hint="remove a channel here or in trainspec.defaults.yaml (null removes one)",
        )
    for channel, spec in sorted((c.get("data") or {}).items()):
        uri = spec.get("uri", "")
        file_system = spec.get("file_system")
        if file_system:
            if uri:
                yield c.error(
                    "data.uri_and_file_system",
                    ("data", channel),
                    "gives both a uri and a file_system",
                    hint="give one",
                )
            if not has_vpc:
                yield c.error(
                    "data.file_system_needs_vpc",
                    ("data", channel, "file_system"),
                    "EFS and FSx channels need a VPC",
                    hint="set network.subnets and network.security_group_ids",
                )
            mode = spec.get("input_mode")
            if mode and mode != "INPUT_MODE_FILE":
                yield c.error(
                    "data.file_system_needs_file_mode",
                    ("data", channel, "input_mode"),
                    "EFS and FSx channels only support File input mode",
                    hint="remove input_mode or set it to File",
                )
            for key, hint in (
                ("type", "EFS or FSX_LUSTRE"),
                ("id", "e.g. fs-0123456789abcdef0"),
                ("directory_path", "the folder on the file system, e.g. /data/train"),
            ):
                if not file_system.get(key):
                    yield c.error(
                        "required.missing",
                        ("data", channel, "file_system", key),
                        "is required",
                        hint=hint,
                    )
            continue
        if not uri:
            yield c.error(
                "required.missing",
                ("data", channel, "uri"),
                "is required",
                hint="an s3:// prefix, a local path or a file system",
            )
            continue
        s3_type = spec.get("s3_data_type", "S3_DATA_TYPE_S3_PREFIX")
        if uri.startswith("s3://") and s3_type == "S3_DATA_TYPE_S3_PREFIX":
            yield from _prefix_slash(c, channel, uri)
        if not is_local(uri):
            continue
        if not c.local_files.readable(uri):
            yield c.not_checked("data", channel, "uri")
        elif not os.path.exists(uri):
            yield c.error(
                "data.local_missing",
                ("data", channel, "uri"),
                f"the local path {uri} does not exist",
                value=uri,
            )


def _prefix_slash(c: _Context, channel: str, uri: str) -> Iterator[Diagnostic]:
    """SageMaker matches an S3Prefix as a string prefix: `.../train` takes in
    `.../train-old/` too. A catalog model's script reads the channel as a folder, so
    there it is an error; a script of the user's may name one object (`.../train.csv`),
    so a key whose last part looks like a folder gets a warning and a file name none."""
    key = uri[len("s3://") :].partition("/")[2]
    if uri.endswith("/") or not key:
        return
    pretrained = c.inferred.pretrained is not None
    if pretrained or "." not in key.rsplit("/", 1)[-1]:
        report = c.error if pretrained else c.warning
        yield report(
            "data.s3_prefix_slash",
            ("data", channel, "uri"),
            f"an S3 prefix without a trailing '/' also matches its siblings: {uri} takes "
            f"in {uri}-old/ too",
            hint=f"write {uri}/ to read only that folder",
            value=uri,
        )


def _entry_point(c: _Context) -> Iterator[Diagnostic]:
    framework = c.get("model", "framework") or {}
    source_dir = framework.get("source_dir", "")
    entry_point = framework.get("entry_point", "")
    if entry_point and (
        os.path.isabs(entry_point) or os.path.normpath(entry_point).startswith("..")
    ):
        yield c.error(
            "model.entry_point_outside",
            ("model", "framework", "entry_point"),
            f"{entry_point} is not inside source_dir",
            value=entry_point,
            hint="entry_point is a path relative to source_dir, which is all that is "
            "uploaded: move the script into source_dir",
        )
        return
    if source_dir and is_local(source_dir):
        if not c.local_files.readable(source_dir):
            yield c.not_checked("model", "framework", "source_dir")
        elif not os.path.isdir(source_dir):
            yield c.error(
                "model.source_dir_missing",
                ("model", "framework", "source_dir"),
                f"the folder {source_dir} does not exist",
                value=source_dir,
            )
        elif entry_point and not os.path.isfile(os.path.join(source_dir, entry_point)):
            yield c.error(
                "model.entry_point_missing",
                ("model", "framework", "entry_point"),
                f"{entry_point} is not in {source_dir}",
                value=entry_point,
                hint="entry_point is relative to source_dir",
            )


_LAUNCHERS = {
    "DISTRIBUTION_TYPE_TORCH_DISTRIBUTED": "TORCH_DISTRIBUTED",
    "DISTRIBUTION_TYPE_MPI": "MPI",
    "DISTRIBUTION_TYPE_PARAMETER_SERVER": "PARAMETER_SERVER",
    "DISTRIBUTION_TYPE_SMDDP": "SMDDP",
}


def _distribution(c: _Context) -> Iterator[Diagnostic]:
    """The launcher rules of the SageMaker Python SDK (fw_utils.py) and the toolkit."""
    distribution = c.get("distribution") or {}
    kind = distribution.get("type")
    instance = c.inferred.instance
    model = c.get("model") or {}
    if distribution.get("processes_per_host") and kind not in PER_DEVICE_LAUNCHERS:
        yield c.error(
            "distribution.processes_without_launcher",
            ("distribution", "processes_per_host"),
            "only applies with a TORCH_DISTRIBUTED, MPI or SMDDP launcher; without one "
            "SageMaker starts one training process per instance",
            hint="set distribution.type or remove processes_per_host",
            value=distribution["processes_per_host"],
        )
    if kind not in _LAUNCHERS:
        return
    if (
        instance is not None
        and instance.device_kind == "neuron_core"
        and kind != ("DISTRIBUTION_TYPE_TORCH_DISTRIBUTED")
    ):
        yield c.error(
            "distribution.trainium_launcher",
            ("distribution", "type"),
            f"{_LAUNCHERS[kind]} is not supported on Trainium instances ({instance.name})",
            hint="use TORCH_DISTRIBUTED, the only launcher SageMaker supports on Trainium",
        )
    if kind == "DISTRIBUTION_TYPE_TORCH_DISTRIBUTED" and "image" not in model:
        # The SDK skips these checks for a custom image, and so does trainspec.
        if instance is not None and instance.device_kind == "cpu":
            yield c.error(
                "distribution.torch_distributed_cpu",
                ("distribution", "type"),
                f"TORCH_DISTRIBUTED runs only on GPU and Trainium instances; {instance.name} "
                "has neither",
                hint="choose a GPU (ml.g5, ml.p4d, ...) or Trainium (ml.trn1) instance, or "
                "use MPI on CPU instances",
            )
        entry_point = (model.get("framework") or {}).get("entry_point", "")
        if entry_point and not entry_point.endswith(".py"):
            yield c.error(
                "distribution.torch_distributed_entry_point",
                ("model", "framework", "entry_point"),
                f"TORCH_DISTRIBUTED runs Python scripts only; {entry_point} is not a .py file",
                hint="name a .py script as the entry point",
                value=entry_point,
            )
    if kind == "DISTRIBUTION_TYPE_SMDDP" and instance is not None and instance.gpus < 8:
        yield c.error(
            "distribution.smddp_instance",
            ("distribution", "type"),
            f"SageMaker's data-parallel library needs 8-GPU instances; "
            f"{instance.name} has {instance.gpus}",
            hint="use ml.p4d.24xlarge or ml.p5.48xlarge, or TORCH_DISTRIBUTED",
        )


_RULES = (
    _required,
    _batch,
    _known_catalog_entries,
    _spot_and_time,
    _instance_groups,
    _volume_kms,
    _hyperparameters,
    _metrics,
    _network,
    _environment,
    _data,
    _entry_point,
    _distribution,
    check_start,
)
