"""The CompilerService servicer: request -> compiler call -> response, errors -> statuses."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import grpc
from trainspec.compiler._cancel import Cancelled, cancel_when
from trainspec.server import _catalog, _pages, _status
from trainspec.server._diff import ReviewPolicyError, diff_plans, plan_risks, review_policy
from trainspec.server._interceptors import current_request_id
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import job_spec_pb2


def _abort_if_expired(context: grpc.ServicerContext) -> None:
    """Skip the work when the caller has already given up (a cheap check before it)."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call ran")
    if not context.is_active():
        context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")


def _gave_up(context: grpc.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return (remaining is not None and remaining <= 0) or not context.is_active()


class CompilerServicer:
    """Thin adapter over the compiler; `compile_request` and `catalog` are its two needs."""

    def __init__(
        self, compile_request: Callable[[pb.CompileRequest], pb.CompileResponse], catalog: Any
    ):
        self._compile = compile_request
        self._catalog = catalog
        from trainspec.compiler import SpecError

        self._spec_error = SpecError
        versions = getattr(catalog, "versions", {}) or {}
        self._instances = _catalog.instance_types(catalog.instances)
        self._models = _catalog.pretrained_models(catalog.models)
        self._instances_version = str(versions.get("instances", ""))
        self._models_version = str(versions.get("models", ""))

    def warm_up(self) -> None:
        """Compile one self-contained spec so lazy loads (botocore's model) happen now.

        Without it the first client after a deploy waits for them (~0.5 s).
        """
        spec = job_spec_pb2.JobSpec()
        training = spec.training
        training.name = "warm-up"
        training.model.image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/warm-up:1"
        training.data["train"].uri = "s3://warm-up/train/"
        training.compute.instance_type = next(
            (i.name for i in self._instances if i.gpus == 0), "ml.m5.large"
        )
        training.role_arn = "arn:aws:iam::123456789012:role/warm-up"
        training.region = "us-east-1"
        training.output.path = "s3://warm-up/output/"
        # A SpecError (a catalog without that instance) is fine: the loads still happened.
        with contextlib.suppress(self._spec_error):
            self._compile(pb.CompileRequest(spec=spec, validate_only=True))

    def Compile(
        self, request: pb.CompileRequest, context: grpc.ServicerContext
    ) -> pb.CompileResponse:
        _abort_if_expired(context)
        if request.WhichOneof("input") is None:
            context.abort_with_status(
                _status.request_invalid(
                    "input",
                    "request.input_missing",
                    "give either `spec` or `source`",
                    current_request_id(),
                )
            )
        try:
            with cancel_when(lambda: _gave_up(context)):
                response = self._compile(request)
        except self._spec_error as error:
            context.abort_with_status(_status.spec_invalid(error.diagnostics, current_request_id()))
        except Cancelled:
            _abort_if_expired(context)
            context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
        if request.validate_only:  # AIP-163: a validation call returns no resource
            response.ClearField("plan")
        return response

    def _page(
        self,
        request: pb.ListInstanceTypesRequest | pb.ListPretrainedModelsRequest,
        context: grpc.ServicerContext,
        query: str,
        total: int,
    ) -> _pages.Page:
        try:
            return _pages.page(total, request.page_size, request.page_token, query)
        except _pages.PageError as error:
            context.abort_with_status(
                _status.request_invalid(error.field, error.reason, str(error), current_request_id())
            )

    def ListInstanceTypes(
        self, request: pb.ListInstanceTypesRequest, context: grpc.ServicerContext
    ) -> pb.ListInstanceTypesResponse:
        _abort_if_expired(context)
        if request.min_gpus < 0:
            context.abort_with_status(
                _status.request_invalid(
                    "min_gpus",
                    "request.min_gpus_negative",
                    f"must not be negative, got {request.min_gpus}",
                    current_request_id(),
                )
            )
        matching = [i for i in self._instances if i.gpus >= request.min_gpus]
        query = f"instances|{self._instances_version}|min_gpus={request.min_gpus}"
        page = self._page(request, context, query, len(matching))
        return pb.ListInstanceTypesResponse(
            instance_types=matching[page.start : page.stop],
            next_page_token=page.next_page_token,
            catalog_version=self._instances_version,
        )

    def ListPretrainedModels(
        self, request: pb.ListPretrainedModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListPretrainedModelsResponse:
        _abort_if_expired(context)
        page = self._page(request, context, f"models|{self._models_version}", len(self._models))
        return pb.ListPretrainedModelsResponse(
            models=self._models[page.start : page.stop],
            next_page_token=page.next_page_token,
            catalog_version=self._models_version,
        )

    def DiffPlans(
        self, request: pb.DiffPlansRequest, context: grpc.ServicerContext
    ) -> pb.DiffPlansResponse:
        _abort_if_expired(context)
        try:
            policy = review_policy(request.review)
        except ReviewPolicyError as error:
            context.abort_with_status(
                _status.request_invalid(error.field, error.reason, str(error), current_request_id())
            )
        return pb.DiffPlansResponse(
            changes=diff_plans(request.base, request.head),
            risks=plan_risks(request.base, request.head, policy),
        )
