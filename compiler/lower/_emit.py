"""The emit pass: build the trainspec.v1.Plan and stamp its digest.

The digest is the sha256 of the plan's deterministic serialization with the digest field
empty, so the same inputs always give the same bytes and the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import Any

from google.protobuf import json_format
from trainspec import __version__
from trainspec.compiler._diagnostics import MISSING, Diagnostic, FieldPath, format_path
from trainspec.compiler._fields import job_spec
from trainspec.compiler._origin import Origin
from trainspec.compiler.lower._request_types import request_json
from trainspec.compiler.lower._to_proto import SCALAR_FIELDS, fill_message, set_struct, set_value
from trainspec.v1 import job_spec_pb2, plan_pb2


def emit_plan(
    *,
    tree: Mapping[str, Any],
    origins: Mapping[FieldPath, Origin],
    operation: str,
    request: Mapping[str, Any],
    warnings: Iterable[Diagnostic],
    batch_sizes: Any,
    envelope: Any,
    model_artifact_uri: str,
    data_reports: Sequence[Mapping[str, Any]],
    versions: Mapping[str, str],
    botocore_version: str,
    file_names: Mapping[str, str] = MappingProxyType({}),
) -> plan_pb2.Plan:
    """The plan; a source location's file is renamed by `file_names` where it has one."""
    plan = plan_pb2.Plan(
        sagemaker_operation=operation,
        model_artifact_uri=model_artifact_uri,
    )
    fill_message(plan.job, tree, job_spec())
    set_struct(plan.sagemaker_request, request)
    plan.sagemaker_request_json = request_json(request)
    _add_provenance(plan.provenance, origins, tree, request, file_names)
    plan.warnings.extend(d.to_proto() for d in warnings)
    for warning in plan.warnings:
        location = warning.location
        if location.path in file_names:
            location.path = file_names[location.path]
    if batch_sizes is not None:
        plan.batch_sizes.CopyFrom(_batch_message(batch_sizes))
    if envelope is not None:
        fields = dict(envelope) if isinstance(envelope, Mapping) else vars(envelope)
        plan.envelope.CopyFrom(plan_pb2.CostEnvelope(**fields))
    for report in data_reports:
        json_format.ParseDict(dict(report), plan.data_reports.add())
    plan.versions.compiler = __version__
    plan.versions.botocore = botocore_version
    plan.versions.catalogs.update(versions)
    plan.digest = digest_of(plan)
    return plan


def _add_provenance(
    entries: Any,
    origins: Mapping[FieldPath, Origin],
    tree: Any,
    request: Any,
    file_names: Mapping[str, str],
) -> None:
    """One ValueOrigin per resolved value, sorted by field path, each with its value."""
    named = [(format_path(path), path, origin) for path, origin in origins.items()]
    named.sort(key=itemgetter(0))
    add = entries.add
    scalar_fields = SCALAR_FIELDS
    for field_path, path, origin in named:
        # Only non-default fields are passed: each keyword costs a call into upb.
        entry = add(field_path=field_path, kind=origin.kind)
        if origin.source:
            entry.source = origin.source
        if origin.reason:
            entry.reason = origin.reason
        location = origin.location
        if location is not None:
            target = entry.location
            target.path = file_names.get(location.path, location.path)
            if location.line:
                target.line = location.line
                target.column = location.column
        if path[0] == "sagemaker_request":
            value = _request_value(request, path[1:])
        else:
            value = _get(tree, path)
        scalar_field = scalar_fields.get(type(value))
        if scalar_field is not None:
            setattr(entry.value, scalar_field, value)
        elif value is not MISSING:
            set_value(entry.value, value)


def _batch_message(batch_sizes: Any) -> plan_pb2.BatchSizes:
    return plan_pb2.BatchSizes(
        hyperparameter=batch_sizes.hyperparameter,
        per_device=batch_sizes.per_device,
        per_process=batch_sizes.per_process,
        per_instance=batch_sizes.per_instance,
        global_batch_size=batch_sizes.global_,
        gpus_per_instance=batch_sizes.gpus_per_instance,
        devices_per_instance=batch_sizes.devices_per_instance,
        device_kind=batch_sizes.device_kind,
        processes_per_host=batch_sizes.processes_per_host,
    )


def _request_value(request: Mapping[str, Any], path: FieldPath) -> Any:
    """A value by its CreateTrainingJob path; a tuning request holds the training job's
    fields under TrainingJobDefinition, its hyperparameters as StaticHyperParameters."""
    value = _get(request, path)
    definition = request.get("TrainingJobDefinition")
    if value is MISSING and isinstance(definition, Mapping):
        if path[:1] == ("HyperParameters",):
            path = ("StaticHyperParameters", *path[1:])
        value = _get(definition, path)
    return value


def _get(tree: Any, path: FieldPath) -> Any:
    for part in path:
        try:
            tree = tree[part]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return tree


def digest_of(plan: plan_pb2.Plan) -> str:
    """`sha256:<hex>` of the plan's deterministic bytes with the digest field empty."""
    if plan.digest:
        unstamped = plan_pb2.Plan()
        unstamped.CopyFrom(plan)
        unstamped.digest = ""
        plan = unstamped
    data = plan.SerializeToString(deterministic=True)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def job_message(tree: Mapping[str, Any]) -> job_spec_pb2.JobSpec:
    message = job_spec_pb2.JobSpec()
    fill_message(message, tree, job_spec())
    return message
