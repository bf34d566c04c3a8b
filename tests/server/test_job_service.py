"""JobService over a real gRPC server on loopback: local jobs, SageMaker (moto), errors."""

from __future__ import annotations

import os
import re
import textwrap
import time
from concurrent import futures
from pathlib import Path

import boto3
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from moto.server import ThreadedMotoServer
from trainspec.compiler.check._local_files import LocalFiles
from trainspec.server._job_policy import JobPolicy
from trainspec.server._job_service import JobServicer, add_job_service
from trainspec.trainer._sagemaker import make_clients
from trainspec.v1 import compiler_service_pb2
from trainspec.v1 import job_service_pb2 as pb
from trainspec.v1 import job_service_pb2_grpc as pb_grpc

ROLE = "arn:aws:iam::111122223333:role/SageMakerTrainingRole"


def write_job(root: Path, name: str, script: str, **extra: str) -> compiler_service_pb2.SourceFile:
    """A training spec and its script under `root/<name>/`: the request names it by its
    path relative to the server's files root."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(textwrap.dedent(script))
    lines = [
        "training:",
        f"  name: {name}",
        "  model: {framework: {name: pytorch, version: '2.1', entry_point: train.py, "
        "source_dir: .}}",
        f"  compute: {{instance_type: {extra.get('instance_type', 'ml.m5.large')}}}",
        f"  role_arn: {extra.get('role', ROLE)}",
        "  region: us-east-1",
        "  output: {path: 's3://acme-ml-artifacts/jobs/'}",
        "  metrics: [{name: acc, regex: 'acc=([0-9.]+)'}]",
        f"  stopping: {{max_runtime_seconds: {extra.get('max_runtime', 60)}}}",
    ]
    content = "\n".join(lines) + "\n"
    (folder / "job.yaml").write_text(content)
    return compiler_service_pb2.SourceFile(path=f"{name}/job.yaml", content=content)


def start_server(tmp_path: Path, endpoint: str, policy: JobPolicy):
    servicer = JobServicer(
        tmp_path / "runs",
        policy=policy,
        sagemaker_clients=lambda region: make_clients(region="us-east-1", endpoint_url=endpoint),
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_job_service(server, servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, servicer, grpc.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture
def moto_endpoint():
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(
        Bucket="acme-ml-artifacts"
    )
    yield endpoint
    moto.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def files(tmp_path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    return root


@pytest.fixture
def stub(tmp_path, files, moto_endpoint):
    policy = JobPolicy(backends=frozenset({"local", "sagemaker"}), files=LocalFiles.under(files))
    server, _servicer, channel = start_server(tmp_path, moto_endpoint, policy)
    yield pb_grpc.JobServiceStub(channel)
    channel.close()
    server.stop(0)


def wait_done(stub, name: str, backend=pb.BACKEND_LOCAL, timeout: float = 30) -> pb.Operation:
    deadline = time.monotonic() + timeout
    while True:
        operation = stub.GetOperation(
            pb.GetOperationRequest(name=f"operations/{name}", backend=backend)
        ).operation
        if operation.done or time.monotonic() > deadline:
            return operation
        time.sleep(0.1)


def test_local_job_runs_to_a_done_operation(stub, files) -> None:
    source = write_job(
        files,
        "grpc-a",
        """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("x")
        print("acc=0.75")
    """,
    )
    submitted = stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_LOCAL))
    name = submitted.operation.metadata.name  # the spec's name and the request's digest
    assert re.fullmatch(r"grpc-a-[0-9a-f]{8}", name)
    assert submitted.operation.name == f"operations/{name}"
    assert not submitted.operation.done
    operation = wait_done(stub, name)
    assert operation.done and operation.WhichOneof("result") == "response"
    job = operation.response
    assert job.state == pb.JOB_STATE_SUCCEEDED and job.metrics["acc"] == 0.75
    assert job.artifact_uri.startswith("file://") and job.artifact_uri.endswith("model.tar.gz")
    assert stub.GetJob(pb.GetJobRequest(name=name)).job.status == "Completed"


def test_stop_job_ends_the_operation_with_an_error(stub, files) -> None:
    source = write_job(
        files,
        "grpc-slow",
        """
        import time
        print("started", flush=True)
        time.sleep(60)
    """,
    )
    submitted = stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_LOCAL))
    name = submitted.operation.metadata.name
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = stub.GetJob(pb.GetJobRequest(name=name)).job
        if job.state == pb.JOB_STATE_RUNNING:
            break
        time.sleep(0.1)
    stopping = stub.StopJob(pb.StopJobRequest(name=name)).job
    assert stopping.state in (pb.JOB_STATE_STOPPING, pb.JOB_STATE_STOPPED)
    operation = wait_done(stub, name)
    assert operation.metadata.state == pb.JOB_STATE_STOPPED
    assert operation.error.code == grpc.StatusCode.ABORTED.value[0]


def test_list_jobs_pages(stub, files) -> None:
    names = []
    for spec_name in ("grpc-p1", "grpc-p2"):
        submitted = stub.SubmitJob(
            pb.SubmitJobRequest(
                source=write_job(files, spec_name, "print(1)"), backend=pb.BACKEND_LOCAL
            )
        )
        names.append(submitted.operation.metadata.name)
        wait_done(stub, names[-1])
    first = stub.ListJobs(pb.ListJobsRequest(page_size=1))
    assert [j.name for j in first.jobs] == names[:1] and first.next_page_token
    second = stub.ListJobs(pb.ListJobsRequest(page_size=1, page_token=first.next_page_token))
    assert [j.name for j in second.jobs] == names[1:] and not second.next_page_token
    with pytest.raises(grpc.RpcError) as bad:
        stub.ListJobs(pb.ListJobsRequest(page_token="nonsense!"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_invalid_spec_is_invalid_argument_with_field_violations(stub) -> None:
    source = compiler_service_pb2.SourceFile(
        path="bad.yaml", content="training:\n  name: x\n  nmae: y\n"
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_LOCAL))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error.value)
    violations = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    assert violations


def test_unknown_job_and_missing_backend(stub, files) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetJob(pb.GetJobRequest(name="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as no_backend:
        stub.SubmitJob(pb.SubmitJobRequest(source=write_job(files, "x", "print(1)")))
    assert no_backend.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sagemaker_backend_submits_and_follows(stub, files) -> None:
    source = write_job(files, "grpc-sm", "print(1)")
    submitted = stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_SAGEMAKER))
    name = submitted.operation.metadata.name
    assert re.fullmatch(r"grpc-sm-[0-9a-f]{8}", name)
    assert submitted.operation.metadata.arn.endswith(f"training-job/{name}")
    job = stub.GetJob(pb.GetJobRequest(name=name, backend=pb.BACKEND_SAGEMAKER)).job
    assert job.state == pb.JOB_STATE_SUCCEEDED  # moto completes jobs at once
    assert job.artifact_uri == f"s3://acme-ml-artifacts/jobs/{name}/output/model.tar.gz"
    # The same spec again is the same job: reported, not created twice.
    again = stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_SAGEMAKER))
    assert again.operation.metadata.arn == submitted.operation.metadata.arn
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetJob(pb.GetJobRequest(name="absent", backend=pb.BACKEND_SAGEMAKER))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_failing_tuning_store_is_the_servers_failure_not_an_internal_error(
    stub, files, tmp_path, caplog
) -> None:
    write_job(files, "grpc-tune", "print('acc=0.5')\n")
    content = textwrap.dedent(
        f"""\
        tuning:
          name: grpc-tune
          objective: {{metric: acc, type: MAXIMIZE}}
          strategy: GRID
          ranges:
            lr: {{categorical: {{values: ['0.1', '0.2']}}}}
          training:
            name: grpc-tune
            model: {{framework: {{name: pytorch, version: '2.1', entry_point: train.py,
              source_dir: .}}}}
            compute: {{instance_type: ml.m5.large}}
            role_arn: {ROLE}
            region: us-east-1
            output: {{path: 's3://acme-ml-artifacts/jobs/'}}
            metrics: [{{name: acc, regex: 'acc=([0-9.]+)'}}]
            stopping: {{max_runtime_seconds: 60}}
        """
    )
    (files / "grpc-tune" / "tune.yaml").write_text(content)
    # The tuner's SQLite database cannot be opened: a folder stands where it goes.
    (tmp_path / "runs" / "optuna.db").mkdir(parents=True)
    source = compiler_service_pb2.SourceFile(path="grpc-tune/tune.yaml", content=content)
    submitted = stub.SubmitJob(pb.SubmitJobRequest(source=source, backend=pb.BACKEND_LOCAL))
    job = wait_done(stub, submitted.operation.metadata.name).error
    assert "job store or disk failed" in job.message, job.message
    assert "internal error" not in job.message
    assert "optuna.db" not in job.message  # the server's own paths stay in its log
    assert any("optuna.db" in r.getMessage() for r in caplog.records)
