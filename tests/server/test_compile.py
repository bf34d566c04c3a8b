"""Compile over real gRPC: plans, rich INVALID_ARGUMENT details, validate_only, INTERNAL."""

from __future__ import annotations

import json
import re

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from trainspec.server import CompilerServicer
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc
from trainspec.v1 import job_spec_pb2


def details(error: grpc.RpcError) -> dict[str, object]:
    """The status details of a failed call, unpacked by type name."""
    status = rpc_status.from_call(error)
    assert status is not None, "the server sent no google.rpc.Status"
    assert status.code == error.code().value[0]
    out = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RequestInfo,
        pb.DiagnosticList,
    ):
        for packed in status.details:
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                out[kind.DESCRIPTOR.name] = message
    return out


def fail(call, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, **kwargs)
    return caught.value


def test_compiles_a_source_file(stub, source):
    response = stub.Compile(pb.CompileRequest(source=source("valid.yaml")), timeout=30)
    plan = response.plan
    assert plan.sagemaker_operation == "CreateTrainingJob"
    assert plan.digest.startswith("sha256:")
    # The spec's name and a digest of the request (reruns find their job).
    assert re.fullmatch(r"grpc-sentiment-[0-9a-f]{8}", plan.sagemaker_request["TrainingJobName"])
    request = json.loads(plan.sagemaker_request_json)
    assert request["ResourceConfig"]["InstanceCount"] == 1
    assert type(request["ResourceConfig"]["InstanceCount"]) is int
    assert plan.sagemaker_request["ResourceConfig"]["InstanceType"] == "ml.p3.8xlarge"
    # 16 per device x 4 GPUs of an ml.p3.8xlarge
    assert plan.batch_sizes.per_instance == 64


def test_compiles_a_job_spec_message_to_the_same_request(stub, source):
    spec = job_spec_pb2.JobSpec()
    training = spec.training
    training.name = "grpc-sentiment"
    training.model.pretrained = "huggingface-spc-bert-base-cased"
    training.data["train"].uri = "s3://acme-ml/sentiment/train/"
    training.compute.instance_type = "ml.p3.8xlarge"
    training.per_device_batch_size = 16
    training.hyperparameters["epochs"].number_value = 2
    training.hyperparameters["learning_rate"].number_value = 5e-5
    training.role_arn = "arn:aws:iam::123456789012:role/SageMakerTraining"
    training.region = "us-east-1"
    training.output.path = "s3://acme-ml/output/"
    from_message = stub.Compile(pb.CompileRequest(spec=spec), timeout=30).plan
    from_file = stub.Compile(pb.CompileRequest(source=source("valid.yaml")), timeout=30).plan
    # A message carries numbers, not their spelling: compare hyperparameters as numbers.
    message_request = json_format.MessageToDict(from_message.sagemaker_request)
    file_request = json_format.MessageToDict(from_file.sagemaker_request)
    message_hp = message_request.pop("HyperParameters")
    file_hp = file_request.pop("HyperParameters")
    # ... and the name's digest covers the request as spelled ("5e-05" beside "5e-5"); a
    # JumpStart job's sagemaker_job_name is that name.
    assert message_hp.pop("sagemaker_job_name") == message_request["TrainingJobName"]
    assert file_hp.pop("sagemaker_job_name") == file_request["TrainingJobName"]
    message_name = message_request.pop("TrainingJobName")
    file_name = file_request.pop("TrainingJobName")
    assert message_name.startswith("grpc-sentiment-") and file_name.startswith("grpc-sentiment-")
    assert message_request == file_request

    def numbers(hyperparameters: dict) -> dict:
        return {k: _number(v) for k, v in hyperparameters.items()}

    assert numbers(message_hp) == numbers(file_hp)


def test_invalid_spec_is_invalid_argument_with_every_detail(stub, source):
    error = fail(stub.Compile, pb.CompileRequest(source=source("invalid.yaml")), timeout=30)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    found = details(error)
    info = found["ErrorInfo"]
    assert info.reason == "INVALID_SPEC"
    assert info.domain == "trainspec.dev"
    diagnostics = found["DiagnosticList"].diagnostics
    assert int(info.metadata["error_count"]) == len(diagnostics) >= 2
    violations = found["BadRequest"].field_violations
    assert [(v.field, v.description, v.reason) for v in violations] == [
        (d.field_path, d.message, d.code) for d in diagnostics
    ]
    by_field = {v.field: v.reason for v in violations}
    assert by_field["training.hyperparamters"] == "spec.unknown_field"
    assert "training.per_device_batch_size" in by_field
    unknown = next(d for d in diagnostics if d.field_path == "training.hyperparamters")
    assert (unknown.location.path, unknown.location.line) == ("invalid.yaml", 11)
    assert "hyperparameters" in unknown.hint
    # the same request id in the metadata the interceptor sent and in the details
    request_id = dict(error.initial_metadata())["x-request-id"]
    assert found["RequestInfo"].request_id == request_id == info.metadata["request_id"]


def test_a_spec_with_every_field_wrong_reports_each_one(stub, source):
    content = """
training:
  name: "not a valid name!"
  model: {pretrained: 42, image: [1]}
  data: {train: {uri: 7, input_mode: Sideways}}
  compute: {instance_type: {}, instance_count: -1, volume_size_gb: "big", spot: maybe}
  per_device_batch_size: 0
  hyperparameters: [1, 2]
  metrics: {name: x}
  stopping: {max_runtime_seconds: -5}
  output: {path: 3, compression: ZIP}
  role_arn: [arn]
  region: {}
  sifting: {beta_value: "high", loss_history_length: -2}
  colour: blue
"""
    error = fail(stub.Compile, pb.CompileRequest(source=source("wrong.yaml", content)), timeout=30)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = details(error)["BadRequest"].field_violations
    fields = {v.field for v in violations}
    assert len(violations) >= 10, [(v.field, v.reason) for v in violations]
    for expected in ("training.colour", "training.compute.instance_count", "training.region"):
        assert any(f.startswith(expected) for f in fields), (expected, fields)
    assert all(v.reason and v.description for v in violations)


def test_validate_only_returns_no_plan_and_fails_exactly_like_compile(stub, source):
    valid = stub.Compile(
        pb.CompileRequest(source=source("valid.yaml"), validate_only=True), timeout=30
    )
    assert not valid.HasField("plan")
    real = fail(stub.Compile, pb.CompileRequest(source=source("invalid.yaml")), timeout=30)
    dry = fail(
        stub.Compile,
        pb.CompileRequest(source=source("invalid.yaml"), validate_only=True),
        timeout=30,
    )
    assert dry.code() is real.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert details(dry)["DiagnosticList"] == details(real)["DiagnosticList"]


def test_defaults_layers_travel_as_source_files(stub, source):
    content = source("valid.yaml").content.replace("  region: us-east-1\n", "")
    without = fail(stub.Compile, pb.CompileRequest(source=source("spec.yaml", content)), timeout=30)
    assert without.code() is grpc.StatusCode.INVALID_ARGUMENT
    defaults = source("trainspec.defaults.yaml", "training:\n  region: eu-west-1\n")
    response = stub.Compile(
        pb.CompileRequest(source=source("spec.yaml", content), defaults=[defaults]), timeout=30
    )
    assert "eu-west-1" in response.plan.sagemaker_request["AlgorithmSpecification"]["TrainingImage"]


def test_a_request_without_input_is_invalid_argument(stub):
    error = fail(stub.Compile, pb.CompileRequest(), timeout=30)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = details(error)["BadRequest"].field_violations
    assert violation.field == "input"


def test_an_unexpected_exception_is_internal_without_its_text(start_server, caplog, source):
    from trainspec.compiler import load_catalog

    def broken(request):
        raise KeyError("secret-internal-detail")

    running = start_server(servicer=CompilerServicer(broken, load_catalog()))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        stub = pb_grpc.CompilerServiceStub(chan)
        error = fail(stub.Compile, pb.CompileRequest(source=source("valid.yaml")), timeout=30)
        assert error.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in error.details() and "KeyError" not in error.details()
        request_id = details(error)["RequestInfo"].request_id
        assert request_id in error.details()
        # the server keeps serving after it
        assert stub.ListPretrainedModels(pb.ListPretrainedModelsRequest(), timeout=30).models
    events = [getattr(r, "fields", {}) for r in caplog.records]
    logged = [e for e in events if e.get("event") == "internal_error"]
    assert logged and logged[0]["request_id"] == request_id
    assert "secret-internal-detail" in caplog.text


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value  # a JumpStart text hyperparameter, e.g. "Auto"
