"""Framework images from the SDK's image catalog: each way there is none is a located error
with did-you-mean (the images themselves are proven in tests/sdk/test_image_parity.py)."""

from __future__ import annotations

import pytest
import yaml
from trainspec._plan import request_of
from trainspec.compiler import SpecError, compile_file
from trainspec.compiler.catalog._images import ImageProblem, sdk_version, training_image

BASE = {
    "name": "script",
    "role_arn": "arn:aws:iam::111122223333:role/SageMakerTrainingRole",
    "region": "us-east-1",
    "output": {"path": "s3://acme/jobs/"},
    "model": {"framework": {"name": "pytorch", "version": "2.1", "entry_point": "train.py"}},
    "data": {"train": "s3://acme/train/"},
    "compute": {"instance_type": "ml.g5.xlarge"},
}


def _framework(**fields) -> dict:
    return {"framework": {**BASE["model"]["framework"], **fields}}


def _compile(tmp_path, **training):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"training": {**BASE, **training}}))
    return compile_file(spec, defaults=[])


@pytest.mark.parametrize(
    ("training", "code", "field", "hint"),
    [
        ({"model": _framework(version="2.99")}, "image.unknown_version",
         "training.model.framework.version", "known: "),
        ({"model": _framework(version="2.1.O")}, "image.unknown_version",
         "training.model.framework.version", "did you mean '2.1.0'?"),
        ({"model": _framework(python_version="py27")}, "image.unknown_python_version",
         "training.model.framework.python_version", "py310"),
        ({"model": _framework(name="huggingface", version="4.28.1"),
          "compute": {"instance_type": "ml.m5.xlarge"}},
         "image.unsupported_processor", "training.compute.instance_type", "GPU"),
        ({"model": _framework(name="huggingface", version="4.28.1",
                              base_framework_version="pytorch9.9")},
         "image.unknown_base_framework", "training.model.framework.base_framework_version",
         "pytorch2.0"),
        ({"model": _framework(name="sklearn", version="1.2-1"), "region": "eu-south-9"},
         "image.unknown_region", "training.region", "known: "),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("image.") else "",
)  # fmt: skip
def test_no_image_is_a_located_error(tmp_path, training, code, field, hint):
    with pytest.raises(SpecError) as raised:
        _compile(tmp_path, **training)
    found = {d.code: d for d in raised.value.diagnostics}
    assert code in found, raised.value.diagnostics
    assert found[code].field_path == field and hint in found[code].hint
    assert found[code].location is not None and found[code].location.line > 0


def test_hugging_face_takes_its_base_framework_and_python(tmp_path):
    model = _framework(name="huggingface", version="4.28.1", base_framework_version="pytorch2.0")
    image = request_of(_compile(tmp_path, model=model))["AlgorithmSpecification"]
    assert image["TrainingImage"].endswith(
        "/huggingface-pytorch-training:2.0-transformers4.28.1-gpu-py310-cu118-ubuntu20.04"
    )


def test_python_version_picks_among_several_else_the_newest():
    def image(python_version: str = "") -> str | ImageProblem:
        return training_image(
            "tensorflow",
            "2.1.3",
            region="us-east-1",
            instance_type="ml.m5.xlarge",
            python_version=python_version,
        )

    assert image().endswith("/tensorflow-training:2.1.3-cpu-py36")  # py3 and py36 listed
    assert image("py3").endswith("/tensorflow-training:2.1.3-cpu-py3")
    assert isinstance(image("py2"), ImageProblem)


def test_the_sdk_version_is_recorded():
    assert sdk_version() == "2.257.6"
