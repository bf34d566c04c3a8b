"""Hostile Compile requests over real gRPC: each is INVALID_ARGUMENT with located
diagnostics, never INTERNAL (tests/compiler/test_hostile_fields.py walks every field of
a spec file; these are what only a request can carry)."""

from __future__ import annotations

import grpc
import pytest
from grpc_status import rpc_status
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import job_spec_pb2


def _spec() -> job_spec_pb2.JobSpec:
    spec = job_spec_pb2.JobSpec()
    training = spec.training
    training.name = "hostile"
    training.model.image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"
    training.data["train"].uri = "s3://bucket-a/x/"
    training.compute.instance_type = "ml.m5.large"
    training.role_arn = "arn:aws:iam::123456789012:role/Trainer"
    training.region = "us-east-1"
    training.output.path = "s3://bucket-a/out/"
    return spec


def _with(change) -> pb.CompileRequest:
    spec = _spec()
    change(spec.training)
    return pb.CompileRequest(spec=spec, validate_only=True)


def _defaults(content: str, path: str = "trainspec.defaults.yaml") -> pb.CompileRequest:
    return pb.CompileRequest(
        spec=_spec(), defaults=[pb.SourceFile(path=path, content=content)], validate_only=True
    )


REQUESTS = {
    "NaN hyperparameter": _with(
        lambda t: setattr(t.hyperparameters["lr"], "number_value", float("nan"))
    ),
    "infinite hyperparameter": _with(
        lambda t: setattr(t.hyperparameters["lr"], "number_value", float("inf"))
    ),
    "struct hyperparameter": _with(lambda t: t.hyperparameters["lr"].struct_value.update({})),
    "null hyperparameter": _with(lambda t: setattr(t.hyperparameters["lr"], "null_value", 0)),
    "NaN beta": _with(lambda t: setattr(t.sifting, "beta_value", float("nan"))),
    "unknown enum number": _with(lambda t: setattr(t.data["train"], "input_mode", 99)),
    "partial VPC": _with(lambda t: t.network.subnets.append("subnet-0123abcd")),
    "long environment value": _with(lambda t: t.environment.update({"NOTE": "x" * 513})),
    "21 channels": _with(lambda t: [t.data[f"c{i}"].MergeFrom(t.data["train"]) for i in range(20)]),
    # script mode: trainspec adds the batch size and three sagemaker_* entries
    "97 hyperparameters in script mode": _with(
        lambda t: (
            t.model.framework.MergeFrom(
                job_spec_pb2.FrameworkModel(name="pytorch", version="2.1", entry_point="train.py")
            ),
            setattr(t, "per_device_batch_size", 8),
            [setattr(t.hyperparameters[f"h{i}"], "number_value", i) for i in range(97)],
        )
    ),
    "mistyped S3 scheme": _with(lambda t: setattr(t.data["train"], "uri", "s3//bucket-a/x/")),
    "empty spec": pb.CompileRequest(spec=job_spec_pb2.JobSpec(), validate_only=True),
    "source without a format": pb.CompileRequest(
        source=pb.SourceFile(path="spec", content="training: {}"), validate_only=True
    ),
    "binary source": pb.CompileRequest(
        source=pb.SourceFile(path="spec.yaml", content="\x00\x01"), validate_only=True
    ),
    "5000-digit number": pb.CompileRequest(
        source=pb.SourceFile(
            path="spec.json", content='{"training": {"max_retry_attempts": ' + "9" * 5000 + "}}"
        ),
        validate_only=True,
    ),
    "defaults not a mapping": _defaults("- 1"),
    "defaults of another format": _defaults("x", path="defaults.txt"),
    "defaults with a broken catalog": _defaults("catalog: {instances: {ml.x.y: {gpus: -1}}}"),
    "deeply nested override": pb.CompileRequest(
        spec=_spec(),
        overrides=["training.hyperparameters.x=" + "[" * 3000 + "]" * 3000],
        validate_only=True,
    ),
    "unreadable overrides": pb.CompileRequest(
        spec=_spec(), overrides=["=", "training.", "training..x=1"], validate_only=True
    ),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_a_hostile_request_is_invalid_argument(name, stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Compile(REQUESTS[name], timeout=30)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    listed = pb.DiagnosticList()
    status = rpc_status.from_call(error)
    assert any(d.Unpack(listed) for d in status.details if d.Is(listed.DESCRIPTOR))
    assert listed.diagnostics
    assert all(d.location.path and d.message for d in listed.diagnostics), listed
