"""SageMaker job names that make reruns work: the spec's name plus a digest of the request.

SageMaker job names are unique per account and region, so the spec's name alone lets a
spec be submitted once. The name is `<spec name>-<8 hex>`, the hex being the start of the
sha256 of the request's canonical JSON as it is with the spec's name: submitting the same
plan again finds the job it made, and any change to the request gives a new name. The
S3 locations trainspec uploads local code and data to carry the suffix too, so a job's
inputs are never overwritten by another version of the spec.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from trainspec.compiler.lower._request_types import request_json

SUFFIX_LENGTH = 8
# SageMaker's limits, and what is left of them for the spec's name after `-<suffix>`.
SAGEMAKER_NAME_LIMITS = {"CreateTrainingJob": 63, "CreateHyperParameterTuningJob": 32}
NAME_FIELDS = {
    "CreateTrainingJob": "TrainingJobName",
    "CreateHyperParameterTuningJob": "HyperParameterTuningJobName",
}
SPEC_NAME_MAX = {op: limit - 1 - SUFFIX_LENGTH for op, limit in SAGEMAKER_NAME_LIMITS.items()}


def request_suffix(request: Mapping[str, Any]) -> str:
    """The first SUFFIX_LENGTH hex digits of sha256 over the request's canonical JSON."""
    return hashlib.sha256(request_json(request).encode()).hexdigest()[:SUFFIX_LENGTH]


def name_job(
    operation: str, request: Mapping[str, Any], suffix: str, renames: Mapping[str, str]
) -> dict[str, Any]:
    """The request with its job named `<spec name>-<suffix>`, and each value that is a key
    of `renames` (exactly those: a user's own URI is never touched) replaced."""
    field = NAME_FIELDS[operation]
    named = _moved(dict(request), renames)
    named[field] = f"{request[field]}-{suffix}"
    return named


def upload_renames(uris: Iterable[str], output: str, name: str, suffix: str) -> dict[str, str]:
    """Each planned upload location under `<output>/<name>/` moved to
    `<output>/<name>-<suffix>/`."""
    old = posixpath.join(output.rstrip("/"), name) + "/"
    new = posixpath.join(output.rstrip("/"), f"{name}-{suffix}") + "/"
    return {uri: new + uri[len(old) :] for uri in uris if uri.startswith(old)}


def _moved(value: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, Mapping):
        return {k: _moved(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, renames) for v in value]
    return value


__all__ = [
    "NAME_FIELDS",
    "SPEC_NAME_MAX",
    "SUFFIX_LENGTH",
    "name_job",
    "request_suffix",
    "upload_renames",
]
