"""The instance and pretrained-model catalogs: packaged YAML, validated and frozen at load."""

from __future__ import annotations

import datetime
import functools
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import cerberus
import yaml
from trainspec.compiler._diagnostics import (
    MISSING,
    Diagnostic,
    FieldPath,
    InternalError,
    Location,
    SpecError,
    format_path,
)

_PACKAGE = "trainspec.compiler.catalog"
_EMPTY: Mapping[str, Any] = MappingProxyType({})

TASKS = ("text-classification", "image-classification")
# The data layout each task's training script reads (see models.yaml).
DATA_FORMATS = {"text-classification": "csv-label-text", "image-classification": "image-folders"}


@dataclass(frozen=True)
class InstanceType:
    """One SageMaker training instance type. `gpu_memory_gib` is per GPU."""

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: float
    vcpus: int
    memory_gib: float
    local_nvme_gb: int
    accelerator: str  # non-NVIDIA accelerator family ("trainium", ...); "" for NVIDIA/none
    price_per_hour: float
    price_date: str
    price_source: str
    price_estimated: bool
    accelerator_count: int = 0  # accelerator chips (Trainium devices)
    accelerator_memory_gib: float = 0
    # NeuronCores one instance exposes to the training launcher: the toolkit starts one
    # torchrun worker per core, so a Trainium instance's data-parallel device is a core,
    # not a chip (trn1: 2 per chip; trn2: 4 logical per chip at the default LNC=2).
    accelerator_cores: int = 0
    specs_estimated: bool = False
    specs_source: str = ""  # where the accelerator figures were read

    @property
    def devices(self) -> int:
        """Data-parallel devices per instance: GPUs, else NeuronCores, else 1 (the CPU)."""
        return self.gpus or self.accelerator_cores or 1

    @property
    def device_kind(self) -> str:
        """What one data-parallel device is: `gpu`, `neuron_core` or `cpu`."""
        if self.gpus:
            return "gpu"
        return "neuron_core" if self.accelerator_cores else "cpu"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str


@dataclass(frozen=True)
class PretrainedModel:
    """A model that specs fine-tune by id; its batch-size default is per device."""

    id: str
    task: str
    data_format: str
    framework: str
    framework_version: str
    image_uri_template: str
    batch_size_hyperparameter: str
    default_hyperparameters: Mapping[str, str | int | float | bool]
    ecr_accounts: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # region -> account
    cpu_image_uri_template: str = ""
    default_dataset: str = ""  # s3:// prefix template with {region}
    default_instance_type: str = ""
    learning_rate_hyperparameter: str = ""
    epochs_hyperparameter: str = ""
    metric_definitions: tuple[MetricDefinition, ...] = ()
    description: str = ""
    registry: str = ""

    @property
    def per_device_batch_size(self) -> int:
        return int(self.default_hyperparameters[self.batch_size_hyperparameter])

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions where the image can be named; every region if it needs no account."""
        return tuple(sorted(self.ecr_accounts))

    def image_uri(self, region: str, *, gpu: bool = True) -> str:
        """The training image in `region`; SpecError naming the supported regions if none."""
        template = self.image_uri_template
        if not gpu and self.cpu_image_uri_template:
            template = self.cpu_image_uri_template
        account = ""
        if "{account}" in template:
            account = self.ecr_accounts.get(region, "")
            if not account:
                raise SpecError([_region_diagnostic(self, region)])
        return template.format(region=region, account=account)

    def default_dataset_uri(self, region: str) -> str:
        """The sample data set in `region` ("" when the model has none)."""
        return self.default_dataset.format(region=region)


@dataclass(frozen=True)
class Catalog:
    """Both catalogs by key, and the version stamp of each file ("instances", "models")."""

    instances: Mapping[str, InstanceType]
    models: Mapping[str, PretrainedModel]
    versions: Mapping[str, str]
    # registry name -> region -> ECR account id
    registries: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)


def gpus_for_batch(instance: InstanceType) -> int:
    """The factor from per-device to per-instance batch size: GPUs, NeuronCores, or 1."""
    return instance.devices


def image_uri(model: PretrainedModel, region: str, *, gpu: bool = True) -> str:
    """The model's training image URI in `region` (see `PretrainedModel.image_uri`)."""
    return model.image_uri(region, gpu=gpu)


def _region_diagnostic(model: PretrainedModel, region: str) -> Diagnostic:
    return Diagnostic(
        "catalog.region_unsupported",
        "region",
        f"model {model.id} has no training image in region {region!r}",
        hint="supported regions: " + ", ".join(model.regions),
        value=region,
    )


# --- schema -------------------------------------------------------------------------------


class _Validator(cerberus.Validator):
    # YAML booleans are Python ints; a count or a price must not be `true`.
    types_mapping: ClassVar[dict[str, Any]] = {
        **cerberus.Validator.types_mapping,
        "integer": cerberus.TypeDefinition("integer", (int,), (bool,)),
    }


_VERSION = r"\d{4}\.\d{2}\.\d{2}-\d+"
_INSTANCE_NAME = r"ml\.[a-z0-9][a-z0-9\-]*\.[a-z0-9]+"
_REGION = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
_NAME = {"type": "string", "regex": r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,255}"}

_INSTANCE_SCHEMA: dict[str, Any] = {
    "gpus": {"type": "integer", "required": True, "min": 0},
    "gpu_model": {"type": "string", "required": True},
    "gpu_memory_gib": {"type": "number", "required": True, "min": 0},
    "vcpus": {"type": "integer", "required": True, "min": 1},
    "memory_gib": {"type": "number", "required": True, "min": 0.5},
    "local_nvme_gb": {"type": "integer", "required": True, "min": 0},
    "accelerator": {"type": "string", "required": True, "regex": r"[a-z0-9\-]*"},
    "accelerator_count": {"type": "integer", "min": 0},
    "accelerator_memory_gib": {"type": "number", "min": 0},
    "accelerator_cores": {"type": "integer", "min": 0},
    "specs_source": {"type": "string"},
    "price_per_hour": {"type": "number", "required": True, "min": 0},
    "price_date": {"type": ["string", "date"], "required": True},
    "price_source": {"type": "string", "required": True, "minlength": 1},
    "price_estimated": {"type": "boolean", "required": True},
    "specs_estimated": {"type": "boolean"},
}

_ACCOUNTS = {
    "type": "dict",
    "keysrules": {"type": "string", "regex": _REGION},
    "valuesrules": {"type": "string", "regex": r"\d{12}"},
}

_MODEL_SCHEMA: dict[str, Any] = {
    "description": {"type": "string"},
    "task": {"type": "string", "required": True, "allowed": list(TASKS)},
    "data_format": {
        "type": "string",
        "required": True,
        "allowed": sorted(set(DATA_FORMATS.values())),
    },
    "framework": {"type": "string", "required": True, "minlength": 1},
    "framework_version": {"type": "string", "required": True, "minlength": 1},
    "image_uri_template": {"type": "string", "required": True, "minlength": 1},
    "cpu_image_uri_template": {"type": "string"},
    "registry": {"type": "string"},
    "ecr_accounts": _ACCOUNTS,
    "default_dataset": {"type": "string", "regex": r"(s3://[^/]+/.*/)?"},
    "default_instance_type": {"type": "string", "regex": _INSTANCE_NAME},
    "batch_size_hyperparameter": {**_NAME, "required": True},
    "learning_rate_hyperparameter": _NAME,
    "epochs_hyperparameter": _NAME,
    "default_hyperparameters": {
        "type": "dict",
        "required": True,
        "keysrules": _NAME,
        "valuesrules": {"type": ["string", "integer", "float", "boolean"]},
    },
    "metric_definitions": {
        "type": "list",
        "schema": {
            "type": "dict",
            "schema": {
                "name": {"type": "string", "required": True, "minlength": 1, "maxlength": 255},
                "regex": {"type": "string", "required": True, "minlength": 1, "maxlength": 500},
            },
        },
    },
}

_INSTANCES_FILE_SCHEMA = {
    "version": {"type": "string", "required": True, "regex": _VERSION},
    "instances": {
        "type": "dict",
        "required": True,
        "keysrules": {"type": "string", "regex": _INSTANCE_NAME},
        "valuesrules": {"type": "dict", "schema": _INSTANCE_SCHEMA},
    },
}

_MODELS_FILE_SCHEMA = {
    "version": {"type": "string", "required": True, "regex": _VERSION},
    "registries": {
        "type": "dict",
        "keysrules": {"type": "string", "regex": r"[a-z0-9\-]+"},
        "valuesrules": _ACCOUNTS,
    },
    "models": {
        "type": "dict",
        "required": True,
        "keysrules": {"type": "string", "regex": r"[a-z0-9][a-z0-9\-.]{0,62}"},
        "valuesrules": {"type": "dict", "schema": _MODEL_SCHEMA},
    },
}


def _cerberus_problems(schema: Mapping[str, Any], document: Any) -> list[tuple[FieldPath, str]]:
    """(field path, message) for every schema violation; cerberus types stay in here."""
    if not isinstance(document, Mapping):
        return [((), "must be a mapping")]
    validator = _Validator(schema)
    if validator.validate(dict(document)):
        return []
    return list(_walk_errors((), validator.errors))


def _walk_errors(path: FieldPath, node: Any) -> Iterator[tuple[FieldPath, str]]:
    # cerberus reports {field: [message | {subfield: [...]}, ...]}.
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk_errors((*path, key), value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_errors(path, item)
    else:
        yield path, str(node)


# --- semantic rules beyond the schema -------------------------------------------------------


def _instance_problems(entry: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    gpus = entry["gpus"]
    if gpus and not entry["gpu_model"]:
        yield "gpu_model", "must name the GPU model when gpus > 0"
    if gpus and not entry["gpu_memory_gib"]:
        yield "gpu_memory_gib", "must be > 0 when gpus > 0"
    if not gpus and (entry["gpu_model"] or entry["gpu_memory_gib"]):
        yield "gpus", "is 0 but a GPU model or GPU memory is given"
    count = entry.get("accelerator_count", 0)
    if entry["accelerator"] and not count:
        yield "accelerator_count", f"must be > 0 for accelerator {entry['accelerator']!r}"
    if count and not entry["accelerator"]:
        yield "accelerator", "must name the accelerator when accelerator_count > 0"
    cores = entry.get("accelerator_cores", 0)
    if entry["accelerator"] and not cores:
        yield (
            "accelerator_cores",
            (f"must give the NeuronCores per instance for accelerator {entry['accelerator']!r}"),
        )
    if cores and count and cores % count:
        yield "accelerator_cores", f"{cores} is not a multiple of accelerator_count {count}"
    if (count or cores) and not entry.get("specs_source"):
        yield "specs_source", "must say where the accelerator figures come from"
    if gpus and entry["accelerator"]:
        yield "accelerator", "is for non-NVIDIA accelerators; this entry has GPUs"


_PLACEHOLDERS = {"region", "account"}


def _model_problems(
    entry: Mapping[str, Any], registries: Mapping[str, Mapping[str, str]]
) -> Iterator[tuple[str, str]]:
    if DATA_FORMATS[entry["task"]] != entry["data_format"]:
        yield "data_format", f"must be {DATA_FORMATS[entry['task']]} for task {entry['task']}"
    batch = entry["batch_size_hyperparameter"]
    value = entry["default_hyperparameters"].get(batch)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        yield (
            "default_hyperparameters",
            f"must give the per-device batch size {batch!r} as a positive integer",
        )
    registry = entry.get("registry", "")
    if registry and registry not in registries:
        known = ", ".join(sorted(registries)) or "none"
        yield "registry", f"unknown registry {registry!r} (known: {known})"
    for key in ("image_uri_template", "cpu_image_uri_template", "default_dataset"):
        template = entry.get(key, "")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError as error:
            yield key, f"is not a valid template: {error}"
            continue
        allowed = {"region"} if key == "default_dataset" else _PLACEHOLDERS
        if names - allowed:
            yield (
                key,
                f"has unknown placeholders {sorted(names - allowed)} (allowed: {sorted(allowed)})",
            )
        if "account" in names and not registry and not entry.get("ecr_accounts"):
            yield key, "uses {account}: give `registry` or `ecr_accounts`"
    for index, metric in enumerate(entry.get("metric_definitions", ())):
        try:
            groups = re.compile(metric["regex"]).groups
        except re.error as error:
            yield f"metric_definitions[{index}].regex", f"does not compile: {error}"
            continue
        if groups != 1:
            yield f"metric_definitions[{index}].regex", f"must have one group, has {groups}"


# --- building frozen entries ---------------------------------------------------------------

_INSTANCE_FIELDS = tuple(f.name for f in fields(InstanceType) if f.name != "name")


def _instance(name: str, entry: Mapping[str, Any]) -> InstanceType:
    values = {key: entry[key] for key in _INSTANCE_FIELDS if key in entry}
    if isinstance(values["price_date"], datetime.date):
        values["price_date"] = values["price_date"].isoformat()
    return InstanceType(name=name, **values)


def _model(
    model_id: str, entry: Mapping[str, Any], registries: Mapping[str, Mapping[str, str]]
) -> PretrainedModel:
    accounts = dict(registries.get(entry.get("registry", ""), {}))
    accounts.update(entry.get("ecr_accounts", {}))
    values = {
        key: entry[key]
        for key in (
            "task",
            "data_format",
            "framework",
            "framework_version",
            "image_uri_template",
            "cpu_image_uri_template",
            "default_dataset",
            "default_instance_type",
            "batch_size_hyperparameter",
            "learning_rate_hyperparameter",
            "epochs_hyperparameter",
            "description",
            "registry",
        )
        if key in entry
    }
    return PretrainedModel(
        id=model_id,
        default_hyperparameters=MappingProxyType(dict(entry["default_hyperparameters"])),
        ecr_accounts=MappingProxyType(accounts),
        metric_definitions=tuple(
            MetricDefinition(m["name"], m["regex"]) for m in entry.get("metric_definitions", ())
        ),
        **values,
    )


def _instance_to_raw(instance: InstanceType) -> dict[str, Any]:
    return {key: getattr(instance, key) for key in _INSTANCE_FIELDS}


def _model_to_raw(
    model: PretrainedModel, registries: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        f.name: getattr(model, f.name) for f in fields(PretrainedModel) if f.name != "id"
    }
    raw["default_hyperparameters"] = dict(model.default_hyperparameters)
    # Keep only accounts given inline, so an override naming another registry takes effect.
    from_registry = registries.get(model.registry, {})
    raw["ecr_accounts"] = {
        region: account
        for region, account in model.ecr_accounts.items()
        if from_registry.get(region) != account
    }
    raw["metric_definitions"] = [
        {"name": m.name, "regex": m.regex} for m in model.metric_definitions
    ]
    return {key: value for key, value in raw.items() if value not in ("", {}, [])}


# --- packaged files ------------------------------------------------------------------------


class _FileProblems:
    """Collects problems in one catalog file and raises them as one InternalError."""

    def __init__(self, path: str):
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def add(self, field_path: FieldPath, message: str) -> None:
        self.diagnostics.append(
            Diagnostic(
                "catalog.invalid_entry",
                format_path(field_path),
                message,
                location=Location(self.path),
            )
        )

    def raise_if_any(self) -> None:
        if self.diagnostics:
            first = self.diagnostics[0]
            more = f" (and {len(self.diagnostics) - 1} more)" if len(self.diagnostics) > 1 else ""
            raise InternalError(
                f"catalog file {self.path} is invalid: {first.field_path}: {first.message}{more}",
                self.diagnostics,
            )


def _read_yaml(path: Path | Any, problems: _FileProblems) -> Any:
    try:
        # The C loader is ~8x faster on the 225-entry instances file; same safe semantics.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as error:
        problems.add((), f"cannot be read: {error}")
        problems.raise_if_any()


def _load_instances(path: Path | Any) -> tuple[str, dict[str, InstanceType]]:
    """Read and validate an instances file; InternalError naming file, entry and field."""
    problems = _FileProblems(str(path))
    document = _read_yaml(path, problems)
    for field_path, message in _cerberus_problems(_INSTANCES_FILE_SCHEMA, document):
        problems.add(field_path, message)
    problems.raise_if_any()
    for name, entry in document["instances"].items():
        for key, message in _instance_problems(entry):
            problems.add(("instances", name, key), message)
    problems.raise_if_any()
    return document["version"], {
        name: _instance(name, entry) for name, entry in sorted(document["instances"].items())
    }


def _load_models(
    path: Path | Any,
) -> tuple[str, dict[str, PretrainedModel], dict[str, Mapping[str, str]]]:
    """Read and validate a models file; InternalError naming file, entry and field."""
    problems = _FileProblems(str(path))
    document = _read_yaml(path, problems)
    for field_path, message in _cerberus_problems(_MODELS_FILE_SCHEMA, document):
        problems.add(field_path, message)
    problems.raise_if_any()
    registries = {
        name: MappingProxyType(dict(table))
        for name, table in (document.get("registries") or {}).items()
    }
    for model_id, entry in document["models"].items():
        for key, message in _model_problems(entry, registries):
            problems.add(("models", model_id, key), message)
    problems.raise_if_any()
    models = {
        model_id: _model(model_id, entry, registries)
        for model_id, entry in sorted(document["models"].items())
    }
    return document["version"], models, registries


def _load_catalog_files(instances_path: Path | Any, models_path: Path | Any) -> Catalog:
    """Both files into one Catalog, cross-checked (model defaults name known instances)."""
    instances_version, instances = _load_instances(instances_path)
    models_version, models, registries = _load_models(models_path)
    problems = _FileProblems(str(models_path))
    for model in models.values():
        if model.default_instance_type and model.default_instance_type not in instances:
            problems.add(
                ("models", model.id, "default_instance_type"),
                f"{model.default_instance_type!r} is not in {instances_path}",
            )
    problems.raise_if_any()
    return Catalog(
        instances=MappingProxyType(instances),
        models=MappingProxyType(models),
        versions=MappingProxyType({"instances": instances_version, "models": models_version}),
        registries=MappingProxyType(registries),
    )


@functools.cache
def load_catalog() -> Catalog:
    """The packaged catalogs, validated once per process."""
    folder = resources.files(_PACKAGE)
    return _load_catalog_files(folder.joinpath("instances.yaml"), folder.joinpath("models.yaml"))


# --- organisation additions ----------------------------------------------------------------


def _locate(locations: Mapping[FieldPath, Location], path: FieldPath) -> Location | None:
    """The location of `path`, else of its nearest ancestor that has one."""
    while True:
        location = locations.get(path)
        if location is not None or not path:
            return location
        path = path[:-1]


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    # Maps merge key by key; scalars and lists are replaced whole (DESIGN.md layers).
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def extend_catalog(
    catalog: Catalog, tree: Mapping[str, Any], locations: Mapping[FieldPath, Location]
) -> Catalog:
    """Add or override entries from a defaults file's `catalog:` block.

    An entry that names an existing key is merged onto it field by field; a new entry must
    be complete. Every entry is checked with the packaged files' schema; all problems are
    raised together as one SpecError located in the defaults file.
    """
    block = tree.get("catalog") if isinstance(tree, Mapping) else None
    if block is None:
        return catalog
    diagnostics: list[Diagnostic] = []

    def report(path: FieldPath, message: str, value: Any = MISSING) -> None:
        diagnostics.append(
            Diagnostic(
                "catalog.invalid_entry",
                format_path(path),
                message,
                hint="catalog entries take the fields of compiler/catalog/*.yaml",
                location=_locate(locations, path),
                value=value,
            )
        )

    base = ("catalog",)
    if not isinstance(block, Mapping):
        report(base, "must be a mapping with `instances` and/or `models`")
        raise SpecError(diagnostics)
    for key in block:
        if key not in ("instances", "models"):
            report((*base, key), f"unknown catalog section {key!r} (instances, models)", key)

    sections = {}
    for section in ("instances", "models"):
        sections[section] = block.get(section) or {}
        if not isinstance(sections[section], Mapping):
            report((*base, section), "must be a mapping from name to entry")
            sections[section] = {}
    instances = dict(catalog.instances)
    raw_instances = sections["instances"]
    models = dict(catalog.models)
    raw_models = sections["models"]

    for section, raw in sections.items():
        for key, entry in list(raw.items()):
            if not isinstance(entry, Mapping):
                report((*base, section, key), "must be a mapping of fields", _value_at(entry, ()))
    raw_instances = {k: v for k, v in raw_instances.items() if isinstance(v, Mapping)}
    raw_models = {k: v for k, v in raw_models.items() if isinstance(v, Mapping)}

    for name, entry in raw_instances.items():
        merged = _merge(_instance_to_raw(instances[name]), entry) if name in instances else entry
        found = _cerberus_problems(
            _INSTANCES_FILE_SCHEMA, {"version": "0000.00.00-0", "instances": {name: merged}}
        )
        if not found:
            found = [(("instances", name, key), msg) for key, msg in _instance_problems(merged)]
        for field_path, message in found:
            report(base + field_path, message, _value_at(merged, field_path[2:]))
        if not found:
            instances[name] = _instance(name, merged)

    for model_id, entry in raw_models.items():
        merged = (
            _merge(_model_to_raw(models[model_id], catalog.registries), entry)
            if model_id in models
            else entry
        )
        found = _cerberus_problems(
            _MODELS_FILE_SCHEMA, {"version": "0000.00.00-0", "models": {model_id: merged}}
        )
        if not found:
            found = [
                (("models", model_id, key), msg)
                for key, msg in _model_problems(merged, catalog.registries)
            ]
        if not found:
            default_instance = merged.get("default_instance_type", "")
            if default_instance and default_instance not in instances:
                found = [
                    (
                        ("models", model_id, "default_instance_type"),
                        f"{default_instance!r} is not in the instance catalog",
                    )
                ]
        for field_path, message in found:
            report(base + field_path, message, _value_at(merged, field_path[2:]))
        if not found:
            models[model_id] = _model(model_id, merged, catalog.registries)

    if diagnostics:
        raise SpecError(diagnostics)
    return Catalog(
        instances=MappingProxyType(dict(sorted(instances.items()))),
        models=MappingProxyType(dict(sorted(models.items()))),
        versions=catalog.versions,
        registries=catalog.registries,
    )


def _value_at(tree: Any, path: FieldPath) -> Any:
    for part in path:
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        else:
            return MISSING
    return tree if isinstance(tree, str | int | float | bool) else MISSING


__all__ = [
    "Catalog",
    "InstanceType",
    "MetricDefinition",
    "PretrainedModel",
    "extend_catalog",
    "gpus_for_batch",
    "image_uri",
    "load_catalog",
]
