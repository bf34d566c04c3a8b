"""Job names: the spec's name plus a digest of the request, within SageMaker's limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from trainspec.compiler import SpecError, compile_file
from trainspec.compiler.lower._job_name import name_job, request_suffix, upload_renames

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "examples/digits/job.yaml"
TUNE = ROOT / "examples/digits/tune.yaml"


def request(plan) -> dict:
    return json.loads(plan.sagemaker_request_json)


def test_same_spec_same_name_changed_spec_new_name():
    first, again = compile_file(JOB), compile_file(JOB)
    changed = compile_file(JOB, overrides=["training.hyperparameters.epochs=6"])
    name = request(first)["TrainingJobName"]
    assert re.fullmatch(r"digits-mlp-[0-9a-f]{8}", name)
    assert request(again)["TrainingJobName"] == name
    assert request(changed)["TrainingJobName"] != name
    assert request(changed)["TrainingJobName"].startswith("digits-mlp-")


def test_suffix_is_the_digest_of_the_request_with_the_spec_name():
    lowered = {"TrainingJobName": "job", "HyperParameters": {"epochs": "3"}}
    suffix = request_suffix(lowered)
    assert suffix == request_suffix(dict(reversed(lowered.items())))  # canonical JSON
    assert suffix != request_suffix({**lowered, "HyperParameters": {"epochs": "4"}})
    named = name_job("CreateTrainingJob", lowered, suffix, {})
    assert named == {"TrainingJobName": f"job-{suffix}", "HyperParameters": {"epochs": "3"}}
    assert lowered["TrainingJobName"] == "job"  # the input is not changed


def test_only_planned_upload_locations_move():
    renames = upload_renames(
        ["s3://b/jobs/job/input/train/", "s3://b/jobs/job/source/sourcedir.tar.gz"],
        "s3://b/jobs/",
        "job",
        "0123abcd",
    )
    assert renames == {
        "s3://b/jobs/job/input/train/": "s3://b/jobs/job-0123abcd/input/train/",
        "s3://b/jobs/job/source/sourcedir.tar.gz": "s3://b/jobs/job-0123abcd/source/sourcedir.tar.gz",
    }
    own = "s3://b/jobs/job/input/extra/"  # the user's own URI under the same prefix
    lowered = {"TrainingJobName": "job", "A": [own, "s3://b/jobs/job/input/train/"]}
    named = name_job("CreateTrainingJob", lowered, "0123abcd", renames)
    assert named["A"] == [own, "s3://b/jobs/job-0123abcd/input/train/"]


def test_uploads_and_artifact_carry_the_job_name():
    plan = compile_file(JOB)
    sent = request(plan)
    name = sent["TrainingJobName"]
    assert plan.model_artifact_uri == f"s3://acme-ml-artifacts/jobs/{name}/output/model.tar.gz"
    assert sent["HyperParameters"]["sagemaker_submit_directory"] == (
        f"s3://acme-ml-artifacts/jobs/{name}/source/sourcedir.tar.gz"
    )
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]]
    assert uris == [
        f"s3://acme-ml-artifacts/jobs/{name}/input/train/",
        f"s3://acme-ml-artifacts/jobs/{name}/input/validation/",
    ]


def test_tuning_artifact_is_a_pattern_over_sagemakers_training_job_names():
    plan = compile_file(TUNE)
    name = request(plan)["HyperParameterTuningJobName"]
    assert re.fullmatch(r"digits-tune-[0-9a-f]{8}", name)
    # SageMaker names the tuning job's training jobs <tuning job>-<NNN>-<8 hex>.
    assert plan.model_artifact_uri == f"s3://acme-ml-artifacts/jobs/{name}-*/output/model.tar.gz"


@pytest.mark.parametrize(
    ("spec", "field", "longest", "sagemaker_limit", "request_field"),
    [
        (JOB, "training.name", 54, 63, "TrainingJobName"),
        (TUNE, "tuning.name", 23, 32, "HyperParameterTuningJobName"),
    ],
)
def test_names_fit_sagemakers_limit_with_the_suffix(
    spec, field, longest, sagemaker_limit, request_field
):
    plan = compile_file(spec, overrides=[f"{field}={'a' * longest}"])
    assert len(request(plan)[request_field]) == sagemaker_limit
    with pytest.raises(SpecError) as caught:
        compile_file(spec, overrides=[f"{field}={'a' * (longest + 1)}"])
    (problem,) = caught.value.diagnostics
    assert (problem.code, problem.field_path) == ("spec.length", field)
    assert f"at most {longest}" in problem.message
    assert "8 hex digits" in problem.hint


def test_warm_start_example_names_its_parents_as_sagemaker_knows_them():
    """The warm-start example continues from the jobs the other two examples submit: its
    parents are those plans' names (update it when either example changes)."""
    warm = compile_file(ROOT / "examples/tuning/warm-start.yaml")
    parents = [
        request(compile_file(ROOT / f"examples/tuning/{name}.yaml"))["HyperParameterTuningJobName"]
        for name in ("mnist-autotune", "hyperband")
    ]
    config = request(warm)["WarmStartConfig"]
    assert [p["HyperParameterTuningJobName"] for p in config["ParentHyperParameterTuningJobs"]] == (
        parents
    )
