"""catalog/sagemaker_shapes.json stands in for botocore's SageMaker model: it must be what
botocore gives, and its shapes must answer as botocore's do."""

from __future__ import annotations

import json
from importlib import resources

import botocore
import botocore.session
import pytest
from botocore.validate import ParamValidator
from trainspec.compiler.check import _botocore_check as bc
from trainspec.compiler.check import _sagemaker_shapes as shapes
from trainspec.compiler.lower._request_types import typed_request

from tests.compiler.test_botocore_check import training_request, tuning_request


def _committed() -> dict:
    ref = resources.files("trainspec.compiler.catalog").joinpath(shapes.TABLE_FILE)
    return json.loads(ref.read_text(encoding="utf-8"))


@pytest.mark.pinned  # the table is constraints.txt's botocore; others load botocore's model
def test_the_committed_table_is_what_the_installed_botocore_gives() -> None:
    committed = _committed()
    assert committed["botocore_version"] == botocore.__version__, (
        "botocore was upgraded: run tools/gen_sagemaker_shapes.py"
    )
    assert committed == shapes.table_from_botocore()


def _model():
    return botocore.session.get_session().get_service_model("sagemaker")


def _same(ours, theirs, path: str, seen: set) -> None:
    """Every attribute the checks, the typing and ParamValidator read, recursively."""
    assert (ours.name, ours.type_name) == (theirs.name, theirs.type_name), path
    assert ours.metadata == theirs.metadata, path
    assert ours.serialization == theirs.serialization, path
    key = (theirs.name, json.dumps(theirs.serialization, sort_keys=True))
    if key in seen:  # recursive shapes
        return
    seen.add(key)
    if theirs.type_name == "structure":
        assert ours.is_tagged_union == theirs.is_tagged_union, path
        assert ours.is_document_type == theirs.is_document_type, path
        assert list(ours.members) == list(theirs.members), path
        for name, member in theirs.members.items():
            _same(ours.members[name], member, f"{path}.{name}", seen)
    elif theirs.type_name == "list":
        _same(ours.member, theirs.member, f"{path}[]", seen)
    elif theirs.type_name == "map":
        _same(ours.key, theirs.key, f"{path}.<key>", seen)
        _same(ours.value, theirs.value, f"{path}.<value>", seen)


@pytest.mark.pinned  # the table is constraints.txt's botocore; others load botocore's model
@pytest.mark.parametrize("operation", shapes.OPERATIONS)
def test_table_shapes_answer_as_botocores_do(operation: str) -> None:
    ours = shapes.input_shape(operation)
    assert ours is not None
    _same(ours, _model().operation_model(operation).input_shape, operation, set())


@pytest.mark.pinned  # the table is constraints.txt's botocore; others load botocore's model
@pytest.mark.parametrize(
    ("operation", "request_of"),
    [("CreateTrainingJob", training_request), ("CreateHyperParameterTuningJob", tuning_request)],
)
def test_param_validator_reports_the_same_on_table_shapes(operation, request_of) -> None:
    """The full check hands table shapes to botocore's ParamValidator."""
    request = request_of()
    request["Surprise"] = 1
    request.pop(next(iter(_model().operation_model(operation).input_shape.required_members)))
    theirs = ParamValidator().validate(request, _model().operation_model(operation).input_shape)
    ours = ParamValidator().validate(request, shapes.input_shape(operation))
    assert theirs.has_errors()
    assert ours.generate_report() == theirs.generate_report()


def test_a_table_for_another_botocore_is_not_used(monkeypatch) -> None:
    """A stale table would check requests against an old model: botocore's is loaded."""
    stale = {**_committed(), "botocore_version": "0.0.1"}
    monkeypatch.setattr(shapes, "_table", lambda: stale)
    assert shapes.input_shape("CreateTrainingJob") is None
    bc._operation.cache_clear()
    try:
        shape = bc.input_shape("CreateTrainingJob")
        assert type(shape).__module__ == "botocore.model"
        request = training_request()
        request["ResourceConfig"]["InstanceCount"] = 1.0
        request = typed_request("CreateTrainingJob", request)
        assert type(request["ResourceConfig"]["InstanceCount"]) is int
        request["ResourceConfig"]["InstanceType"] = "ml.nope"
        assert [d.code for d in bc.check_request("CreateTrainingJob", request)] == [
            "sagemaker.request_invalid.enum"
        ]
    finally:
        bc._operation.cache_clear()


def test_an_operation_outside_the_table_comes_from_botocore() -> None:
    assert shapes.input_shape("CreateProcessingJob") is None
    assert bc.input_shape("CreateProcessingJob").name == "CreateProcessingJobRequest"


def test_the_installed_botocore_version_is_read_without_importing_it():
    assert shapes.installed_botocore_version() == botocore.__version__
