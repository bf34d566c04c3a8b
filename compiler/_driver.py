"""The compile driver: load → validate → resolve → infer → check → lower → emit.

`compile_source` chains the passes and can stop after any of them (`until`), which is
what `trainspec compile --until resolve` prints for debugging.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from trainspec.compiler._cancel import checkpoint
from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    InternalError,
    Location,
    SpecError,
    raise_if_errors,
)
from trainspec.compiler._infer import Inferred, infer_training, instance_count
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler._places import plan_name, portable_training, project_root
from trainspec.compiler._resolve import Resolved, resolve
from trainspec.compiler.catalog._catalog import Catalog, extend_catalog, find_model, load_catalog
from trainspec.compiler.catalog._jumpstart import MODEL_ID_TAG, MODEL_VERSION_TAG
from trainspec.compiler.check._botocore_check import botocore_version, check_request
from trainspec.compiler.check._check import check_training
from trainspec.compiler.check._data_check import inspect_local_data
from trainspec.compiler.check._local_files import EVERYWHERE, NOWHERE, LocalFiles
from trainspec.compiler.check._validate import Validated, validate_layer
from trainspec.compiler.load._layers import (
    Layer,
    builtin_layer,
    defaults_layer_of,
    find_defaults_file,
    override_layer,
)
from trainspec.compiler.load._load import (
    STDIN_NAME,
    LoadedSource,
    load_file,
    load_source,
    read_file,
)
from trainspec.compiler.lower._emit import emit_plan
from trainspec.compiler.lower._job_name import NAME_FIELDS, name_job, request_suffix, upload_renames
from trainspec.compiler.lower._lower import lower_training
from trainspec.compiler.lower._request_types import typed_request
from trainspec.v1 import plan_pb2


class Stage(enum.IntEnum):
    """The passes, in order; `until` stops after the named one."""

    LOAD = 1
    VALIDATE = 2
    RESOLVE = 3
    INFER = 4
    CHECK = 5
    LOWER = 6
    EMIT = 7


@dataclass(frozen=True)
class CompileOptions:
    """How a plan is made. `autotune_mode`: "explicit" writes inferred ranges out,
    "native" sends SageMaker's Autotune. `max_cost_usd`: fail above this worst case.
    `local_files`: which local paths the checks may read; None leaves it to the entry
    point (`compile_file` reads anything, a spec given in memory nothing)."""

    autotune_mode: str = "explicit"
    max_cost_usd: float | None = None
    preflight: bool = False
    local_files: LocalFiles | None = None


@dataclass(frozen=True)
class Intermediate:
    """What `until` returns before EMIT: the stage reached and its data."""

    stage: Stage
    data: Any


# Each entry point returns a Plan when it runs to EMIT (the default), an Intermediate
# when `until` stops it before.
@overload
def compile_file(
    path: str | os.PathLike,
    *,
    defaults: Sequence[str | os.PathLike] | None = ...,
    overrides: Sequence[str] = ...,
    options: CompileOptions = ...,
    until: Literal[Stage.EMIT] = ...,
    content: bytes | None = ...,
) -> plan_pb2.Plan: ...
@overload
def compile_file(
    path: str | os.PathLike,
    *,
    defaults: Sequence[str | os.PathLike] | None = ...,
    overrides: Sequence[str] = ...,
    options: CompileOptions = ...,
    until: Stage,
    content: bytes | None = ...,
) -> plan_pb2.Plan | Intermediate: ...
def compile_file(
    path: str | os.PathLike,
    *,
    defaults: Sequence[str | os.PathLike] | None = None,
    overrides: Sequence[str] = (),
    options: CompileOptions = CompileOptions(),
    until: Stage = Stage.EMIT,
    content: bytes | None = None,
) -> plan_pb2.Plan | Intermediate:
    """Compile a spec file. `defaults=None` finds trainspec.defaults.yaml walking up.

    `content` is the spec when it comes from elsewhere (standard input): `path` then names
    it and places it, as if the file were there (`--stdin-filename`)."""
    source = load_file(path) if content is None else load_source(os.fsdecode(path), content)
    spec_dir = os.path.dirname(os.path.realpath(path))
    if options.local_files is None:
        options = dataclasses.replace(options, local_files=EVERYWHERE)
    if defaults is None:
        found = find_defaults_file(spec_dir)
        defaults = [found] if found else []
    # Diagnostics name files as the user did; the plan names them from the project root.
    root = project_root(spec_dir)
    spec_file = os.path.join(spec_dir, os.path.basename(source.path))
    file_names = {
        source.path: source.path if source.path == STDIN_NAME else plan_name(spec_file, root)
    }
    layers = [read_file(p) for p in defaults]
    file_names.update((name, plan_name(name, root)) for name, _ in layers)
    return compile_loaded(
        source,
        defaults=layers,
        overrides=overrides,
        options=options,
        until=until,
        spec_dir=spec_dir,
        root=root,
        file_names=file_names,
    )


@overload
def compile_text(
    path: str,
    content: str | bytes,
    *,
    defaults: Sequence[tuple[str, str | bytes]] = ...,
    overrides: Sequence[str] = ...,
    options: CompileOptions = ...,
    until: Literal[Stage.EMIT] = ...,
) -> plan_pb2.Plan: ...
@overload
def compile_text(
    path: str,
    content: str | bytes,
    *,
    defaults: Sequence[tuple[str, str | bytes]] = ...,
    overrides: Sequence[str] = ...,
    options: CompileOptions = ...,
    until: Stage,
) -> plan_pb2.Plan | Intermediate: ...
def compile_text(
    path: str,
    content: str | bytes,
    *,
    defaults: Sequence[tuple[str, str | bytes]] = (),
    overrides: Sequence[str] = (),
    options: CompileOptions = CompileOptions(),
    until: Stage = Stage.EMIT,
) -> plan_pb2.Plan | Intermediate:
    """Compile a spec given in memory (the gRPC `SourceFile` form).

    `path` is a label: its folder, under `options.local_files`' root, is where the spec's
    relative paths point; nothing is read outside that root."""
    source = load_source(path, content)
    local_files = options.local_files or NOWHERE
    return compile_loaded(
        source,
        defaults=defaults,
        overrides=overrides,
        options=options,
        until=until,
        spec_dir=local_files.spec_dir(path),
        root=local_files.root or os.sep,
    )


@overload
def compile_loaded(
    source: LoadedSource,
    *,
    defaults: Sequence[tuple[str, str | bytes]],
    overrides: Sequence[str],
    options: CompileOptions,
    until: Literal[Stage.EMIT],
    spec_dir: str | os.PathLike,
    root: str,
    file_names: Mapping[str, str] | None = ...,
) -> plan_pb2.Plan: ...
@overload
def compile_loaded(
    source: LoadedSource,
    *,
    defaults: Sequence[tuple[str, str | bytes]],
    overrides: Sequence[str],
    options: CompileOptions,
    until: Stage,
    spec_dir: str | os.PathLike,
    root: str,
    file_names: Mapping[str, str] | None = ...,
) -> plan_pb2.Plan | Intermediate: ...
def compile_loaded(
    source: LoadedSource,
    *,
    defaults: Sequence[tuple[str, str | bytes]],
    overrides: Sequence[str],
    options: CompileOptions,
    until: Stage,
    spec_dir: str | os.PathLike,
    root: str,
    file_names: Mapping[str, str] | None = None,
) -> plan_pb2.Plan | Intermediate:
    """Compile a loaded spec. Local paths are relative to `spec_dir`; the plan names them
    relative to `root` (see _places.py) and each file in `file_names` by its value there.
    A spec given in memory passes a root found without looking at the disk."""
    if until is Stage.LOAD:
        return Intermediate(until, source)
    checkpoint()
    problems: list[Diagnostic] = []
    try:
        spec = validate_layer(
            source.path, source.tree, source.locations, source.key_locations, kind="spec"
        )
    except SpecError as exc:  # still check the defaults and --set layers: every mistake
        problems.extend(exc.diagnostics)
        spec = Validated(source.path, source.tree, source.locations, source.key_locations)
    job = "tuning" if "tuning" in spec.tree else "training"
    user_layers: list[Layer] = []
    catalog_blocks: list[Layer] = []
    for path, content in defaults:
        try:
            layer = defaults_layer_of(path, content, job)
        except SpecError as exc:
            problems.extend(exc.diagnostics)
            continue
        user_layers.append(layer)
        if layer.catalog:
            catalog_blocks.append(layer)
    user_layers.append(Layer(OriginKind.SPEC, spec.tree, spec.locations))
    if overrides:
        try:
            user_layers.append(override_layer(overrides, job))
        except SpecError as exc:
            problems.extend(exc.diagnostics)
    raise_if_errors(problems)
    if until is Stage.VALIDATE:
        return Intermediate(until, spec)
    checkpoint()

    catalog = load_catalog()
    for layer in catalog_blocks:
        catalog = extend_catalog(
            catalog,
            {"catalog": layer.catalog},
            layer.catalog_locations or {},
            options.local_files or NOWHERE,
        )
    layers = [builtin_layer(job), *_catalog_layer(user_layers, job, catalog), *user_layers]
    resolved = resolve(layers, job)
    if until is Stage.RESOLVE:
        return Intermediate(until, resolved)
    checkpoint()

    inferred = infer_training(resolved, catalog, spec_dir)
    tuning = None
    if job == "tuning":
        # Imported for tuning specs only: compiling a training spec skips its ~5 ms.
        from trainspec.compiler.tuning import _tuning

        tuning = _tuning.infer(inferred, catalog)
        inferred = tuning.inferred
    if until is Stage.INFER:
        return Intermediate(until, inferred)
    checkpoint()

    locate = _locator(inferred.resolved, spec)
    local_files = options.local_files or NOWHERE
    problems = check_training(inferred, catalog, locate, local_files)
    reports, data_problems = inspect_local_data(inferred, locate, local_files)
    problems.extend(data_problems)
    if tuning is not None:
        problems.extend(_tuning.check(tuning, inferred, locate))
    warnings = [*inferred.notes, *(p for p in problems if not p.is_error)]
    if tuning is not None:
        warnings.extend(tuning.notes)
    raise_if_errors(problems)
    if options.preflight:
        from trainspec.compiler.check._preflight import preflight

        raise_if_errors(preflight(inferred, locate))
    if until is Stage.CHECK:
        return Intermediate(until, inferred)

    training_request = lower_training(inferred)
    if tuning is None:
        operation, request = "CreateTrainingJob", training_request
        envelope = _training_envelope(inferred)
    else:
        operation = "CreateHyperParameterTuningJob"
        request = _tuning.lower(tuning, training_request, options.autotune_mode)
        envelope = _tuning.envelope(tuning, inferred)
    if options.max_cost_usd:
        from trainspec.compiler._envelope import check_budget

        raise_if_errors(check_budget(envelope, options.max_cost_usd))
    request = typed_request(operation, request)
    request, artifact = _named(operation, request, inferred)
    _verify_request(operation, request)
    if until is Stage.LOWER:
        return Intermediate(until, request)

    origins = dict(inferred.resolved.origins)
    if tuning is not None:
        origins.update(tuning.request_origins)
    origins[("sagemaker_request", NAME_FIELDS[operation])] = Origin(
        OriginKind.INFERRED,
        source="rule:job_name.request_digest",
        reason="the spec's name and a digest of the request: a rerun finds its job",
    )
    return emit_plan(
        tree=portable_training(inferred.resolved.tree, inferred.resolved.training_path, root),
        origins=origins,
        operation=operation,
        request=request,
        warnings=sorted(warnings, key=Diagnostic.sort_key),
        batch_sizes=inferred.batch_sizes,
        envelope=envelope,
        model_artifact_uri=artifact,
        data_reports=[{**r, "path": plan_name(r["path"], root)} for r in reports],
        versions=_versions(catalog, tuning),
        botocore_version=botocore_version(),
        file_names=file_names or {},
    )


def _catalog_layer(user_layers: Sequence[Layer], job: str, catalog: Catalog) -> list[Layer]:
    """A pretrained model's JumpStart defaults, placed below the defaults files: its
    hyperparameters, metrics, tags, network isolation, encryption and maximum runtime, as
    JumpStartEstimator sets them."""
    training_path = ("training",) if job == "training" else ("tuning", "training")
    model = find_model(catalog, _pretrained_model_id(user_layers, training_path))
    if model is None:
        return []
    hyperparameters = {
        k: v
        for k, v in model.default_hyperparameters.items()
        if k != model.batch_size_hyperparameter
    }
    tree: dict[str, Any] = {"hyperparameters": hyperparameters} if hyperparameters else {}
    if model.metric_definitions:
        tree["metrics"] = [{"name": n, "regex": r} for n, r in model.metric_definitions]
    tree["tags"] = {MODEL_ID_TAG: model.id, MODEL_VERSION_TAG: model.version}
    network = {}
    if model.network_isolation:
        network["network_isolation"] = True
    if model.encrypt_inter_container_traffic:
        network["inter_container_encryption"] = True
    if network:
        tree["network"] = network
    if model.max_run:
        tree["stopping"] = {"max_runtime_seconds": model.max_run}
    for path in reversed(training_path):
        tree = {path: tree}
    return [Layer(OriginKind.CATALOG, tree, {}, source=f"catalog:models/{model.id}")]


def _pretrained_model_id(user_layers: Sequence[Layer], training_path: FieldPath) -> str:
    """The `model.pretrained` the layers resolve to: `model` is a tagged union, so the
    topmost layer that sets it (or clears it with null) decides alone."""
    for layer in reversed(user_layers):
        node: Any = layer.tree
        for part in training_path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and "model" in node:
            model = node["model"]
            return model.get("pretrained", "") if isinstance(model, dict) else ""
    return ""


def _locator(resolved: Resolved, spec: Validated) -> Callable[[FieldPath], Location | None]:
    origins = resolved.origins

    def locate(path: FieldPath) -> Location | None:
        origin = origins.get(path)
        if origin is not None and origin.location is not None:
            return origin.location
        size = len(path)
        for known in sorted((p for p in origins if p[:size] == path), key=len):
            if origins[known].location is not None:
                return origins[known].location
        return spec.locate(path) or Location(spec.path)

    return locate


def _training_envelope(inferred: Inferred) -> Any:
    from trainspec.compiler._envelope import training_envelope

    instance = inferred.instance
    if instance is None:
        return None
    return training_envelope(
        instance_count=instance_count(inferred.training.get("compute", {})),
        price_per_hour=instance.price_per_hour,
        price_date=instance.price_date,
        price_source=instance.price_source,
        price_estimated=instance.price_estimated,
        max_runtime_seconds=inferred.training.get("stopping", {}).get("max_runtime_seconds", 86400),
    )


def _named(
    operation: str, request: Mapping[str, Any], inferred: Inferred
) -> tuple[dict[str, Any], str]:
    """(the request with its job named `<spec name>-<digest>`, where the model artifact
    will be). SageMaker writes a training job's artifact under its name; a tuning job's
    training jobs are named by SageMaker (`<tuning job>-<NNN>-<8 hex>`), so the best one's
    artifact can only be given as a pattern."""
    suffix = request_suffix(request)
    training = inferred.training
    output = training.get("output", {}).get("path", "")
    planned = [*inferred.local_uploads.values()]
    if inferred.script_mode.get("sagemaker_submit_directory"):
        planned.append(inferred.script_mode["sagemaker_submit_directory"])
    renames = upload_renames(planned, output, training.get("name", ""), suffix)
    named = name_job(operation, request, suffix, renames)
    hyperparameters = named.get("HyperParameters") or {}
    if "sagemaker_job_name" in hyperparameters:  # a JumpStart job's, as the SDK sets it
        named["HyperParameters"] = {
            **hyperparameters,
            "sagemaker_job_name": named[NAME_FIELDS[operation]],
        }
    if not output:
        return named, ""
    job = named[NAME_FIELDS[operation]]
    if operation == "CreateHyperParameterTuningJob":
        job += "-*"
    return named, posixpath.join(output.rstrip("/"), job, "output", "model.tar.gz")


def _verify_request(operation: str, request: Mapping[str, Any]) -> None:
    """A lowered request botocore rejects is a bug in trainspec, not in the spec."""
    problems = check_request(operation, request)
    if problems:
        raise InternalError(
            f"trainspec lowered a {operation} request that botocore's service model rejects",
            problems,
        )


def _versions(catalog: Catalog, tuning: Any) -> dict[str, str]:
    from trainspec.compiler.catalog._images import sdk_version
    from trainspec.compiler.check._validate import field_rules

    versions = dict(catalog.versions)
    versions["frameworks"] = f"sagemaker-{sdk_version()}"  # the SDK the images come from
    versions["fields"] = str(field_rules()["version"])
    if tuning is not None:
        versions.update(tuning.versions)
    return dict(sorted(versions.items()))
