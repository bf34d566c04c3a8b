"""Incremental training: the earlier model a job continues from, as an input channel.

The request is what the SageMaker Python SDK sends for an estimator's `model_uri`
(`sagemaker/job.py`, `_Job._prepare_channel` with `_format_model_uri_input`), which is
also how its JumpStartEstimator trains incrementally (`model_uri` set to the earlier
job's artifact): one channel after the data channels, named `model` unless told
otherwise, in File mode, fully replicated, with content type
`application/x-sagemaker-model`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler._origin import Origin, OriginKind

CONTENT_TYPE = "application/x-sagemaker-model"
DEFAULT_CHANNEL = "model"
# A region spelled inside a bucket name (`jumpstart-cache-prod-us-west-2`, `acme-eu-west-1`):
# the only hint to a bucket's region without asking S3 (that is `--preflight`'s job).
_REGION_IN_NAME = re.compile(
    r"(?:^|[-.])((?:us|eu|ap|sa|ca|me|af|il|mx)(?:-gov)?-"
    r"(?:north|south|east|west|central|northeast|southeast|northwest|southwest)-\d)(?:$|[-.])"
)


@dataclass(frozen=True)
class StartModel:
    """Where the earlier model is, which channel carries it, and the job that made it."""

    channel: str
    uri: str
    parent_job: str = ""  # empty for `from_artifact`

    @property
    def field(self) -> str:
        return "from_job" if self.parent_job else "from_artifact"


def start_model(training: Mapping[str, Any]) -> StartModel | None:
    """The spec's `model.from_job` / `model.from_artifact`, or None for a fresh start."""
    model = training.get("model") or {}
    parent, artifact = model.get("from_job", ""), model.get("from_artifact", "")
    if not parent and not artifact:
        return None
    channel = model.get("model_channel") or DEFAULT_CHANNEL
    if parent:
        output = (training.get("output") or {}).get("path", "")
        uri = posixpath.join(output.rstrip("/"), parent, "output", "model.tar.gz") if output else ""
        return StartModel(channel, uri, parent)
    return StartModel(channel, artifact)


def origin(start: StartModel) -> Origin:
    """The provenance of the channel's URI: it names the parent job."""
    if start.parent_job:
        return Origin(
            OriginKind.INFERRED,
            source=f"job:{start.parent_job}",
            reason=f"incremental training from the model of training job {start.parent_job}",
        )
    return Origin(
        OriginKind.INFERRED,
        source="rule:model.from_artifact",
        reason="incremental training from the model artifact the spec names",
    )


def model_channel(start: StartModel) -> dict[str, Any]:
    """The InputDataConfig entry, as the SDK builds it."""
    return {
        "ChannelName": start.channel,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": start.uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": CONTENT_TYPE,
        "InputMode": "File",
    }


def with_model_channel(channels: list[dict[str, Any]], start: StartModel) -> list[dict[str, Any]]:
    """The request's channels with the earlier model's: in place of a channel of the same
    name (a catalog model's starting weights, which the SDK's `model_uri` replaces as
    well), else after the others. A data channel of that name is a check error first."""
    channel = model_channel(start)
    names = [c.get("ChannelName") for c in channels]
    if start.channel in names:
        return [channel if n == start.channel else c for n, c in zip(names, channels, strict=True)]
    return [*channels, channel]


def bucket_region(uri: str) -> str:
    """The region a bucket's name spells, or ""."""
    bucket = uri.removeprefix("s3://").partition("/")[0]
    match = _REGION_IN_NAME.search(bucket)
    return match.group(1) if match else ""


def check_start(c: Any) -> Iterator[Any]:
    """The check pass's rule for `model.from_*` (`c` is _check's context)."""
    start = start_model(c.training)
    if start is None:
        return
    model = c.get("model") or {}
    if not any(model.get(kind) for kind in ("pretrained", "framework", "image")):
        yield c.error(
            "model.start_needs_kind",
            ("model",),
            f"{start.field} says where to start from, not what to train",
            hint="add `pretrained`, `framework` or `image` beside it",
        )
    pretrained = c.inferred.pretrained
    if model.get("pretrained") and pretrained is not None and not pretrained.incremental_training:
        yield c.error(
            "model.incremental_unsupported",
            ("model", start.field),
            f"{pretrained.id} {pretrained.version} does not support incremental training "
            "(its JumpStart spec's incremental_training_supported is false)",
            hint="fine-tune it from its own weights (drop this field), or start from a "
            "model whose spec supports it",
        )
    if start.channel in (c.get("data") or {}):
        yield c.error(
            "model.channel_taken",
            ("data", start.channel),
            f"the channel {start.channel!r} carries the model of {start.field}; a data "
            "channel has the same name",
            hint="rename the data channel, or set model.model_channel to another name",
            value=start.channel,
        )
    if not start.parent_job:
        key = start.uri.removeprefix("s3://").partition("/")[2]
        if start.uri.startswith("s3://") and not (key.endswith(".tar.gz") or key.endswith("/")):
            yield c.error(
                "model.from_artifact.form",
                ("model", "from_artifact"),
                f"{start.uri} is neither a model.tar.gz nor a folder prefix",
                hint="name the artifact a training job wrote "
                "(`<output>/<job>/output/model.tar.gz`), or end an uncompressed model's "
                "prefix with '/'",
                value=start.uri,
            )
    region = c.get("region") or ""
    named = bucket_region(start.uri)
    if region and named and named != region:
        yield c.error(
            "model.start_region",
            ("model", start.field),
            f"the model is in a bucket of {named}, the job runs in {region}",
            hint="SageMaker reads input channels from the job's region only: copy the "
            f"artifact to a bucket in {region}",
            value=start.uri,
        )
