"""Opt-in online checks (`trainspec compile --preflight`): S3 data exists in the job's
region, and the earlier model of incremental training is there.

The only part of the compiler that talks to the network; boto3 is imported here only.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Location, format_path
from trainspec.compiler._infer import Inferred
from trainspec.compiler.lower._incremental import StartModel, start_model


def preflight(
    inferred: Inferred, locate: Callable[[FieldPath], Location | None]
) -> list[Diagnostic]:
    """One diagnostic per S3 channel that is missing, empty or in another region."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    training = inferred.training
    region = training.get("region", "")
    s3 = boto3.client("s3", region_name=region or None)
    problems: list[Diagnostic] = []
    base = inferred.resolved.training_path
    for channel, spec in sorted(training.get("data", {}).items()):
        uri = spec.get("uri", "")
        if not uri.startswith("s3://"):
            continue
        path = base + ("data", channel, "uri")

        def problem(code: str, message: str, hint: str = "", *, _path: FieldPath = path) -> None:
            problems.append(Diagnostic(code, format_path(_path), message, hint, locate(_path)))

        parsed = urlparse(uri)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        try:
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
            bucket_region = location or "us-east-1"
            if region and bucket_region != region:
                problem(
                    "preflight.bucket_region",
                    f"bucket {bucket} is in {bucket_region}, the job runs in {region}",
                    "SageMaker reads training data from the job's region only",
                )
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            if not listed.get("KeyCount"):
                problem(
                    "preflight.no_data", f"nothing under {uri}", "upload the data or fix the prefix"
                )
        except NoCredentialsError:
            problem(
                "preflight.no_credentials",
                "no AWS credentials to check S3 with",
                "configure credentials (AWS_PROFILE, aws configure) or drop --preflight",
            )
            break
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            problem(
                "preflight.s3_error",
                f"cannot read {uri}: {code}",
                "check the bucket name and that your role may list it",
            )
        except BotoCoreError as exc:
            problem("preflight.s3_error", f"cannot reach S3 for {uri}: {type(exc).__name__}")
    start = start_model(training)
    if start is not None and start.uri:
        path = base + ("model", start.field)
        problems.extend(
            Diagnostic(code, format_path(path), message, hint, locate(path))
            for code, message, hint in _start_problems(start, region)
        )
    return problems


def _start_problems(start: StartModel, region: str) -> list[tuple[str, str, str]]:
    """(code, message, hint) for an earlier model that is missing, unfinished, elsewhere."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    problems: list[tuple[str, str, str]] = []
    try:
        if start.parent_job:
            sagemaker = boto3.client("sagemaker", region_name=region or None)
            try:
                job = sagemaker.describe_training_job(TrainingJobName=start.parent_job)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                return [
                    (
                        "preflight.parent_missing",
                        f"no training job {start.parent_job} in {region}",
                        "name the job as SageMaker knows it, with its digest "
                        "(`trainspec describe` shows it)",
                    )
                ]
            status = job.get("TrainingJobStatus", "")
            actual = job.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
            if status != "Completed":
                problems.append(
                    (
                        "preflight.parent_not_completed",
                        f"training job {start.parent_job} is {status}, not Completed",
                        "continue from a job whose model is written",
                    )
                )
            elif actual and actual != start.uri:
                problems.append(
                    (
                        "preflight.parent_artifact",
                        f"training job {start.parent_job} wrote its model to {actual}, not "
                        f"{start.uri} (it had another output path)",
                        f"set model.from_artifact: {actual}",
                    )
                )
            return problems
        bucket, _, key = start.uri.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", region_name=region or None)
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        if region and location != region:
            problems.append(
                (
                    "preflight.bucket_region",
                    f"bucket {bucket} is in {location}, the job runs in {region}",
                    "SageMaker reads input channels from the job's region only",
                )
            )
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        if not listed.get("KeyCount") or (
            not key.endswith("/") and listed["Contents"][0]["Key"] != key
        ):
            problems.append(
                ("preflight.no_model", f"no model at {start.uri}", "check the artifact's URI")
            )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        problems.append(
            (
                "preflight.model_error",
                f"cannot check {start.uri}: {code}",
                "check the name and that your credentials may read it",
            )
        )
    except BotoCoreError as exc:
        problems.append(
            ("preflight.model_error", f"cannot reach AWS for {start.uri}: {type(exc).__name__}", "")
        )
    return problems
