"""The plan diff as data (compiler/_plan_diff.py) on compiled example plans."""

from pathlib import Path

import pytest
from trainspec.compiler import compile_file
from trainspec.compiler._plan_diff import (
    ABSENT,
    GROUPS,
    RISKS,
    ReviewPolicy,
    diff_plans,
    group_of,
)
from trainspec.compiler.check._validate import field_rules

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "examples/tuning/grid.yaml"


def compiled(overrides=()):
    return compile_file(GRID, overrides=list(overrides))


def test_a_plan_diffs_as_unchanged_with_itself():
    plan = compiled()
    result = diff_plans(plan, plan)
    assert (result.status, result.changes, result.risks) == ("unchanged", (), ())
    assert result.old_envelope == result.new_envelope


def test_a_tuning_jobs_training_fields_group_and_flag_as_a_training_jobs():
    old = compiled()
    new = compiled(["tuning.training.compute.instance_type=ml.p3.8xlarge"])
    result = diff_plans(old, new)
    changes = {c.path: c for c in result.changes}
    instance = changes["tuning.training.compute.instance_type"]
    assert (instance.group, instance.old, instance.new) == (
        "compute",
        "ml.g5.xlarge",
        "ml.p3.8xlarge",
    )
    assert instance.new_origin == "--set tuning.training.compute.instance_type=ml.p3.8xlarge"
    assert instance.old_origin.startswith("spec examples/tuning/grid.yaml:")
    gpus = changes["batch_sizes.gpus_per_instance"]
    assert (gpus.group, gpus.old, gpus.new) == ("compute", 1, 4)
    assert [r.code for r in result.risks] == ["cost_increase", "instance_family_change"]
    assert result.risks[1].path == "tuning.training.compute.instance_type"
    assert [name for name, _ in result.grouped()] == [
        g for g in GROUPS if g in {c.group for c in result.changes}
    ]
    ignored = diff_plans(old, new, ReviewPolicy(ignore=frozenset(RISKS)))
    assert ignored.risks == ()


def test_cost_thresholds_percent_and_amount():
    old = compiled()
    new = compiled(["tuning.training.stopping.max_runtime_seconds=3900"])  # +8.3%
    assert diff_plans(old, new).risks == ()
    low = ReviewPolicy(cost_increase_percent=5)
    assert [r.code for r in diff_plans(old, new, low).risks] == ["cost_increase"]
    amount = ReviewPolicy(cost_increase_amount=0.5)
    assert [r.code for r in diff_plans(old, new, amount).risks] == ["cost_increase"]
    assert diff_plans(new, old, low).risks == ()  # cheaper is never a risk


def test_added_and_removed_specs():
    plan = compiled()
    assert diff_plans(None, plan).status == "added"
    assert diff_plans(plan, None).status == "removed"
    assert diff_plans(plan, None).new_envelope is None


def test_removed_values_are_absent_on_their_side():
    old = compiled(["tuning.training.tags={owner: me}"])
    result = diff_plans(old, compiled())
    change = next(c for c in result.changes if c.path == "tuning.training.tags.owner")
    assert (change.old, change.new, change.new_origin) == ("me", ABSENT, "")


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("training.compute.volume_kms_key_id", "security"),
        ("tuning.training.network.subnets[0]", "security"),
        ("training.compute.instance_count", "compute"),
        ("batch_sizes.global_batch_size", "compute"),
        ("tuning.ranges.lr.continuous.max", "tuning"),
        ("envelope.worst_case_cost", "cost envelope"),
        ("sagemaker_request.ResourceConfig.InstanceType", "request"),
        ("training.stopping.max_runtime_seconds", "job"),
    ],
)
def test_groups(path, group):
    assert group_of(path) == group


def test_the_risks_the_defaults_file_may_ignore_are_the_risks_flagged():
    rules = field_rules()["rules"]["trainspec.v1.ReviewPolicy"]
    assert sorted(rules["ignore"]["item_allowed"]) == sorted(RISKS)
