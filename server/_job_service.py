"""The JobService servicer: submit plans to the local or SageMaker backend and follow them."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from trainspec.server import _status
from trainspec.server._interceptors import current_request_id
from trainspec.v1 import compiler_service_pb2, job_service_pb2_grpc
from trainspec.v1 import job_service_pb2 as pb

_log = logging.getLogger("trainspec.server.jobs")
_OPERATIONS = "operations/"
_STATES = {
    "InProgress": pb.JOB_STATE_RUNNING,
    "Stopping": pb.JOB_STATE_STOPPING,
    "Completed": pb.JOB_STATE_SUCCEEDED,
    "Failed": pb.JOB_STATE_FAILED,
    "Stopped": pb.JOB_STATE_STOPPED,
}
_DONE = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_STOPPED)


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if not seconds:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _local_job(record: Any) -> pb.Job:
    status = record.status
    if record.secondary_status and record.secondary_status != record.status:
        status += f" ({record.secondary_status})"
    return pb.Job(
        name=record.name,
        backend=pb.BACKEND_LOCAL,
        kind=record.kind,
        state=_STATES.get(record.status, pb.JOB_STATE_UNSPECIFIED),
        status=status,
        message=record.message,
        metrics=dict(record.metrics),
        artifact_uri=Path(record.artifact).as_uri() if record.artifact else "",
        create_time=_timestamp(record.created),
        end_time=_timestamp(record.ended),
        parent=record.parent,
    )


def _sagemaker_job(kind: str, response: dict[str, Any]) -> pb.Job:
    if kind == "training":
        status = response.get("TrainingJobStatus", "")
        secondary = response.get("SecondaryStatus", "")
        job = pb.Job(
            name=response.get("TrainingJobName", ""),
            arn=response.get("TrainingJobArn", ""),
            artifact_uri=response.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
            metrics={
                m["MetricName"]: float(m["Value"])
                for m in response.get("FinalMetricDataList", [])
                if "MetricName" in m and "Value" in m
            },
        )
        end = response.get("TrainingEndTime")
    else:
        status = response.get("HyperParameterTuningJobStatus", "")
        secondary = ""
        job = pb.Job(
            name=response.get("HyperParameterTuningJobName", ""),
            arn=response.get("HyperParameterTuningJobArn", ""),
        )
        end = response.get("HyperParameterTuningEndTime")
    job.backend = pb.BACKEND_SAGEMAKER
    job.kind = kind
    job.state = _STATES.get(status, pb.JOB_STATE_UNSPECIFIED)
    job.status = status + (f" ({secondary})" if secondary and secondary != status else "")
    job.message = response.get("FailureReason", "")
    if response.get("CreationTime"):
        job.create_time.FromDatetime(response["CreationTime"])
    if end:
        job.end_time.FromDatetime(end)
    return job


def operation_of(job: pb.Job) -> pb.Operation:
    """AIP-151: the operation of a job is done when the job has ended."""
    operation = pb.Operation(name=_OPERATIONS + job.name, metadata=job)
    if job.state in _DONE:
        operation.done = True
        if job.state == pb.JOB_STATE_SUCCEEDED:
            operation.response.CopyFrom(job)
        else:
            code = 10 if job.state == pb.JOB_STATE_STOPPED else 9  # ABORTED, FAILED_PRECONDITION
            operation.error.CopyFrom(pb.OperationError(code=code, message=job.message))
    return operation


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    """Runs local jobs in background threads of this server; SageMaker jobs through boto3."""

    def __init__(
        self,
        root: Path,
        *,
        compile_request: Callable[[Any], Any] | None = None,
        sagemaker_clients: Callable[[str | None], Any] | None = None,
    ) -> None:
        from trainspec.compiler import SpecError
        from trainspec.trainer._job_store import JobStore

        if compile_request is None:
            from trainspec.compiler import compile_request as default_compile

            compile_request = default_compile
        self._compile = compile_request
        self._spec_error = SpecError
        self._root = Path(root)
        self._store = JobStore.for_root(self._root)
        self._sagemaker_clients = sagemaker_clients or _default_clients
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._launch_errors: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------------------

    def _abort_invalid(self, context: Any, field: str, reason: str, text: str) -> None:
        context.abort_with_status(
            _status.request_invalid(field, reason, text, current_request_id())
        )

    def _plan(self, request: pb.SubmitJobRequest, context: Any) -> Any:
        which = request.WhichOneof("input")
        if which is None:
            self._abort_invalid(
                context, "input", "request.input_missing", "give one of `spec`, `source` or `plan`"
            )
        if which == "plan":
            if request.plan.sagemaker_operation not in (
                "CreateTrainingJob",
                "CreateHyperParameterTuningJob",
            ):
                self._abort_invalid(
                    context,
                    "plan.sagemaker_operation",
                    "request.plan_invalid",
                    "the plan has no CreateTrainingJob or tuning request",
                )
            return request.plan
        compile_request = compiler_service_pb2.CompileRequest(defaults=request.defaults)
        getattr(compile_request, which).CopyFrom(getattr(request, which))
        try:
            return self._compile(compile_request).plan
        except self._spec_error as error:
            context.abort_with_status(_status.spec_invalid(error.diagnostics, current_request_id()))

    def _user_error(self, context: Any, exc: Exception) -> None:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    # -- RPCs ----------------------------------------------------------------------------

    def SubmitJob(self, request: pb.SubmitJobRequest, context: Any) -> pb.SubmitJobResponse:
        if request.backend == pb.BACKEND_UNSPECIFIED:
            self._abort_invalid(
                context,
                "backend",
                "request.backend_missing",
                "choose BACKEND_LOCAL or BACKEND_SAGEMAKER",
            )
        plan = self._plan(request, context)
        if request.backend == pb.BACKEND_SAGEMAKER:
            return self._submit_sagemaker(plan, request.validate_only, context)
        return self._submit_local(plan, request.validate_only, context)

    def _submit_local(self, plan: Any, validate_only: bool, context: Any) -> pb.SubmitJobResponse:
        from trainspec.trainer._container import ContainerError
        from trainspec.trainer._local_run import run_training, training_run_from_plan
        from trainspec.trainer._local_tune import TuningError, run_tuning, tuning_from_plan

        quiet = {"echo": lambda _line: None}
        try:
            if plan.sagemaker_operation == "CreateTrainingJob":
                job_run = training_run_from_plan(plan)
                name = job_run.name

                def work() -> None:
                    run_training(job_run, self._root, **quiet)
            else:
                settings, template = tuning_from_plan(plan)
                name = settings.name

                def work() -> None:
                    run_tuning(settings, template, self._root, **quiet)
        except (ContainerError, TuningError) as exc:
            self._user_error(context, exc)
        existing = self._store.get(name)
        with self._lock:
            running = self._threads.get(name)
            if (running is not None and running.is_alive()) or (existing and existing.active):
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"job {name!r} is running")
            pending = pb.Job(
                name=name,
                backend=pb.BACKEND_LOCAL,
                state=pb.JOB_STATE_PENDING,
                kind="training" if plan.sagemaker_operation == "CreateTrainingJob" else "tuning",
            )
            if validate_only:  # AIP-163: checked, nothing started
                return pb.SubmitJobResponse(
                    operation=pb.Operation(name=_OPERATIONS + name, metadata=pending)
                )
            self._launch_errors.pop(name, None)

            def guarded() -> None:
                try:
                    work()
                except (ContainerError, TuningError) as exc:
                    self._launch_errors[name] = str(exc)
                except Exception:  # never lose a job silently; never leak text to clients
                    _log.exception("local job %s crashed", name)
                    self._launch_errors[name] = "internal error while running the job"

            thread = threading.Thread(target=guarded, name=f"job-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
        return pb.SubmitJobResponse(operation=operation_of(pending))

    def _submit_sagemaker(self, plan: Any, validate_only: bool, context: Any):
        from trainspec.trainer._sagemaker import AwsError, job_name, plan_region, submit

        name = job_name(plan)
        kind = "training" if plan.sagemaker_operation == "CreateTrainingJob" else "tuning"
        pending = pb.Job(
            name=name, backend=pb.BACKEND_SAGEMAKER, kind=kind, state=pb.JOB_STATE_PENDING
        )
        if validate_only:
            return pb.SubmitJobResponse(
                operation=pb.Operation(name=_OPERATIONS + name, metadata=pending)
            )
        try:
            result = submit(plan, self._sagemaker_clients(plan_region(plan) or None))
        except AwsError as exc:
            self._user_error(context, exc)
        pending.arn = result.arn
        return pb.SubmitJobResponse(operation=operation_of(pending))

    def _job(self, name: str, backend: int, context: Any) -> pb.Job:
        if not name:
            self._abort_invalid(context, "name", "request.name_missing", "give the job name")
        if backend == pb.BACKEND_SAGEMAKER:
            from trainspec.trainer._sagemaker import AwsError, describe

            try:
                kind, response = describe(name, self._sagemaker_clients(None))
            except AwsError as exc:
                code = (
                    grpc.StatusCode.NOT_FOUND
                    if "no SageMaker" in str(exc)
                    else (grpc.StatusCode.FAILED_PRECONDITION)
                )
                context.abort(code, str(exc))
            return _sagemaker_job(kind, response)
        record = self._store.get(name)
        if record is not None:
            return _local_job(record)
        with self._lock:
            error = self._launch_errors.get(name)
            thread = self._threads.get(name)
        if error is not None:
            return pb.Job(
                name=name,
                backend=pb.BACKEND_LOCAL,
                state=pb.JOB_STATE_FAILED,
                status="Failed",
                message=error,
            )
        if thread is not None and thread.is_alive():
            return pb.Job(name=name, backend=pb.BACKEND_LOCAL, state=pb.JOB_STATE_PENDING)
        context.abort(grpc.StatusCode.NOT_FOUND, f"no job named {name!r}")

    def GetOperation(self, request: pb.GetOperationRequest, context: Any):
        name = request.name.removeprefix(_OPERATIONS)
        if not request.name.startswith(_OPERATIONS):
            self._abort_invalid(
                context,
                "name",
                "request.operation_name",
                "operation names look like operations/<job name>",
            )
        job = self._job(name, request.backend, context)
        return pb.GetOperationResponse(operation=operation_of(job))

    def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=self._job(request.name, request.backend, context))

    def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        if request.page_size < 0:
            self._abort_invalid(
                context, "page_size", "request.page_size_negative", "page_size must be >= 0"
            )
        size = min(request.page_size or 50, 1000)
        try:
            start = (
                int(base64.urlsafe_b64decode(request.page_token).decode())
                if (request.page_token)
                else 0
            )
        except ValueError:
            self._abort_invalid(
                context,
                "page_token",
                "request.page_token_invalid",
                "page_token is not one this service returned",
            )
        records = self._store.list(parent=request.parent or None)
        page = records[start : start + size]
        token = ""
        if start + size < len(records):
            token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return pb.ListJobsResponse(jobs=[_local_job(r) for r in page], next_page_token=token)

    def StopJob(self, request: pb.StopJobRequest, context: Any) -> pb.StopJobResponse:
        if request.backend == pb.BACKEND_SAGEMAKER:
            from trainspec.trainer._sagemaker import AwsError, stop

            try:
                stop(request.name, self._sagemaker_clients(None))
            except AwsError as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return pb.StopJobResponse(job=self._job(request.name, request.backend, context))
        job = self._job(request.name, request.backend, context)
        if job.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STOPPING):
            self._store.request_stop(request.name)
            job = self._job(request.name, request.backend, context)
        return pb.StopJobResponse(job=job)


def _default_clients(region: str | None) -> Any:
    from trainspec.trainer._sagemaker import make_clients

    return make_clients(region=region)


def add_job_service(server: grpc.Server, servicer: JobServicer) -> None:
    """Register JobService on a server made by `make_server` (or any grpc.Server)."""
    job_service_pb2_grpc.add_JobServiceServicer_to_server(servicer, server)
