"""Framework training images, looked up as the SageMaker Python SDK's `image_uris.retrieve`.

The data is catalog/framework_images.json, generated from the SDK's own image_uri_config
by tools/gen_framework_images.py (the SDK version is recorded there). The lookup follows
`retrieve`'s steps for the training scope, in its order, so that a version, Python
version, processor or region the SDK would refuse is refused here too, as an
`ImageProblem` (data, turned into a located diagnostic by the check pass), never a
made-up tag. tests/compiler/test_sdk_parity.py holds the two side by side.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler.catalog import data_file

FRAMEWORKS = ("pytorch", "tensorflow", "huggingface", "xgboost", "sklearn")
# As image_uris.TRAINIUM_ALLOWED_FRAMEWORKS: only PyTorch has Trainium (Neuron) images.
_NEURON_CONFIG = {"pytorch": "pytorch-neuron"}
# image_uris._get_image_tag: a p4d instance takes these CUDA builds of a few old versions.
_P4D_CONTAINER_VERSIONS = {
    "tensorflow-2.3-gpu-py37": "cu110-ubuntu18.04-v3",
    "tensorflow-2.3.1-gpu-py37": "cu110-ubuntu18.04",
    "tensorflow-2.3.2-gpu-py37": "cu110-ubuntu18.04",
    "tensorflow-1.15-gpu-py37": "cu110-ubuntu18.04-v8",
    "tensorflow-1.15.4-gpu-py37": "cu110-ubuntu18.04",
    "tensorflow-1.15.5-gpu-py37": "cu110-ubuntu18.04",
    "pytorch-1.6-gpu-py36": "cu110-ubuntu18.04-v3",
    "pytorch-1.6.0-gpu-py36": "cu110-ubuntu18.04",
    "pytorch-1.6-gpu-py3": "cu110-ubuntu18.04-v3",
    "pytorch-1.6.0-gpu-py3": "cu110-ubuntu18.04",
}


@dataclass(frozen=True)
class ImageProblem:
    """Why no image exists: which framework field is at fault, and what would work."""

    rule: str
    field: str  # version | python_version | base_framework_version | region | instance_type
    message: str
    hint: str
    value: str


@functools.cache
def image_catalog() -> Mapping[str, Any]:
    ref = data_file("framework_images.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def sdk_version() -> str:
    return image_catalog()["source"]["version"]


def instance_family(instance_type: str) -> str:
    """`p3` for `ml.p3.2xlarge`, as sagemaker.utils.get_instance_type_family."""
    match = re.match(r"^ml[\._]([a-z\d\-]+)\.?\w*$", instance_type)
    return match[1] if match else ""


def _did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    listed = ", ".join(options)
    return (f"did you mean {close[0]!r}? " if close else "") + f"known: {listed}"


def _newest(options: list[str]) -> str:
    def key(text: str) -> tuple:
        return tuple(int(n) for n in re.findall(r"\d+", text))

    return max(options, key=key)


def _processor(family: str, available: list[str] | None) -> str | None:
    if not available:
        return None
    if family in available:
        return family
    if family.startswith("inf"):
        return "inf"
    if family.startswith("trn"):
        return "trn"
    return "gpu" if family[:1] in ("g", "p") else "cpu"


def training_image(
    framework: str,
    version: str,
    *,
    region: str,
    instance_type: str,
    python_version: str = "",
    base_framework_version: str = "",
) -> str | ImageProblem:
    """The training image URI `image_uris.retrieve` gives, or why there is none.

    An empty `python_version` (or Hugging Face `base_framework_version`) picks the only
    one listed, else the newest; the SDK asks for it instead.
    """
    catalog = image_catalog()
    family = instance_family(instance_type)
    name = framework
    neuron = family.startswith(("trn", "inf"))
    if neuron:
        if framework not in _NEURON_CONFIG:
            return ImageProblem(
                "image.trainium_framework",
                "instance_type",
                f"{framework} has no training image for {instance_type} (Trainium runs "
                "PyTorch Neuron images only)",
                "use framework pytorch, or a GPU or CPU instance",
                instance_type,
            )
        name = _NEURON_CONFIG[framework]
    config = catalog["frameworks"].get(name)
    if config is None:
        return ImageProblem(
            "image.unknown_framework",
            "name",
            f"no training images are known for framework {framework!r}",
            _did_you_mean(framework, list(FRAMEWORKS)),
            framework,
        )
    versions = list(config["versions"])
    aliases = config.get("version_aliases", {})
    # NOTE [one version]: retrieve swaps any version for the only one a config lists
    # (pytorch-neuron: 1.11.0), so PyTorch 2.1 on Trainium would silently run 1.11. Here
    # that applies only when no version is given; a version the SDK lacks is refused.
    if len(versions) == 1 and not version:
        version = versions[0]
    if version not in versions and version not in aliases:
        what = f"{framework} on {instance_type}" if neuron else framework
        return ImageProblem(
            "image.trainium_version" if neuron else "image.unknown_version",
            "version",
            f"{what} {version!r} is not a version the SageMaker Python SDK "
            f"{sdk_version()} has a training image for",
            _did_you_mean(version, versions + list(aliases)),
            version,
        )
    entry = config["versions"][aliases.get(version, version)]

    if framework == "huggingface":
        bases = [key for key in entry if key != "version_aliases"]
        base = base_framework_version or _newest([b for b in bases if b.startswith("pytorch")])
        full_base = entry.get("version_aliases", {}).get(base, base)
        if full_base not in entry or full_base == "version_aliases":
            return ImageProblem(
                "image.unknown_base_framework",
                "base_framework_version",
                f"huggingface {version} has no training image on {base!r}",
                _did_you_mean(base, bases + list(entry.get("version_aliases", {}))),
                base,
            )
        entry = entry[full_base]
    else:
        base = ""

    available = entry.get("py_versions") if "repository" in entry else list(entry)
    py = python_version or None
    if available:
        if py is None:
            py = available[0] if len(available) == 1 else _newest(available)
        if py not in available:
            return ImageProblem(
                "image.unknown_python_version",
                "python_version",
                f"{framework} {version} has no training image for Python {py!r}",
                _did_you_mean(py, available),
                py,
            )
        entry = entry.get(py) or entry
    else:
        py = None

    accounts = catalog["registries"][entry["registries"]]
    if region not in accounts:
        return ImageProblem(
            "image.unknown_region",
            "region",
            f"{framework} {version} has no training image in region {region!r}",
            _did_you_mean(region, sorted(accounts)),
            region,
        )

    processor = _processor(family, config.get("processors") or entry.get("processors"))
    available_processors = config.get("processors") or entry.get("processors") or []
    if processor is not None and processor not in available_processors:
        refused = (
            "the SDK refuses Hugging Face training on CPU instances"
            if framework == "huggingface"
            else f"images exist for {', '.join(available_processors)}"
        )
        return ImageProblem(
            "image.unsupported_processor",
            "instance_type",
            f"{framework} {version} has no {processor.upper()} training image "
            f"({instance_type}): {refused}",
            "choose an instance with a " + " or ".join(p.upper() for p in available_processors),
            instance_type,
        )
    container = (entry.get("container_version") or {}).get(processor or "", None)
    if entry["repository"] == "pytorch-training-neuron":
        container = "-".join(x for x in (_newest(entry["sdk_versions"]), container) if x)
    if framework == "huggingface":
        base_number = re.match(r"^(pytorch|tensorflow)(.*)$", base)
        tag_prefix = f"{base_number.group(2) if base_number else base}-transformers{version}"
    else:
        tag_prefix = entry.get("tag_prefix", version)
    if family == "p2" and framework in ("pytorch", "tensorflow"):
        limit = (1, 13) if framework == "pytorch" else (2, 12)
        if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) >= limit:
            return ImageProblem(
                "image.instance_deprecated",
                "instance_type",
                f"P2 instances are deprecated for {framework} {version} (the SDK refuses "
                "them from PyTorch 1.13 and TensorFlow 2.12)",
                "choose a newer GPU instance, e.g. ml.g5.xlarge",
                instance_type,
            )
    middle = "neuron" if neuron else processor
    tag = "-".join(x for x in (tag_prefix, middle, py, container) if x)
    if family == "p4d" and not neuron:
        tag = "-".join(x for x in (tag, _P4D_CONTAINER_VERSIONS.get(f"{framework}-{tag}", "")) if x)
    host = catalog["hosts"][region]
    return f"{accounts[region]}.dkr.{host}/{entry['repository']}:{tag}"


def framework_versions(framework: str) -> list[str]:
    config = image_catalog()["frameworks"].get(framework) or {}
    return [*config.get("versions", {}), *config.get("version_aliases", {})]


__all__ = ["FRAMEWORKS", "ImageProblem", "image_catalog", "sdk_version", "training_image"]
