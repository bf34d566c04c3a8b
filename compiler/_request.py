"""Compile a trainspec.v1.CompileRequest: the gRPC form of `trainspec compile`."""

from __future__ import annotations

import os

from trainspec.compiler._diagnostics import SpecError
from trainspec.compiler._driver import CompileOptions, Stage, compile_loaded, compile_text
from trainspec.compiler.check._local_files import NOWHERE, LocalFiles
from trainspec.compiler.load._from_message import message_tree
from trainspec.compiler.load._load import LoadedSource
from trainspec.v1 import compiler_service_pb2

_AUTOTUNE_MODES = {0: "explicit", 1: "explicit", 2: "native"}
MESSAGE_SOURCE = "<request.spec>"
# A file path is a label in every diagnostic's location: a long one would be copied into
# each of them (and cached with a defaults file).
MAX_PATH_CHARS = 1024


def compile_request(
    request: compiler_service_pb2.CompileRequest, *, local_files: LocalFiles = NOWHERE
) -> compiler_service_pb2.CompileResponse:
    """Compile the request's spec; `validate_only` runs everything and returns no plan.

    The request's paths are labels: local files are read only where `local_files` allows
    (by default nowhere), since the caller is not the owner of this machine."""
    options = CompileOptions(
        autotune_mode=_AUTOTUNE_MODES.get(request.options.autotune_mode, "explicit"),
        max_cost_usd=request.options.max_cost_usd or None,
        local_files=local_files,
    )
    _check_paths(request)
    defaults = [(d.path or f"<defaults[{i}]>", d.content) for i, d in enumerate(request.defaults)]
    which = request.WhichOneof("input")
    if which == "source":
        plan = compile_text(
            request.source.path or "<source>",
            request.source.content,
            defaults=defaults,
            overrides=list(request.overrides),
            options=options,
        )
    elif which == "spec":
        tree = message_tree(request.spec, MESSAGE_SOURCE)
        source = LoadedSource(MESSAGE_SOURCE, "message", tree, {}, {})
        plan = compile_loaded(
            source,
            defaults=defaults,
            overrides=list(request.overrides),
            options=options,
            until=Stage.EMIT,
            spec_dir=local_files.spec_dir(""),
            root=local_files.root or os.sep,
        )
    else:
        from trainspec.compiler._diagnostics import Diagnostic

        raise SpecError(
            [
                Diagnostic(
                    "request.no_input",
                    "input",
                    "the request has neither spec nor source",
                    hint="set `spec` (a JobSpec) or `source` (a SourceFile)",
                )
            ]
        )
    response = compiler_service_pb2.CompileResponse()
    response.warnings.extend(plan.warnings)
    if not request.validate_only:
        response.plan.CopyFrom(plan)
    return response


def _check_paths(request: compiler_service_pb2.CompileRequest) -> None:
    from trainspec.compiler._diagnostics import Diagnostic

    named = [("source.path", request.source.path)] if request.HasField("source") else []
    named += [(f"defaults[{i}].path", d.path) for i, d in enumerate(request.defaults)]
    long = [
        Diagnostic(
            "request.path_too_long",
            field,
            f"the path is {len(path)} characters, over {MAX_PATH_CHARS}",
            hint="the path is only a label (it names the file in diagnostics): shorten it",
        )
        for field, path in named
        if len(path) > MAX_PATH_CHARS
    ]
    if long:
        raise SpecError(long)
