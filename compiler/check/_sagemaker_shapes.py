"""botocore's SageMaker input shapes, read from a table made from botocore's service model.

Importing botocore.session and loading its SageMaker model costs ~100 ms, most of a
one-spec `trainspec compile`; the operations trainspec lowers to reach under 200 of the
model's 3,200 shapes. `tools/gen_sagemaker_shapes.py` writes those shapes, as botocore's
model spells them (documentation left out), to catalog/sagemaker_shapes.json with
botocore's version. `Shape` answers what botocore.model.Shape answers to the checks, the
typing and ParamValidator. When the installed botocore is another version, `input_shape`
returns None and the caller loads botocore's own model: the table is never trusted stale.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from trainspec.compiler.catalog import data_file

SERVICE = "sagemaker"
# The operations `lower` produces requests for.
OPERATIONS = ("CreateTrainingJob", "CreateHyperParameterTuningJob")
TABLE_FILE = "sagemaker_shapes.json"

# botocore.model.Shape's METADATA_ATTRS and SERIALIZED_ATTRS: the traits it exposes.
_METADATA = (
    "required",
    "min",
    "max",
    "pattern",
    "sensitive",
    "enum",
    "idempotencyToken",
    "error",
    "exception",
    "endpointdiscoveryid",
    "retryable",
    "document",
    "union",
    "contextParam",
    "clientContextParams",
    "requiresLength",
)
_SERIALIZED = (
    "locationName",
    "queryName",
    "flattened",
    "location",
    "payload",
    "streaming",
    "timestampFormat",
    "xmlNamespace",
    "resultWrapper",
    "xmlAttribute",
    "eventstream",
    "event",
    "eventheader",
    "eventpayload",
    "jsonvalue",
    "hostLabel",
)


class Shape:
    """One shape of the table, with botocore.model.Shape's attributes that the checks read
    (members, member, key and value resolved on first use, as botocore does)."""

    def __init__(self, name: str, model: Mapping[str, Any], shapes: Mapping[str, Any]):
        self.name = name
        self.type_name: str = model["type"]
        self.metadata = {key: model[key] for key in _METADATA if key in model}
        serialization = {key: model[key] for key in _SERIALIZED if key in model}
        if "locationName" in serialization:  # botocore renames it so
            serialization["name"] = serialization.pop("locationName")
        self.serialization = serialization
        self._model = model
        self._shapes = shapes
        self._resolved: dict[str, Any] = {}

    @property
    def is_tagged_union(self) -> bool:
        return self.metadata.get("union", False)

    @property
    def is_document_type(self) -> bool:
        return self.metadata.get("document", False)

    @property
    def members(self) -> dict[str, Shape]:
        if "members" not in self._resolved:
            self._resolved["members"] = {
                name: self._ref(ref) for name, ref in self._model.get("members", {}).items()
            }
        return self._resolved["members"]

    @property
    def member(self) -> Shape:
        return self._child("member")

    @property
    def key(self) -> Shape:
        return self._child("key")

    @property
    def value(self) -> Shape:
        return self._child("value")

    def _child(self, role: str) -> Shape:
        if role not in self._resolved:
            self._resolved[role] = self._ref(self._model[role])
        return self._resolved[role]

    def _ref(self, ref: Mapping[str, Any]) -> Shape:
        # A reference's own traits are merged over the shape it names, as botocore's
        # ShapeResolver does.
        name = ref["shape"]
        model = self._shapes[name]
        if len(ref) > 1:
            model = {**model, **{k: v for k, v in ref.items() if k != "shape"}}
        return Shape(name, model, self._shapes)

    def __repr__(self) -> str:
        return f"<Shape({self.name})>"


@functools.cache
def _table() -> dict[str, Any]:
    ref = data_file(TABLE_FILE)
    return json.loads(ref.read_text(encoding="utf-8"))


@functools.cache
def installed_botocore_version() -> str:
    """The installed botocore's `__version__`, read from its `__init__.py` rather than
    imported: importing botocore imports logging, which validate and compile use nowhere
    else (~4 ms of their start-up). Imported after all where the line is not found."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("botocore")
    if spec is not None and spec.origin:
        with open(spec.origin, encoding="utf-8") as handle:
            found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]$", handle.read(), re.M)
        if found:
            return found.group(1)
    import botocore

    return str(botocore.__version__)


def input_shape(operation: str) -> Shape | None:
    """The input shape of `operation` from the table; None when the table does not have
    the operation or was made from another botocore than the one installed."""
    table = _table()
    if table["botocore_version"] != installed_botocore_version():
        return None
    name = table["operations"].get(operation)
    if name is None:
        return None
    return Shape(name, table["shapes"][name], table["shapes"])


def table_from_botocore() -> dict[str, Any]:
    """The table as botocore's installed model gives it (what tools/gen_sagemaker_shapes.py
    writes): every shape reachable from OPERATIONS' inputs, without documentation."""
    import botocore
    import botocore.session

    service = botocore.session.get_session().get_service_data(SERVICE)
    operations = {op: service["operations"][op]["input"]["shape"] for op in OPERATIONS}
    shapes: dict[str, Any] = {}
    pending = list(operations.values())
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        model = _without_docs(service["shapes"][name])
        shapes[name] = model
        refs = [*model.get("members", {}).values()]
        refs += [model[role] for role in ("member", "key", "value") if role in model]
        pending.extend(ref["shape"] for ref in refs)
    return {
        "source": f"botocore {botocore.__version__} data/sagemaker (tools/gen_sagemaker_shapes.py)",
        "botocore_version": botocore.__version__,
        "api_version": service["metadata"]["apiVersion"],
        "operations": operations,
        "shapes": dict(sorted(shapes.items())),
    }


def _without_docs(model: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in model.items():
        if key == "documentation":
            continue
        if key == "members":
            value = {name: _without_docs(ref) for name, ref in value.items()}
        elif key in ("member", "key", "value"):
            value = _without_docs(value)
        out[key] = value
    return out


__all__ = ["OPERATIONS", "Shape", "input_shape", "table_from_botocore"]
