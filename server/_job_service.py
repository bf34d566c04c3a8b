"""The JobService servicer: submit plans to the local or SageMaker backend and follow them."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import json_format, timestamp_pb2
from trainspec.compiler._diagnostics import Diagnostic, Location
from trainspec.server import _status
from trainspec.server._handlers import guarded_handler
from trainspec.server._interceptors import current_request_id
from trainspec.server._job_policy import JobPolicy
from trainspec.v1 import compiler_service_pb2, job_service_pb2, job_service_pb2_grpc
from trainspec.v1 import job_service_pb2 as pb

if TYPE_CHECKING:
    from trainspec.trainer._job_store import JobStore

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
# Get, stop and list default to the local backend (an unset enum reads as 0).
_BACKEND_NAMES = {pb.BACKEND_LOCAL: "local", pb.BACKEND_SAGEMAKER: "sagemaker"}


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
    """Runs local jobs in background threads of this server; SageMaker jobs through boto3.

    Everything a caller may make it do is set by `policy` (see _job_policy.py): it never
    runs a plan it did not compile, nor code or data outside the policy's files root.
    """

    def __init__(
        self,
        root: Path,
        *,
        policy: JobPolicy,
        compile_request: Callable[..., Any] | None = None,
        sagemaker_clients: Callable[[str | None], Any] | None = None,
    ) -> None:
        from trainspec.compiler import SpecError
        from trainspec.trainer._job_store import JobStore

        if compile_request is None:
            from trainspec.compiler import compile_request as default_compile

            compile_request = default_compile
        self._compile = compile_request
        self._spec_error = SpecError
        self._policy = policy
        self._root = Path(root)
        self._store = JobStore.for_root(self._root) if "local" in policy.backends else None
        self._sagemaker_clients = sagemaker_clients or _default_clients
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._launch_errors: dict[str, str] = {}
        self._closed = False

    # -- helpers -------------------------------------------------------------------------

    def _abort_invalid(
        self, context: grpc.ServicerContext, field: str, reason: str, text: str
    ) -> NoReturn:
        context.abort_with_status(
            _status.request_invalid(field, reason, text, current_request_id())
        )

    def _local_store(self) -> JobStore:
        """The local jobs' store: there is one whenever the policy allows local jobs, which
        every caller checked first (_require_backend)."""
        if self._store is None:
            raise RuntimeError("this server runs no local jobs")
        return self._store

    def _require_backend(self, backend: pb.Backend.ValueType, context: grpc.ServicerContext) -> str:
        name = _BACKEND_NAMES.get(backend)
        if name is None:
            self._abort_invalid(
                context,
                "backend",
                "request.backend_missing",
                "choose BACKEND_LOCAL or BACKEND_SAGEMAKER",
            )
        if name not in self._policy.backends:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this server runs no {name} jobs (its operator can allow them with "
                f"`trainspec serve --jobs {name}`)",
            )
        return name

    def _require_name(self, name: str, field: str, context: grpc.ServicerContext) -> str:
        from trainspec.trainer._container import ContainerError, check_job_name

        if not name:
            self._abort_invalid(context, field, "request.name_missing", "give the job name")
        try:
            return check_job_name(name)
        except ContainerError as exc:
            self._abort_invalid(context, field, "request.name_invalid", str(exc))

    def _plan(
        self, request: pb.SubmitJobRequest, backend: str, context: grpc.ServicerContext
    ) -> Any:
        """The plan this server compiles from the request's spec, within its policy."""
        which = request.WhichOneof("input")
        if which is None:
            self._abort_invalid(
                context, "input", "request.input_missing", "give one of `spec` or `source`"
            )
        if which == "plan":
            self._abort_invalid(
                context,
                "plan",
                "request.plan_refused",
                "this server runs only what it compiles itself: send the `spec` or `source`",
            )
        compile_request = compiler_service_pb2.CompileRequest(defaults=request.defaults)
        getattr(compile_request, which).CopyFrom(getattr(request, which))
        if backend == "sagemaker":
            compile_request.options.max_cost_usd = self._policy.budget(0.0)
        try:
            plan = self._compile(compile_request, local_files=self._policy.files).plan
        except self._spec_error as error:
            context.abort_with_status(_status.spec_invalid(error.diagnostics, current_request_id()))
        outside = [
            Diagnostic(
                "job.path_outside_root",
                w.field_path,
                "this server runs jobs only from files under its files root",
                hint="keep the source and local data under the folder the server was started "
                "with (--files-root), and name them relative to the spec",
                location=Location(w.location.path, w.location.line, w.location.column)
                if w.HasField("location")
                else None,
            )
            for w in plan.warnings
            if w.code == "local.not_checked"
        ]
        if outside:
            context.abort_with_status(_status.spec_invalid(outside, current_request_id()))
        return plan

    def _files_base(self) -> Path:
        """What the plans this server compiles name local paths from: its files root (a
        compile for a caller names nothing of the server's disk above it)."""
        return Path(self._policy.files.root or os.sep)

    def _user_error(self, context: grpc.ServicerContext, exc: Exception) -> None:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def _refuse_outside(self, paths: list[tuple[str, Path]], context: grpc.ServicerContext) -> None:
        """Defence in depth: what the runner or the upload would read, checked once more."""
        for what, path in paths:
            if not self._policy.files.readable(str(path)):
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the job's {what} is outside this server's files root",
                )

    # -- RPCs ----------------------------------------------------------------------------

    def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.ServicerContext
    ) -> pb.SubmitJobResponse:
        backend = self._require_backend(request.backend, context)
        if self._closed:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        plan = self._plan(request, backend, context)
        if backend == "sagemaker":
            return self._submit_sagemaker(plan, request.validate_only, context)
        return self._submit_local(plan, request.validate_only, context)

    def _submit_local(
        self, plan: Any, validate_only: bool, context: grpc.ServicerContext
    ) -> pb.SubmitJobResponse:
        from trainspec.trainer._container import ContainerError
        from trainspec.trainer._local_run import run_training, training_run_from_plan
        from trainspec.trainer._local_tune import TuningError, run_tuning, tuning_from_plan

        def quiet(_line: str) -> None:
            pass

        try:
            if plan.sagemaker_operation == "CreateTrainingJob":
                job_run = training_run_from_plan(plan, self._files_base())
                name = job_run.name

                def work() -> None:
                    run_training(job_run, self._root, echo=quiet)
            else:
                settings, job_run = tuning_from_plan(plan, self._files_base())
                name = settings.name

                def work() -> None:
                    run_tuning(settings, job_run, self._root, echo=quiet)
        except (ContainerError, TuningError) as exc:
            self._user_error(context, exc)
        # A pretrained model's script comes from S3 (source_dir None): nothing local to check.
        source = job_run.source_dir
        self._refuse_outside(
            [
                *(
                    [("source folder", source), ("entry point", source / job_run.entry_point)]
                    if source is not None
                    else []
                ),
                *((f"data channel {c.name}", Path(c.uri)) for c in job_run.channels if not c.is_s3),
            ],
            context,
        )
        existing = self._local_store().get(name)
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
                except Exception as exc:  # never lose a job silently; never leak text to clients
                    if _is_infrastructure(exc):  # the server's disk or database, not a bug
                        _log.error("local job %s: %s", name, exc)
                        self._launch_errors[name] = (
                            "the server's job store or disk failed while running the job; "
                            "its log has the details: ask its operator, then submit again"
                        )
                    else:
                        _log.exception("local job %s crashed", name)
                        self._launch_errors[name] = "internal error while running the job"

            # Not a daemon: the server stops its jobs and waits for their verdicts (close).
            thread = threading.Thread(target=guarded, name=f"job-{name}")
            self._threads[name] = thread
            thread.start()
        return pb.SubmitJobResponse(operation=operation_of(pending))

    def _submit_sagemaker(
        self, plan: Any, validate_only: bool, context: grpc.ServicerContext
    ) -> pb.SubmitJobResponse:
        from trainspec.trainer._sagemaker import AwsError, job_name, plan_region, submit, uploads

        problems = self._policy.request_problems(json_format.MessageToDict(plan.sagemaker_request))
        if problems:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "; ".join(problems))
        base = self._files_base()
        self._refuse_outside(
            [(f"upload {uri}", local) for local, uri in uploads(plan, base)], context
        )
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
            result = submit(plan, self._sagemaker_clients(plan_region(plan) or None), base)
        except AwsError as exc:
            self._user_error(context, exc)
        pending.arn = result.arn
        return pb.SubmitJobResponse(operation=operation_of(pending))

    def close(self, timeout: float = 10.0) -> list[str]:
        """Stop every local job this server started and wait up to `timeout` for each
        runner to record its verdict (Stopped), so no training process outlives the
        server unrecorded. Returns the names still running when the time was up."""
        with self._lock:
            self._closed = True
            running = {n: t for n, t in self._threads.items() if t.is_alive()}
        for name in running:
            _log.info("stopping local job %s (server shutting down)", name)
            self._local_store().request_stop(name)
        deadline = time.monotonic() + timeout
        for thread in running.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return sorted(n for n, t in running.items() if t.is_alive())

    def _job(
        self,
        name: str,
        backend: pb.Backend.ValueType,
        context: grpc.ServicerContext,
        field: str = "name",
    ) -> pb.Job:
        backend = backend or pb.BACKEND_LOCAL
        self._require_backend(backend, context)
        self._require_name(name, field, context)
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
        record = self._local_store().get(name)
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

    def GetOperation(
        self, request: pb.GetOperationRequest, context: grpc.ServicerContext
    ) -> pb.GetOperationResponse:
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

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=self._job(request.name, request.backend, context))

    def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.ServicerContext
    ) -> pb.ListJobsResponse:
        self._require_backend(pb.BACKEND_LOCAL, context)
        if request.parent:
            self._require_name(request.parent, "parent", context)
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
        records = self._local_store().list(parent=request.parent or None)
        page = records[start : start + size]
        token = ""
        if start + size < len(records):
            token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return pb.ListJobsResponse(jobs=[_local_job(r) for r in page], next_page_token=token)

    def StopJob(
        self, request: pb.StopJobRequest, context: grpc.ServicerContext
    ) -> pb.StopJobResponse:
        self._require_backend(request.backend or pb.BACKEND_LOCAL, context)
        self._require_name(request.name, "name", context)
        if request.backend == pb.BACKEND_SAGEMAKER:
            from trainspec.trainer._sagemaker import AwsError, stop

            try:
                stop(request.name, self._sagemaker_clients(None))
            except AwsError as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return pb.StopJobResponse(job=self._job(request.name, request.backend, context))
        job = self._job(request.name, request.backend, context)
        if job.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STOPPING):
            self._local_store().request_stop(request.name)
            job = self._job(request.name, request.backend, context)
        return pb.StopJobResponse(job=job)


def _default_clients(region: str | None) -> Any:
    from trainspec.trainer._sagemaker import make_clients

    return make_clients(region=region)


JOB_SERVICE = job_service_pb2.DESCRIPTOR.services_by_name["JobService"]


def add_job_service(server: grpc.Server, servicer: JobServicer) -> None:
    """Register JobService on a server made by `make_server` (or any grpc.Server), behind
    the same guard as CompilerService: no exception text ever reaches a caller."""
    server.add_generic_rpc_handlers((guarded_handler(JOB_SERVICE, servicer),))


def _is_infrastructure(exc: BaseException) -> bool:
    """Whether the tuner's storage or the disk failed (trainer's verdict, as `run` exits 4)."""
    try:  # it needs optuna, which a training-only install may lack
        from trainspec.trainer._optuna_storage import is_infrastructure
    except ImportError:
        return False
    return is_infrastructure(exc)
