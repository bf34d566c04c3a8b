"""A local job's inputs on S3: its S3 channels, and a pretrained model's script archive.

What SageMaker downloads before the container starts (each channel, File mode) and what
the training toolkit downloads inside it (`sagemaker_submit_directory`, extracted into
/opt/ml/code) are fetched with boto3 through the runner's cache (`_s3_cache`), so a rerun
downloads only what changed on S3. Errors name the S3 URI and what would fix them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from trainspec.trainer._container import Channel, ContainerError, JobLayout, TrainingRun
from trainspec.trainer._s3_cache import (
    PROGRESS_BYTES,
    ObjectChanged,
    Progress,
    S3Cache,
    S3Object,
)
from trainspec.trainer._source_archive import unpack_source

CONTAINER_BASE = "/opt/ml/"
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
    }
)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# S3's bucket names (old us-east-1 ones may have capitals and underscores): never `.`/`..`.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


class InputsUnavailable(ContainerError):
    """S3 or the disk failed while fetching (no network, S3's own errors, a full disk): the
    plan may be fine, so the CLI exits 4 (infrastructure) and a rerun resumes from the cache."""


def s3_inputs(run: TrainingRun) -> list[str]:
    """What the job reads from S3, for people: `channel NAME (URI)` and the script archive."""
    needed = [f"channel {c.name} ({c.uri})" for c in run.channels if c.is_s3]
    if run.source_archive.startswith("s3://"):
        needed.append(f"the training script archive ({run.source_archive})")
    return needed


def fetch_inputs(
    run: TrainingRun,
    layout: JobLayout,
    root: Path,
    echo: Callable[[str], None],
    progress: TextIO | None = None,
) -> None:
    """Put the job's S3 channels into `layout`'s channel folders and, for a pretrained
    model, its script archive's files into `layout`'s code folder."""
    needed = s3_inputs(run)
    client = _client(run, needed) if needed else None
    cache = S3Cache(root)
    stream = progress or sys.stderr
    for channel in run.channels:
        if channel.is_s3:
            _fetch_channel(client, cache, channel, layout.channel_dir(channel.name), echo, stream)
    if run.source_archive:
        archive = _source_archive(client, cache, run.source_archive, layout, echo, stream)
        unpack_source(archive, layout.code_dir, f"the training script archive {run.source_archive}")
        if not (layout.code_dir / run.entry_point).is_file():
            raise ContainerError(
                f"the training script archive {run.source_archive} has no entry point "
                f"{run.entry_point!r} (the plan's sagemaker_program)"
            )


def _client(run: TrainingRun, needed: list[str]) -> Any:
    import boto3  # only jobs with S3 inputs pay for importing boto3
    from botocore.config import Config

    session = boto3.Session(region_name=run.region or None)
    if session.get_credentials() is None:
        raise ContainerError(
            "this job reads from S3 and no AWS credentials were found: "
            + "; ".join(needed)
            + ". Configure credentials that may read them (aws configure, AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; s3:ListBucket and s3:GetObject), "
            "or read channels from local copies (trainspec run --local --channel NAME=PATH)"
        )
    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10)
    return session.client("s3", config=config)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `uri`; the bucket becomes a folder of the cache, so it is checked."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ContainerError(f"{uri} does not name an S3 bucket")
    return bucket, key


def _fetch_channel(
    client: Any,
    cache: S3Cache,
    channel: Channel,
    target: Path,
    echo: Callable[[str], None],
    stream: TextIO,
) -> None:
    what = f"channel {channel.name!r}"
    if channel.s3_data_type != "S3Prefix":
        raise ContainerError(
            f"{what}: local runs read S3Prefix channels only, not {channel.s3_data_type} "
            f"({channel.uri})"
        )
    bucket, prefix = split_s3_uri(channel.uri)
    with _s3_errors(what, channel.uri):
        objects = list(_list(client, bucket, prefix))
    if not objects:
        raise ContainerError(f"{what}: no objects under {channel.uri}")
    # SageMaker keeps each key's path after the prefix's last `/`: `train/` gives
    # `a/b.csv` for `train/a/b.csv`, `models/m.tar.gz` gives `m.tar.gz`.
    cut = prefix.rfind("/") + 1
    for obj in objects:
        relative = obj.key[cut:]
        if any(part in ("", ".", "..") for part in relative.split("/")):
            raise ContainerError(
                f"{what}: the S3 key {obj.key!r} has an empty, '.' or '..' path segment, "
                "so it cannot be a file of the channel folder"
            )
        path = _get(client, cache, obj, what, echo, stream)
        try:
            _place(path, target / relative)
        except OSError as exc:
            raise InputsUnavailable(
                f"{what}: cannot put {obj.uri} into {target}: {exc.strerror or exc}"
            ) from None


def _list(client: Any, bucket: str, prefix: str) -> Iterator[S3Object]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):  # a console "folder", not data
                yield S3Object(bucket, item["Key"], item["ETag"].strip('"'), int(item["Size"]))


def _head(client: Any, uri: str) -> S3Object:
    bucket, key = split_s3_uri(uri)
    head = client.head_object(Bucket=bucket, Key=key)
    return S3Object(bucket, key, head["ETag"].strip('"'), int(head["ContentLength"]))


def _get(
    client: Any,
    cache: S3Cache,
    obj: S3Object,
    what: str,
    echo: Callable[[str], None],
    stream: TextIO,
) -> Path:
    """The cached file of `obj`, downloaded unless the cache has this version. An object
    that changes on S3 meanwhile is asked for once more, as it is now."""
    from botocore.exceptions import ClientError

    with _s3_errors(what, obj.uri):
        for attempt in range(2):
            cached = cache.cached(obj)
            if cached is not None:
                echo(f"[trainspec] {obj.uri}: cached ({_size(obj.size)})\n")
                return cached
            progress = Progress(obj, stream) if obj.size >= PROGRESS_BYTES else None
            try:
                path = cache.download(client, obj, progress)
            except ObjectChanged as exc:
                problem = str(exc)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                    raise
                problem = f"{obj.uri} changed on S3 while it was downloaded"
            else:
                echo(f"[trainspec] {obj.uri}: downloaded ({_size(obj.size)})\n")
                return path
            if attempt:
                raise ContainerError(f"{what}: {problem}, twice; run again")
            obj = _head(client, obj.uri)
    raise AssertionError("unreachable: the loop returns or raises")


def _source_archive(
    client: Any,
    cache: S3Cache,
    uri: str,
    layout: JobLayout,
    echo: Callable[[str], None],
    stream: TextIO,
) -> Path:
    """The archive `sagemaker_submit_directory` names: on S3, or a file of one of the job's
    channels (`/opt/ml/input/data/code/...` under network isolation)."""
    what = "the training script archive"
    if uri.startswith("s3://"):
        with _s3_errors(what, uri):
            obj = _head(client, uri)
        return _get(client, cache, obj, what, echo, stream)
    inside = posixpath.normpath(uri)
    if not inside.startswith(CONTAINER_BASE):
        raise ContainerError(
            f"{what} {uri!r} (sagemaker_submit_directory) is neither an s3:// URI nor a "
            f"path under {CONTAINER_BASE}"
        )
    path = layout.job_dir / inside.removeprefix(CONTAINER_BASE)
    if not path.exists():
        raise ContainerError(
            f"{what} {uri} (sagemaker_submit_directory) is not among the job's inputs: "
            f"{path} does not exist"
        )
    return path


def _place(cached: Path, dest: Path) -> None:
    """A hard link to the cached file (no copy of big weights), a copy across devices."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(cached, dest)
    except OSError:
        shutil.copyfile(cached, dest)


@contextlib.contextmanager
def _s3_errors(what: str, uri: str) -> Iterator[None]:
    """botocore's errors as ContainerError (the input or the credentials are wrong) or
    InputsUnavailable (S3, the network or the disk failed)."""
    from botocore import exceptions as bce

    try:
        yield
    except (
        bce.NoCredentialsError,
        bce.PartialCredentialsError,
        bce.CredentialRetrievalError,
        bce.TokenRetrievalError,
        bce.SSOError,
    ) as exc:
        raise ContainerError(
            f"{what}: the AWS credentials cannot be used to read {uri}: {exc} "
            "(configure them: aws configure, aws sso login, AWS_PROFILE)"
        ) from None
    except bce.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _DENIED or status == 403:
            raise ContainerError(
                f"{what}: access to {uri} was denied ({code}): the AWS credentials in use "
                "need s3:ListBucket on its bucket and s3:GetObject on its objects"
            ) from None
        if code == "NoSuchBucket":
            raise ContainerError(f"{what}: the bucket of {uri} does not exist") from None
        if code in _MISSING or status == 404:
            raise ContainerError(f"{what}: {uri} does not exist") from None
        if 400 <= status < 500:
            message = error.get("Message", "")
            raise ContainerError(f"{what}: S3 refused {uri}: {code}: {message}") from None
        raise InputsUnavailable(
            f"{what}: S3 failed to serve {uri} ({code or status}); run again later"
        ) from None
    except bce.BotoCoreError as exc:
        raise InputsUnavailable(
            f"{what}: cannot reach S3 for {uri}: {exc}; check the network (and "
            "AWS_ENDPOINT_URL if set), then run again: what was downloaded is cached"
        ) from None
    except OSError as exc:
        raise InputsUnavailable(
            f"{what}: cannot store {uri} in the download cache: {exc.strerror or exc}"
        ) from None


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"
