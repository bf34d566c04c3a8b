"""What the SageMaker Python SDK v2's JumpStartEstimator sends, built offline.

Run with the SDK's own interpreter (.venv-sdk), never imported by the test suite: reads a
JSON list of cases from the file named first ({spec, region, instance_type, hyperparameters,
inputs, job_name, role, output_path}) and writes the CreateTrainingJob arguments of each to
the file named second (the SDK logs to stdout).

As the SDK's unit tests do (tests/unit/sagemaker/jumpstart/utils.py), the spec JSON goes
in through `JumpStartModelsAccessor.get_model_specs`; the model type check, telemetry and
the SageMaker client are stubbed, so nothing reaches the network. `fit` runs for real up
to `create_training_job`, whose keyword arguments are captured.
"""

import json
import sys
from unittest import mock

from sagemaker.jumpstart.enums import JumpStartModelType
from sagemaker.jumpstart.estimator import JumpStartEstimator
from sagemaker.jumpstart.types import JumpStartModelSpecs
from sagemaker.session import Session


def _session(region: str, captured: list) -> Session:
    boto_session = mock.MagicMock(name="boto_session", region_name=region)
    client = mock.MagicMock(name="sagemaker_client")
    client.create_training_job.side_effect = lambda **kwargs: captured.append(kwargs) or {}
    session = Session(
        boto_session=boto_session,
        sagemaker_client=client,
        sagemaker_runtime_client=mock.MagicMock(),
        default_bucket="unused-default-bucket",
        sagemaker_config={},
    )
    session._default_bucket = "unused-default-bucket"
    return session


def request(case: dict) -> dict:
    with open(case["spec"], encoding="utf-8") as f:
        spec = json.load(f)
    captured: list = []
    session = _session(case["region"], captured)
    with (
        mock.patch(
            "sagemaker.jumpstart.accessors.JumpStartModelsAccessor.get_model_specs",
            side_effect=lambda **_: JumpStartModelSpecs(spec),
        ),
        mock.patch(
            "sagemaker.jumpstart.utils.validate_model_id_and_get_type",
            return_value=JumpStartModelType.OPEN_WEIGHTS,
        ),
        mock.patch(
            "sagemaker.jumpstart.estimator.validate_model_id_and_get_type",
            return_value=JumpStartModelType.OPEN_WEIGHTS,
        ),
        mock.patch("sagemaker.telemetry.telemetry_logging._send_telemetry_request"),
        mock.patch("sagemaker.session.Session.upload_data", side_effect=AssertionError("upload")),
    ):
        estimator = JumpStartEstimator(
            model_id=spec["model_id"],
            model_version=spec["version"],
            region=case["region"],
            instance_type=case["instance_type"],
            hyperparameters=case.get("hyperparameters") or None,
            role=case["role"],
            output_path=case["output_path"],
            model_uri=case.get("model_uri"),  # incremental training
            sagemaker_session=session,
        )
        estimator.fit(inputs=case.get("inputs"), job_name=case["job_name"], wait=False, logs=False)
    (kwargs,) = captured
    return kwargs


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    requests = [request(case) for case in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(requests, f, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
