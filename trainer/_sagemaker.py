"""Send plans to SageMaker with boto3, follow and stop the jobs; AWS errors as clear messages."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from trainspec.trainer._vendor import extra_source_files
from trainspec.v1 import plan_pb2

USER_AGENT = "trainspec"
# botocore's "standard" retry mode retries throttling and transient errors with backoff,
# as AWS recommends; the attempt count is the total, first call included.
MAX_ATTEMPTS = 5
_ACTIVE = ("InProgress", "Stopping")


class AwsError(Exception):
    """AWS refused or could not be reached; the message says why and what to do."""


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    s3: Any
    logs: Any = None  # CloudWatch Logs, read when following a job


def make_clients(
    *, region: str | None = None, endpoint_url: str | None = None, max_attempts: int = MAX_ATTEMPTS
) -> Clients:
    """boto3 clients from the usual credential chain; `endpoint_url` is for tests (moto).
    Following a job passes `max_attempts=1`: the follower backs off at its own pace."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        user_agent_extra=USER_AGENT,
        # Path-style keeps S3 working against a loopback endpoint such as moto's server.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    try:
        session = boto3.Session(region_name=region or None)
        if session.region_name is None:
            raise AwsError(
                "no AWS region: set training.region in the spec or defaults file, pass "
                "--region, or set AWS_REGION"
            )
        return Clients(
            sagemaker=session.client("sagemaker", endpoint_url=endpoint_url, config=config),
            s3=session.client("s3", endpoint_url=endpoint_url, config=config),
            logs=session.client("logs", endpoint_url=endpoint_url, config=config),
        )
    except BotoCoreError as exc:
        raise AwsError(explain(exc)) from None


def explain(exc: BaseException, *, name: str = "") -> str:
    """A user-facing message for a boto3/botocore exception."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return (
            "no AWS credentials found: run `aws configure`, set AWS_PROFILE, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, bex.NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, bex.EndpointConnectionError):
        return f"cannot reach AWS: {exc}"
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")).strip()
        operation = exc.operation_name
        if code in {
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "SlowDown",
        }:
            return (
                f"AWS throttled {operation} and it still failed after {MAX_ATTEMPTS} attempts "
                f"with backoff: {message}; wait and try again"
            )
        if code in {
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
        }:
            return f"AWS rejected the credentials ({code}): {message}; refresh them"
        if code in {"AccessDenied", "AccessDeniedException"}:
            return f"access denied for {operation}: {message}"
        if code == "ResourceLimitExceeded":
            return f"SageMaker resource limit reached: {message}; ask AWS for a quota increase"
        if code == "ResourceInUse":
            return f"a SageMaker job named {name!r} already exists: {message}; rename the job"
        if code in {"ResourceNotFound", "NoSuchKey", "404"}:
            return f"not found ({operation}): {message or name}"
        if code == "NoSuchBucket":
            return f"the S3 bucket does not exist: {message}; fix output.path in the defaults"
        if code == "ValidationException":
            return f"SageMaker rejected {operation}: {message}"
        if (code.isdigit() and int(code) >= 500) or code in {
            "InternalFailure",
            "ServiceUnavailable",
        }:
            return (
                f"AWS had an internal error on {operation} (HTTP {code}) and retries did not "
                "help; try again later"
            )
        return f"{operation} failed ({code}): {message}"
    return f"AWS call failed: {exc}"


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def request_kwargs(plan: plan_pb2.Plan, client: Any) -> dict[str, Any]:
    """The plan's request as boto3 keyword arguments: its `sagemaker_request_json`, or for
    a plan made before that field existed, its Struct typed by the client's model."""
    if plan.sagemaker_request_json:
        return json.loads(plan.sagemaker_request_json)
    return boto3_kwargs(
        client, plan.sagemaker_operation, json_format.MessageToDict(plan.sagemaker_request)
    )


def boto3_kwargs(client: Any, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's request with integers restored (a protobuf Struct keeps every number as a
    float), following the operation's shapes in botocore's service model."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    return _coerce(dict(request), shape)


def _coerce(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        return {
            k: _coerce(v, shape.members[k]) if k in shape.members else v for k, v in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_coerce(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _coerce(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _training_parts(plan: plan_pb2.Plan) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(resolved training spec, request part with InputDataConfig, hyperparameters)."""
    request = json_format.MessageToDict(plan.sagemaker_request)
    if plan.sagemaker_operation == "CreateTrainingJob":
        return plan.job.training, request, request.get("HyperParameters", {})
    definition = request.get("TrainingJobDefinition", {})
    return plan.job.tuning.training, definition, definition.get("StaticHyperParameters", {})


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def source_archive(source_dir: Path, extra: Mapping[str, bytes] | None = None) -> bytes:
    """sourcedir.tar.gz as the SageMaker Python SDK makes it: the folder's contents at the
    archive root, caches left out; plus `extra` files (archive path -> bytes, see _vendor)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source_dir.rglob("*")):
            relative = path.relative_to(source_dir)
            if any(part in {"__pycache__", ".git"} for part in relative.parts) or path.is_dir():
                continue
            tar.add(path, arcname=str(relative), recursive=False)
        for name, content in sorted((extra or {}).items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def uploads(plan: plan_pb2.Plan, base: Path | None = None) -> list[tuple[Path, str]]:
    """(local path, s3 URI) pairs `submit` uploads before creating the job: the source
    folder's archive (script mode) and each local data channel. The plan's local paths are
    relative to `base` (its spec's project root; by default the working directory)."""
    base = base or Path()
    spec, part, hyperparameters = _training_parts(plan)
    pairs: list[tuple[Path, str]] = []
    submit_dir = hyperparameters.get("sagemaker_submit_directory", "")
    if spec.model.WhichOneof("kind") == "framework" and submit_dir.startswith("s3://"):
        pairs.append((base / (spec.model.framework.source_dir or "."), submit_dir))
    planned = {
        c["ChannelName"]: c.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
        for c in part.get("InputDataConfig", [])
    }
    for name in sorted(spec.data):
        uri = spec.data[name].uri
        if uri and not uri.startswith("s3://") and planned.get(name, "").startswith("s3://"):
            pairs.append((base / uri.removeprefix("file://"), planned[name]))
    return pairs


def upload(clients: Clients, plan: plan_pb2.Plan, base: Path | None = None) -> list[str]:
    """Upload the plan's local inputs to their planned S3 locations; return the URIs.
    A sifting job's source carries the sifting package (trainspec is not in SageMaker's
    containers). Local paths are relative to `base`."""
    sifts = _training_parts(plan)[0].HasField("sifting")
    done = []
    for local, uri in uploads(plan, base):
        bucket, key = _split(uri)
        try:
            if uri.endswith(".tar.gz"):
                extra = extra_source_files(local, sifting=sifts)
                clients.s3.put_object(Bucket=bucket, Key=key, Body=source_archive(local, extra))
                done.append(uri)
                continue
            if not local.exists():
                raise AwsError(f"local data {local} does not exist")
            files = (
                [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
            )
            for path in files:
                relative = path.name if local.is_file() else path.relative_to(local).as_posix()
                target = key.rstrip("/") + "/" + relative if key else relative
                clients.s3.upload_file(str(path), bucket, target)
                done.append(f"s3://{bucket}/{target}")
        except _aws_errors() as exc:
            raise AwsError(f"uploading {local} to {uri}: {explain(exc)}") from None
        except OSError as exc:
            raise AwsError(f"reading {local}: {exc.strerror or exc}") from None
    return done


@dataclass(frozen=True)
class Submitted:
    name: str
    arn: str
    operation: str
    uploaded: tuple[str, ...]
    # True when a job of this name already existed: the same plan was submitted before
    # (the name carries a digest of the request), so nothing was uploaded or created.
    existing: bool = False
    status: str = ""


def job_name(plan: plan_pb2.Plan) -> str:
    request = plan.sagemaker_request
    key = (
        "TrainingJobName"
        if plan.sagemaker_operation == "CreateTrainingJob"
        else "HyperParameterTuningJobName"
    )
    return request.fields[key].string_value if key in request.fields else ""


def plan_region(plan: plan_pb2.Plan) -> str:
    spec = plan.job.training if plan.job.HasField("training") else plan.job.tuning.training
    return spec.region


def submit(plan: plan_pb2.Plan, clients: Clients, base: Path | None = None) -> Submitted:
    """Upload local inputs, then call the plan's operation with exactly its request.

    Idempotent: the job's name ends in a digest of the request, so a job of that name is
    this plan, submitted before; it is described and returned instead (its inputs, already
    uploaded, are left as they are). Local paths are relative to `base`.
    """
    operation = plan.sagemaker_operation
    if operation not in ("CreateTrainingJob", "CreateHyperParameterTuningJob"):
        raise AwsError(f"cannot submit a plan for {operation or 'no operation'}")
    name = job_name(plan)
    kind = "training" if operation == "CreateTrainingJob" else "tuning"
    existing = _existing(name, kind, clients)
    if existing is not None:
        return existing
    kwargs = request_kwargs(plan, clients.sagemaker)
    uploaded = upload(clients, plan, base)
    try:
        if operation == "CreateTrainingJob":
            arn = clients.sagemaker.create_training_job(**kwargs)["TrainingJobArn"]
        else:
            response = clients.sagemaker.create_hyper_parameter_tuning_job(**kwargs)
            arn = response["HyperParameterTuningJobArn"]
    except _aws_errors() as exc:
        if _in_use(exc):  # submitted at the same moment from elsewhere
            existing = _existing(name, kind, clients)
            if existing is not None:
                return existing
        raise AwsError(explain(exc, name=name)) from None
    return Submitted(name, arn, operation, tuple(uploaded))


def _existing(name: str, kind: str, clients: Clients) -> Submitted | None:
    """The job called `name` of this kind, or None when there is none."""
    try:
        if kind == "training":
            response = clients.sagemaker.describe_training_job(TrainingJobName=name)
            arn, status = response["TrainingJobArn"], response.get("TrainingJobStatus", "")
            operation = "CreateTrainingJob"
        else:
            response = clients.sagemaker.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name
            )
            arn = response["HyperParameterTuningJobArn"]
            status = response.get("HyperParameterTuningJobStatus", "")
            operation = "CreateHyperParameterTuningJob"
    except _aws_errors() as exc:
        # Without permission to describe, create decides: a second submit of the same
        # plan then fails with "already exists" instead of reporting the job.
        if _not_found(exc) or _access_denied(exc):
            return None
        raise AwsError(explain(exc, name=name)) from None
    return Submitted(name, arn, operation, (), existing=True, status=status)


def _access_denied(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "AccessDenied",
        "AccessDeniedException",
    )


def _in_use(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "ResourceInUse",
        "ResourceInUseException",
    )


def _not_found(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    # SageMaker answers a missing training job with ValidationException, a missing tuning
    # job with ResourceNotFound.
    return error.get("Code") == "ResourceNotFound" or (
        error.get("Code") == "ValidationException"
        and ("not find" in error.get("Message", "") or "not found" in error.get("Message", ""))
    )


def describe(name: str, clients: Clients) -> tuple[str, dict[str, Any]]:
    """('training' | 'tuning', the Describe* response) of the job called `name`."""
    try:
        response = clients.sagemaker.describe_training_job(TrainingJobName=name)
        return "training", response
    except _aws_errors() as exc:
        if not _not_found(exc):
            raise AwsError(explain(exc, name=name)) from None
    try:
        response = clients.sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name
        )
        return "tuning", response
    except _aws_errors() as exc:
        if _not_found(exc):
            raise AwsError(
                f"no SageMaker training or tuning job named {name!r} in this account and region"
            ) from None
        raise AwsError(explain(exc, name=name)) from None


def stop(name: str, clients: Clients) -> tuple[str, str]:
    """Stop the job; returns (kind, the status it had). A finished job is left alone."""
    kind, response = describe(name, clients)
    status = response.get(
        "TrainingJobStatus" if kind == "training" else "HyperParameterTuningJobStatus", ""
    )
    if status not in _ACTIVE:
        return kind, status
    try:
        if kind == "training":
            clients.sagemaker.stop_training_job(TrainingJobName=name)
        else:
            clients.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except _aws_errors() as exc:
        raise AwsError(explain(exc, name=name)) from None
    return kind, status


def autotune_comparison(
    plan_request: Mapping[str, Any], response: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """(setting, the plan's value, SageMaker's value) for the tuning settings Autotune may
    choose, so `describe` shows what SageMaker picked beside what the plan asked for."""
    import json

    planned = plan_request.get("HyperParameterTuningJobConfig", {})
    chosen = response.get("HyperParameterTuningJobConfig", {})
    rows = []
    for key in (
        "Strategy",
        "TrainingJobEarlyStoppingType",
        "ResourceLimits",
        "ParameterRanges",
        "TuningJobCompletionCriteria",
    ):
        mine, theirs = planned.get(key), chosen.get(key)
        if mine is None and theirs is None:
            continue
        rows.append(
            (
                key,
                "(SageMaker chooses)"
                if mine is None
                else json.dumps(mine, sort_keys=True, default=str),
                "(not reported)"
                if theirs is None
                else json.dumps(theirs, sort_keys=True, default=str),
            )
        )
    return rows
