"""Calls trainspec.v1.CompilerService from Python: compile a spec, print the plan or errors.

    python client.py [--address 127.0.0.1:50051] [--ca ca.pem] [--token T] SPEC_FILE

Needs grpcio, grpcio-status, googleapis-common-protos and the trainspec.v1 messages
(`pip install trainspec`, or generate them from proto/ with grpcio-tools).
Exit codes: 0 compiled, 1 the spec is invalid, 2 any other failure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc


def _print_details(error: grpc.RpcError) -> None:
    print(f"{error.code().name}: {error.details()}")
    status = rpc_status.from_call(error)  # None when the server sent no details
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                print(f"  {violation.field}: {violation.description} [{violation.reason}]")
        elif detail.Is(pb.DiagnosticList.DESCRIPTOR):
            diagnostics = pb.DiagnosticList()
            detail.Unpack(diagnostics)
            for d in diagnostics.diagnostics:
                where = f"{d.location.path}:{d.location.line}:{d.location.column}"
                print(f"  {where} {d.code}: {d.message}" + (f" (hint: {d.hint})" if d.hint else ""))
        elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            info = error_details_pb2.RequestInfo()
            detail.Unpack(info)
            print(f"  request id: {info.request_id}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=pathlib.Path)
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--ca", type=pathlib.Path, help="CA certificate (PEM) for TLS")
    parser.add_argument("--token", help="bearer token, when the server asks for one")
    args = parser.parse_args()

    if args.ca:
        channel = grpc.secure_channel(
            args.address, grpc.ssl_channel_credentials(args.ca.read_bytes())
        )
    else:
        channel = grpc.insecure_channel(args.address)
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    request = pb.CompileRequest(
        source=pb.SourceFile(path=args.spec.name, content=args.spec.read_text())
    )
    with channel:
        stub = pb_grpc.CompilerServiceStub(channel)
        try:
            response = stub.Compile(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            _print_details(error)
            return 1 if error.code() is grpc.StatusCode.INVALID_ARGUMENT else 2
    plan = response.plan
    print(f"operation: {plan.sagemaker_operation}")
    print(f"digest: {plan.digest}")
    # sagemaker_request_json keeps botocore's types (InstanceCount: 1); the Struct beside
    # it holds every number as a double, which boto3 refuses for integer members.
    request = (
        json.loads(plan.sagemaker_request_json)
        if plan.sagemaker_request_json
        else json_format.MessageToDict(plan.sagemaker_request)
    )
    print(json.dumps(request, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
