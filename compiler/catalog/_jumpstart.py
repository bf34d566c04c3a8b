"""JumpStart model specs: the documents JumpStart publishes per model and version, read
as the pretrained-model catalog.

A spec is kept as data (`JumpStartModel`, frozen) with the few facts the compiler derives
from it: the task (from the model id's task segment, as JumpStart names its models), the
hyperparameters by scope, and the batch, learning-rate and epochs hyperparameters. What
the SDK's JumpStartEstimator computes from a spec (image, artifact and script URIs, the
default data set) is computed here the same way; tests/sdk/test_jumpstart_parity.py
holds the two side by side.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from trainspec.compiler._diagnostics import FieldPath
from trainspec.compiler.catalog import data_file

# JumpStart model ids read `<framework>-<task>-<name>`; the task segment says what the
# training script reads (and so what the data check can check).
TASKS = {
    "tc": "text-classification",
    "spc": "sentence-pair-classification",
    "ic": "image-classification",
}
# The data layout each task's training script reads; tasks absent here are not checked.
DATA_FORMATS = {
    "text-classification": "csv-label-text",
    "sentence-pair-classification": "csv-label-text-pair",
    "image-classification": "image-folders",
}
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"
CODE_CHANNEL_DIR = "/opt/ml/input/data/code"
MODEL_ID_TAG = "sagemaker-sdk:jumpstart-model-id"
MODEL_VERSION_TAG = "sagemaker-sdk:jumpstart-model-version"
_TYPES = ("int", "float", "text", "bool")


@dataclass(frozen=True)
class Hyperparameter:
    """One entry of a spec's `hyperparameters`: its type, default and allowed values."""

    name: str
    type: str  # int | float | text | bool
    default: Any
    scope: str  # algorithm (the model's) | container (read by the training toolkit)
    min: float | None = None
    max: float | None = None
    options: tuple[str, ...] = ()

    def problem(self, value: Any) -> str:
        """Why `value` is not allowed ("" when it is). A number may be written as a
        string (YAML reads `5e-5` as one), as the SDK sends every value as a string."""
        if isinstance(value, str) and self.type in ("int", "float"):
            try:
                value = int(value) if self.type == "int" else float(value)
            except ValueError:
                kind = "an integer" if self.type == "int" else "a number"
                return f"must be {kind}, not {value!r}"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"must be an integer, not {value!r}"
            if isinstance(value, float) and not value.is_integer():
                return f"must be an integer, not {value!r}"
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"must be a number, not {value!r}"
        elif self.type == "bool":
            if not isinstance(value, bool):
                return f"must be true or false, not {value!r}"
        elif self.options and str(value) not in self.options:
            return f"{value!r} is not one of {', '.join(repr(o) for o in self.options)}"
        if self.type in ("int", "float"):
            if self.min is not None and value < self.min:
                return f"{value!r} is below the minimum {_number(self.min)}"
            if self.max is not None and value > self.max:
                return f"{value!r} is above the maximum {_number(self.max)}"
        return ""

    def allowed(self) -> str:
        if self.options:
            return "one of " + ", ".join(repr(o) for o in self.options)
        if self.min is not None or self.max is not None:
            low = "" if self.min is None else _number(self.min)
            high = "" if self.max is None else _number(self.max)
            return f"a{'n integer' if self.type == 'int' else ' number'} in [{low}, {high}]"
        return f"a value of type {self.type}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class JumpStartModel:
    """A JumpStart model spec, as the pretrained catalog holds it."""

    id: str
    version: str
    source: str  # where the spec came from (repository and path, or a defaults file)
    task: str  # "" when the id names no task JumpStart's scripts are known for
    framework: str
    framework_version: str
    py_version: str
    hyperparameters: tuple[Hyperparameter, ...]
    training_artifact_key: str
    training_script_key: str
    supported_instance_types: tuple[str, ...]
    default_instance_type: str
    network_isolation: bool
    encrypt_inter_container_traffic: bool
    incremental_training: bool  # the spec's incremental_training_supported
    max_run: int  # 0: the SDK's default
    default_dataset_key: str
    metric_definitions: tuple[tuple[str, str], ...]  # (name, regex)
    regional_aliases: Mapping[str, Mapping[str, str]]
    variants: Mapping[str, Mapping[str, Any]]
    description: str = ""

    @property
    def data_format(self) -> str:
        return DATA_FORMATS.get(self.task, "")

    # NOTE [cached]: the passes ask for these several times per compile; a spec has dozens
    # of hyperparameters, so each is built once per catalog entry, not once per question.
    @functools.cached_property
    def algorithm_hyperparameters(self) -> Mapping[str, Hyperparameter]:
        return MappingProxyType({h.name: h for h in self.hyperparameters if h.scope == "algorithm"})

    @functools.cached_property
    def default_hyperparameters(self) -> Mapping[str, Any]:
        """The model's own (algorithm-scope) defaults, typed as the spec types them."""
        return MappingProxyType(
            {h.name: h.default for h in self.hyperparameters if h.scope == "algorithm"}
        )

    @functools.cached_property
    def container_hyperparameters(self) -> Mapping[str, str]:
        return MappingProxyType(
            {h.name: str(h.default) for h in self.hyperparameters if h.scope == "container"}
        )

    @functools.cached_property
    def batch_size_hyperparameter(self) -> str:
        return _named(self.algorithm_hyperparameters, ("batch_size", "batch-size"))

    @functools.cached_property
    def learning_rate_hyperparameter(self) -> str:
        names = [n for n in self.algorithm_hyperparameters if "learning" in n and "rate" in n]
        return names[0] if names else ""

    @functools.cached_property
    def epochs_hyperparameter(self) -> str:
        return _named(self.algorithm_hyperparameters, ("epochs",))

    @functools.cached_property
    def per_device_batch_size(self) -> int:
        return int(self.default_hyperparameters.get(self.batch_size_hyperparameter) or 1)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self.regional_aliases))

    def image_uri(self, region: str, instance_type: str) -> str | None:
        """The training image for this instance type in `region`, as the SDK's
        `JumpStartInstanceTypeVariants.get_image_uri` resolves it; None when there is none."""
        family = instance_type.split(".")[1] if instance_type.count(".") >= 2 else ""
        for key in (instance_type, family):
            alias = (self.variants.get(key) or {}).get("regional_properties", {}).get("image_uri")
            if alias:
                if not alias.startswith("$"):
                    return None
                return self.regional_aliases.get(region, {}).get(alias[1:])
        return None

    def image_instance_types(self) -> tuple[str, ...]:
        """The instance types and families that have an image variant."""
        return tuple(
            sorted(
                key
                for key, value in self.variants.items()
                if (value or {}).get("regional_properties", {}).get("image_uri")
            )
        )

    def content_uri(self, region: str, key: str) -> str:
        """`s3://<JumpStart's bucket in region>/<key>`; "" when JumpStart has no bucket there."""
        bucket = content_buckets().get(region)
        return f"s3://{bucket}/{key}" if bucket and key else ""

    def default_dataset_uri(self, region: str) -> str:
        return self.content_uri(region, self.default_dataset_key)


def _named(hyperparameters: Mapping[str, Hyperparameter], names: tuple[str, ...]) -> str:
    return next((n for n in names if n in hyperparameters), "")


@functools.cache
def content_buckets() -> Mapping[str, str]:
    """Region -> JumpStart's content bucket (catalog/jumpstart/regions.json, from the SDK)."""
    ref = data_file("jumpstart", "regions.json")
    return MappingProxyType(json.loads(ref.read_text(encoding="utf-8"))["content_buckets"])


# --- reading a spec ---------------------------------------------------------------------------


def spec_problems(doc: Any) -> Iterator[tuple[FieldPath, str]]:
    """(field path, message) for each way `doc` is not a trainable JumpStart model spec."""
    if not isinstance(doc, Mapping) or "model_id" not in doc or "hyperparameters" not in doc:
        yield (
            (),
            (
                "is not a JumpStart model spec (it needs `model_id`, `version`, "
                "`hyperparameters` and the training_* fields)"
            ),
        )
        return
    for key in ("model_id", "version", "training_artifact_key", "training_script_key"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            yield (key,), "must be a non-empty string"
    if isinstance(doc.get("model_id"), str) and not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9\-_.]{0,127}", doc["model_id"]
    ):
        yield ("model_id",), f"{doc['model_id']!r} is not a JumpStart model id"
    if doc.get("training_supported") is not True:
        yield ("training_supported",), "must be true: the model cannot be fine-tuned"
    ecr = doc.get("training_ecr_specs")
    if not isinstance(ecr, Mapping) or not all(
        isinstance(ecr.get(k), str) for k in ("framework", "framework_version")
    ):
        yield ("training_ecr_specs",), "must give `framework` and `framework_version`"
    variants = doc.get("training_instance_type_variants")
    if (
        not isinstance(variants, Mapping)
        or not isinstance(variants.get("regional_aliases"), Mapping)
        or not isinstance(variants.get("variants"), Mapping)
    ):
        yield (
            ("training_instance_type_variants",),
            "must hold `regional_aliases` and `variants` (the training images)",
        )
    for key in ("supported_training_instance_types",):
        value = doc.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            yield (key,), "must be a non-empty list of instance types"
    if not isinstance(doc.get("default_training_instance_type"), str):
        yield ("default_training_instance_type",), "must be an instance type"
    hyperparameters = doc.get("hyperparameters")
    if not isinstance(hyperparameters, list):
        yield ("hyperparameters",), "must be a list"
        return
    for index, entry in enumerate(hyperparameters):
        yield from (((("hyperparameters", index, *p)), m) for p, m in _hp_problems(entry))


def _hp_problems(entry: Any) -> Iterator[tuple[FieldPath, str]]:
    if not isinstance(entry, Mapping):
        yield (), "must be a mapping with name, type and default"
        return
    if not isinstance(entry.get("name"), str) or not entry.get("name"):
        yield ("name",), "must be a non-empty string"
    if entry.get("type") not in _TYPES:
        yield ("type",), f"must be one of {', '.join(_TYPES)}"
    if entry.get("scope", "algorithm") not in ("algorithm", "container"):
        yield ("scope",), "must be algorithm or container"
    if "default" not in entry:
        yield ("default",), "is required"
    for key in ("min", "max"):
        if key in entry and (
            isinstance(entry[key], bool) or not isinstance(entry[key], int | float)
        ):
            yield (key,), "must be a number"
    options = entry.get("options", [])
    if not isinstance(options, list):
        yield ("options",), "must be a list"


def from_spec(doc: Mapping[str, Any], source: str) -> JumpStartModel:
    """The catalog entry of a spec that `spec_problems` found nothing wrong with."""
    model_id = doc["model_id"]
    task = next((TASKS[p] for p in model_id.split("-")[1:2] if p in TASKS), "")
    ecr = doc["training_ecr_specs"]
    kwargs = doc.get("estimator_kwargs") or {}
    hyperparameters = tuple(
        Hyperparameter(
            name=h["name"],
            type=h["type"],
            default=h["default"],
            scope=h.get("scope", "algorithm"),
            min=h.get("min"),
            max=h.get("max"),
            options=tuple(str(o) for o in h.get("options", ())),
        )
        for h in doc["hyperparameters"]
    )
    variants = doc["training_instance_type_variants"]
    return JumpStartModel(
        id=model_id,
        version=doc["version"],
        source=source,
        task=task,
        framework=ecr["framework"],
        framework_version=ecr["framework_version"],
        py_version=ecr.get("py_version", ""),
        hyperparameters=hyperparameters,
        training_artifact_key=doc["training_artifact_key"],
        # the SDK prefers the prepacked script (script_uris.retrieve)
        training_script_key=doc.get("training_prepacked_script_key") or doc["training_script_key"],
        supported_instance_types=tuple(doc["supported_training_instance_types"]),
        default_instance_type=doc["default_training_instance_type"],
        network_isolation=bool(doc.get("training_enable_network_isolation", False)),
        incremental_training=bool(doc.get("incremental_training_supported", False)),
        encrypt_inter_container_traffic=bool(kwargs.get("encrypt_inter_container_traffic")),
        max_run=int(kwargs.get("max_run") or 0),
        default_dataset_key=doc.get("default_training_dataset_key") or "",
        metric_definitions=tuple((m["Name"], m["Regex"]) for m in doc.get("metrics") or ()),
        regional_aliases=MappingProxyType(
            {r: MappingProxyType(dict(a)) for r, a in variants["regional_aliases"].items()}
        ),
        variants=MappingProxyType(dict(variants["variants"])),
        description=doc.get("url", ""),
    )


__all__ = [
    "CODE_CHANNEL_DIR",
    "MODEL_CONTENT_TYPE",
    "MODEL_ID_TAG",
    "MODEL_VERSION_TAG",
    "Hyperparameter",
    "JumpStartModel",
    "content_buckets",
    "from_spec",
    "spec_problems",
]
