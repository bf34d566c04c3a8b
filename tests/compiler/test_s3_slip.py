"""A likely-mistyped S3 URI gets a did-you-mean at validate, not "missing local folder"."""

from __future__ import annotations

import pytest
from trainspec.compiler import SpecError, compile_text


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("s3//bucket-a/x/", "s3://bucket-a/x/"),
        ("s3:/bucket-a/x/", "s3://bucket-a/x/"),
        ("s3:bucket-a/x/", "s3://bucket-a/x/"),
        ("S3://bucket-a/x/", "s3://bucket-a/x/"),
        ("s3a://bucket-a/x/", "s3://bucket-a/x/"),
    ],
)
def test_a_slip_in_the_scheme_is_a_did_you_mean(written, meant, tmp_path):
    spec = (
        "training:\n  name: slip\n  model: {image: 123456789012.dkr.ecr.us-east-1."
        f"amazonaws.com/x:1}}\n  data: {{train: '{written}'}}\n"
    )
    with pytest.raises(SpecError) as caught:
        compile_text(str(tmp_path / "spec.yaml"), spec)
    (problem,) = caught.value.diagnostics  # found before resolve: the only problem
    assert (problem.code, problem.field_path) == ("spec.s3_uri", "training.data.train.uri")
    assert problem.hint == f"did you mean {meant!r}?"
    assert (problem.location.line, problem.location.column) == (4, 17)


@pytest.mark.parametrize("local", ["s3/train/", "S3/x", "./s3//x", "data/s3:/x"])
def test_a_local_folder_called_s3_is_not_a_slip(local, tmp_path):
    spec = f"training:\n  name: local\n  data: {{train: '{local}'}}\n"
    with pytest.raises(SpecError) as caught:
        compile_text(str(tmp_path / "spec.yaml"), spec)
    assert "spec.s3_uri" not in {d.code for d in caught.value.diagnostics}
