"""The instance and pretrained-model catalogs, validated and frozen at load.

Instances are packaged YAML; pretrained models are JumpStart model-spec JSON documents
(catalog/jumpstart/, sources in its sources.json), plus any a defaults file names in
`catalog: {jumpstart_specs: [FILE, ...]}`.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
from trainspec.compiler.catalog import data_file
from trainspec.compiler.catalog._jumpstart import (
    JumpStartModel,
    from_spec,
    spec_problems,
)
from trainspec.compiler.catalog._yaml_data import PARSED_TWINS, read_yaml
from trainspec.compiler.check._fast_accept import TYPES, Check, compile_document
from trainspec.compiler.check._local_files import EVERYWHERE, LocalFiles

_EMPTY: Mapping[str, Any] = MappingProxyType({})

# A pretrained model is a JumpStart model spec (see _jumpstart.py).
PretrainedModel = JumpStartModel


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
class Catalog:
    """Both catalogs by key, and the version stamp of each ("instances", "models")."""

    instances: Mapping[str, InstanceType]
    models: Mapping[str, PretrainedModel]
    versions: Mapping[str, str]


def find_model(catalog: Catalog, ref: str) -> PretrainedModel | None:
    """The model `ref` names: a JumpStart model id, or `ID@VERSION` pinning the spec's
    version (None when the id is unknown or the version is not the catalog's)."""
    model_id, _, version = ref.partition("@")
    model = catalog.models.get(model_id)
    if model is None or (version and version != model.version):
        return None
    return model


def gpus_for_batch(instance: InstanceType) -> int:
    """The factor from per-device to per-instance batch size: GPUs, NeuronCores, or 1."""
    return instance.devices


# --- schema -------------------------------------------------------------------------------


@functools.cache
def _validator_class() -> type:
    """cerberus, imported only to say what is wrong with a file the fast path declines."""
    import cerberus

    class _Validator(cerberus.Validator):
        # YAML booleans are Python ints; a count or a price must not be `true`.
        types_mapping = TYPES

    return _Validator


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

_INSTANCES_FILE_SCHEMA = {
    "version": {"type": "string", "required": True, "regex": _VERSION},
    "instances": {
        "type": "dict",
        "required": True,
        "keysrules": {"type": "string", "regex": _INSTANCE_NAME},
        "valuesrules": {"type": "dict", "schema": _INSTANCE_SCHEMA},
    },
}


def _cerberus_problems(schema: Mapping[str, Any], document: Any) -> list[tuple[FieldPath, str]]:
    """(field path, message) for every schema violation; cerberus types stay in here."""
    if not isinstance(document, Mapping):
        return [((), "must be a mapping")]
    if _accepts(schema)(document):  # proven valid without a cerberus walk (~40 ms)
        return []
    validator = _validator_class()(schema)
    if validator.validate(dict(document)):
        return []
    return list(_walk_errors((), validator.errors))


def _accepts(schema: Mapping[str, Any]) -> Check:
    """The fast accept-only predicate of a schema (`_fast_accept`), compiled once."""
    known = _ACCEPTS.get(id(schema))
    if known is None or known[0] is not schema:
        known = _ACCEPTS[id(schema)] = (schema, compile_document(schema, {}))
    return known[1]


# id -> (schema, predicate); the schema is kept so that its id is never reused.
_ACCEPTS: dict[int, tuple[Mapping[str, Any], Check]] = {}


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


# --- building frozen entries ---------------------------------------------------------------

_INSTANCE_FIELDS = tuple(f.name for f in fields(InstanceType) if f.name != "name")


def _instance(name: str, entry: Mapping[str, Any]) -> InstanceType:
    values = {key: entry[key] for key in _INSTANCE_FIELDS if key in entry}
    if isinstance(values["price_date"], datetime.date):
        values["price_date"] = values["price_date"].isoformat()
    return InstanceType(name=name, **values)


def _instance_to_raw(instance: InstanceType) -> dict[str, Any]:
    return {key: getattr(instance, key) for key in _INSTANCE_FIELDS}


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


def _read_yaml(path: Path | Any, problems: _FileProblems, twin: Any | None = None) -> Any:
    try:
        return read_yaml(path, twin)
    except (OSError, yaml.YAMLError) as error:
        problems.add((), f"cannot be read: {error}")
        problems.raise_if_any()


def _load_instances(
    path: Path | Any, twin: Any | None = None
) -> tuple[str, dict[str, InstanceType]]:
    """Read and validate an instances file (from its parsed `twin` when that is current,
    see `_yaml_data.read_yaml`); InternalError naming file, entry and field."""
    problems = _FileProblems(str(path))
    document = _read_yaml(path, problems, twin)
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


def _load_packaged_specs(folder: Any) -> tuple[str, dict[str, PretrainedModel]]:
    """The packaged JumpStart specs named in sources.json; InternalError naming the file."""
    problems = _FileProblems(str(folder.joinpath("sources.json")))
    try:
        sources = json.loads(folder.joinpath("sources.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.add((), f"cannot be read: {error}")
        problems.raise_if_any()
    models = {}
    for model_id, entry in sorted(sources["specs"].items()):
        file_problems = _FileProblems(f"catalog/jumpstart/{entry['file']}")
        doc = json.loads(folder.joinpath(entry["file"]).read_text(encoding="utf-8"))
        for field_path, message in spec_problems(doc):
            file_problems.add(field_path, message)
        if doc.get("model_id") != model_id:
            file_problems.add(("model_id",), f"is not {model_id!r} as sources.json says")
        file_problems.raise_if_any()
        models[model_id] = from_spec(doc, entry["source"])
    return sources["version"], models


def _load_catalog_files(
    instances_path: Path | Any, specs_folder: Any, instances_twin: Any | None = None
) -> Catalog:
    """The instances file and the packaged JumpStart specs, as one Catalog."""
    instances_version, instances = _load_instances(instances_path, instances_twin)
    models_version, models = _load_packaged_specs(specs_folder)
    return Catalog(
        instances=MappingProxyType(instances),
        models=MappingProxyType(models),
        versions=MappingProxyType({"instances": instances_version, "models": models_version}),
    )


@functools.cache
def load_catalog() -> Catalog:
    """The packaged catalogs, validated once per process."""
    return _load_catalog_files(
        data_file("instances.yaml"),
        data_file("jumpstart"),
        data_file(PARSED_TWINS["instances.yaml"]),
    )


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
    catalog: Catalog,
    tree: Mapping[str, Any],
    locations: Mapping[FieldPath, Location],
    local_files: LocalFiles = EVERYWHERE,
) -> Catalog:
    """Add or override entries from a defaults file's `catalog:` block.

    `instances`: an entry that names an existing key is merged onto it field by field; a
    new entry must be complete. `jumpstart_specs`: JumpStart model-spec JSON files,
    relative to the defaults file; each one's `model_id` becomes a `model.pretrained` id
    (replacing a packaged spec of that id). All problems are raised together as one
    SpecError, located in the defaults file or in the spec file.
    """
    block = tree.get("catalog") if isinstance(tree, Mapping) else None
    if block is None:
        return catalog
    diagnostics: list[Diagnostic] = []

    def report(path: FieldPath, message: str, value: Any = MISSING, hint: str = "") -> None:
        diagnostics.append(
            Diagnostic(
                "catalog.invalid_entry",
                format_path(path),
                message,
                hint=hint or "catalog entries take the fields of compiler/catalog/instances.yaml",
                location=_locate(locations, path),
                value=value,
            )
        )

    base = ("catalog",)
    if not isinstance(block, Mapping):
        report(base, "must be a mapping with `instances` and/or `jumpstart_specs`")
        raise SpecError(diagnostics)
    for key in block:
        if key == "models":
            report(
                (*base, key),
                "pretrained models are JumpStart model specs now",
                key,
                hint="list spec JSON files under `catalog: {jumpstart_specs: [FILE, ...]}`",
            )
        elif key not in ("instances", "jumpstart_specs"):
            report(
                (*base, key),
                f"unknown catalog section {key!r} (instances, jumpstart_specs)",
                key,
            )

    raw_instances = block.get("instances") or {}
    if not isinstance(raw_instances, Mapping):
        report((*base, "instances"), "must be a mapping from name to entry")
        raw_instances = {}
    instances = dict(catalog.instances)
    for key, entry in list(raw_instances.items()):
        if not isinstance(entry, Mapping):
            report((*base, "instances", key), "must be a mapping of fields", _value_at(entry, ()))
    raw_instances = {k: v for k, v in raw_instances.items() if isinstance(v, Mapping)}

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

    models = dict(catalog.models)
    specs = block.get("jumpstart_specs") or []
    if not isinstance(specs, list):
        report((*base, "jumpstart_specs"), "must be a list of JumpStart spec JSON files")
        specs = []
    for index, name in enumerate(specs):
        path = (*base, "jumpstart_specs", index)
        if not isinstance(name, str) or not name:
            report(path, "must be a file name", _value_at(name, ()))
            continue
        model, problems = _read_spec(name, _locate(locations, path), path, local_files)
        diagnostics.extend(problems)
        if model is not None:
            models[model.id] = model

    if diagnostics:
        raise SpecError(diagnostics)
    return Catalog(
        instances=MappingProxyType(dict(sorted(instances.items()))),
        models=MappingProxyType(dict(sorted(models.items()))),
        versions=catalog.versions,
    )


def _read_spec(
    name: str, where: Location | None, path: FieldPath, local_files: LocalFiles
) -> tuple[PretrainedModel | None, list[Diagnostic]]:
    """One JumpStart spec a defaults file names: the model, or located problems."""
    from trainspec.compiler.load._load import load_file  # the loader pulls in the YAML parser

    defaults_file = where.path if where is not None else ""
    if local_files.root == os.sep:
        folder = os.path.dirname(os.path.abspath(defaults_file)) if defaults_file else ""
    else:
        folder = local_files.spec_dir(defaults_file)
    file = os.path.normpath(os.path.join(folder, name))
    shown = os.path.normpath(os.path.join(os.path.dirname(defaults_file), name))

    def problem(code: str, message: str, hint: str = "", at: Location | None = where,
                field: FieldPath = path) -> list[Diagnostic]:  # fmt: skip
        return [Diagnostic(code, format_path(field), message, hint=hint, location=at, value=name)]

    if not local_files.readable(file):
        return None, problem(
            "catalog.jumpstart_spec_unreadable",
            "JumpStart spec not read: this server reads no files outside its allowed root",
            "start the server with --files-root covering it, or compile with the CLI",
        )
    if not os.path.isfile(file):
        return None, problem(
            "catalog.jumpstart_spec_missing",
            f"no JumpStart spec file {shown}",
            "paths are relative to the defaults file",
        )
    try:
        loaded = load_file(shown if os.path.isfile(shown) else file)
    except SpecError as error:
        return None, list(error.diagnostics)
    found = list(spec_problems(loaded.tree))
    if found:
        diagnostics = []
        for field_path, message in found:
            at = _locate(loaded.locations, field_path) or Location(loaded.path)
            code = "catalog.not_a_jumpstart_spec" if not field_path else "catalog.jumpstart_spec"
            diagnostics.append(
                Diagnostic(
                    code,
                    format_path(field_path),
                    message,
                    hint="JumpStart publishes one spec JSON per model and version; see "
                    "compiler/catalog/jumpstart/ for examples",
                    location=at,
                )
            )
        return None, diagnostics
    return from_spec(loaded.tree, f"defaults file: {shown}"), []


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
    "PretrainedModel",
    "extend_catalog",
    "find_model",
    "gpus_for_batch",
    "load_catalog",
]
