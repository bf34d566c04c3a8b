"""validate agrees with compile (AIP-163): the same diagnostics from `validate` (text and
JSON), `compile`, and the gRPC `validate_only`, for every spec of the agreement corpus
(tests/compiler/data/agreement, whose README says how a case names what it expects)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from grpc_status import rpc_status
from trainspec._cli import cli
from trainspec.compiler import SpecError, compile_file, load_file
from trainspec.compiler.check._validate import validate_layer
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import job_spec_pb2

CORPUS = Path(__file__).resolve().parents[1] / "compiler/data/agreement"
DEFAULTS = CORPUS / "trainspec.defaults.yaml"
CASES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".json") and p != DEFAULTS)


def _header(case: Path) -> list[str]:
    source = case.with_name(case.name + ".expect") if case.suffix == ".json" else case
    return source.read_text().splitlines()[:2]


def expected_codes(case: Path) -> Counter:
    first = _header(case)[0]
    assert first.startswith("# expect:"), f"{case.name} names no expected codes"
    return Counter(first.removeprefix("# expect:").split())


def reads_local_files(case: Path) -> bool:
    return "# reads local files" in _header(case)


def key(diagnostic: dict) -> tuple:
    """What must agree: code, field, message, hint and place (not the JSON value)."""
    location = diagnostic.get("location") or {}
    return (
        diagnostic["code"],
        diagnostic.get("field_path", ""),
        diagnostic["message"],
        diagnostic.get("hint", ""),
        location.get("path", ""),
        location.get("line", 0),
        location.get("column", 0),
    )


def test_the_corpus_is_there():
    assert len(CASES) >= 15
    assert sum(not expected_codes(case) for case in CASES) == 1  # the valid control


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_and_compile_report_the_same_diagnostics(case):
    codes = expected_codes(case)
    runner = CliRunner()

    as_json = runner.invoke(cli, ["validate", str(case), "--format", "json"])
    assert as_json.exit_code == (1 if codes else 0), as_json.output
    validated = json.loads(as_json.stdout)
    assert Counter(d["code"] for d in validated) == codes
    assert all(d["location"]["path"] == str(case) for d in validated)

    text = runner.invoke(cli, ["validate", str(case)])
    assert text.exit_code == as_json.exit_code
    *problems, summary = text.stderr.splitlines()
    assert summary.startswith(f"1 file(s) checked, {len(validated)} problem(s)")

    compiled = runner.invoke(cli, ["compile", str(case)])
    assert compiled.exit_code == as_json.exit_code, compiled.output
    if codes:
        # compile prints exactly what validate prints, line for line
        assert compiled.stderr.splitlines() == problems
    else:
        assert json.loads(runner.invoke(cli, ["compile", str(case), "--format", "json"]).stdout)

    try:
        compile_file(case)
        in_process: list[dict] = []
    except SpecError as error:
        in_process = [d.to_json() for d in error.diagnostics]
    assert in_process == validated


GRPC_CASES = [c for c in CASES if not reads_local_files(c)]


@pytest.mark.parametrize("case", GRPC_CASES, ids=[c.name for c in GRPC_CASES])
def test_grpc_validate_only_reports_what_validate_reports(case, stub):
    validated = json.loads(
        CliRunner().invoke(cli, ["validate", str(case), "--format", "json"]).stdout
    )
    request = pb.CompileRequest(
        source=pb.SourceFile(path=str(case), content=case.read_text()),
        defaults=[pb.SourceFile(path=str(DEFAULTS), content=DEFAULTS.read_text())],
        validate_only=True,
    )
    try:
        response = stub.Compile(request, timeout=30)
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        status = rpc_status.from_call(error)
        listed = pb.DiagnosticList()
        assert any(d.Unpack(listed) for d in status.details if d.Is(listed.DESCRIPTOR))
        reported = [
            json_format.MessageToDict(d, preserving_proto_field_name=True)
            for d in listed.diagnostics
        ]
    else:
        assert not response.HasField("plan")  # AIP-163: no resource from a validation
        reported = []
    assert sorted(map(key, reported)) == sorted(map(key, validated))


def test_validate_of_the_folder_as_a_process_reports_every_case_at_once(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "trainspec", "validate", str(CORPUS), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    by_file = Counter(Path(d["location"]["path"]).name for d in json.loads(done.stdout))
    assert by_file == Counter(
        {case.name: sum(expected_codes(case).values()) for case in CASES if expected_codes(case)}
    )


def _as_message(case: Path) -> job_spec_pb2.JobSpec | None:
    """The case as a JobSpec message, or None when it cannot be one (wrong types...).

    Without `source_dir`: a message names no folder of the client's, and the server's
    own disk is no place to look for one."""
    try:
        loaded = load_file(case)
        layer = validate_layer(loaded.path, loaded.tree, loaded.locations, {})
        message = json_format.ParseDict(layer.tree, job_spec_pb2.JobSpec())
    except (SpecError, json_format.ParseError):
        return None
    job = getattr(message, message.WhichOneof("job"))
    training = job.training if message.HasField("tuning") else job
    if training.model.HasField("framework"):
        training.model.framework.ClearField("source_dir")
    return message


MESSAGE_CASES = [c for c in GRPC_CASES if _as_message(c) is not None]


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=[c.name for c in MESSAGE_CASES])
def test_grpc_validate_only_of_a_message_finds_the_same_problems(case, stub):
    """The `spec` form carries no file, so no places: codes and fields agree."""
    validated = json.loads(
        CliRunner().invoke(cli, ["validate", str(case), "--format", "json"]).stdout
    )
    request = pb.CompileRequest(
        spec=_as_message(case),
        defaults=[pb.SourceFile(path=str(DEFAULTS), content=DEFAULTS.read_text())],
        validate_only=True,
    )
    try:
        stub.Compile(request, timeout=30)
        reported: list[dict] = []
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        listed = pb.DiagnosticList()
        status = rpc_status.from_call(error)
        assert any(d.Unpack(listed) for d in status.details if d.Is(listed.DESCRIPTOR))
        reported = [
            json_format.MessageToDict(d, preserving_proto_field_name=True)
            for d in listed.diagnostics
        ]
    assert sorted(key(d)[:2] for d in reported) == sorted(key(d)[:2] for d in validated)
    assert all(d["location"]["path"] == "<request.spec>" for d in reported)
