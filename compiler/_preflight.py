"""Opt-in online checks (`trainspec compile --preflight`): S3 data exists in the job's region.

The only part of the compiler that talks to the network; boto3 is imported here only.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from trainspec.compiler._diagnostics import Diagnostic, FieldPath, Location, format_path
from trainspec.compiler._infer import Inferred


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

        def problem(code: str, message: str, hint: str = "", *, _path=path) -> None:
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
    return problems
