"""Every field of the JobSpec proto, walked from its descriptors, given hostile values.

A user's mistake must end as a located SpecError (exit 1, INVALID_ARGUMENT), never as an
internal error (exit 3, INTERNAL): empty, huge, wrong-typed, deeply nested values, every
enum value, and groups with one member missing. The driver runs to the end (lowering and
botocore's check included), from JSON text as a client would send it.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from trainspec.compiler import SpecError, compile_text
from trainspec.v1 import job_spec_pb2

TRAINING: dict[str, Any] = {
    "name": "hostile",
    "model": {"framework": {"name": "pytorch", "version": "2.1", "entry_point": "train.py"}},
    "data": {
        "train": {
            "uri": "s3://bucket-a/train/",
            "input_mode": "FILE",
            "content_type": "text/csv",
            "compression": "NONE",
            "s3_data_type": "S3_PREFIX",
            "distribution": "FULLY_REPLICATED",
            "record_wrapper": "NONE",
            "shuffle_seed": 1,
        },
        "efs": {
            "file_system": {
                "type": "EFS",
                "id": "fs-12345678",
                "directory_path": "/data",
                "read_write": False,
            }
        },
    },
    "compute": {
        "instance_type": "ml.g5.2xlarge",
        "instance_count": 2,
        "volume_size_gb": 50,
        "spot": True,
    },
    "per_device_batch_size": 8,
    "hyperparameters": {"epochs": 2, "lr": 0.01, "flag": True, "opt": "adam"},
    "metrics": [{"name": "val:loss", "regex": "loss: ([0-9.]+)"}],
    "stopping": {
        "max_runtime_seconds": 3600,
        "max_wait_seconds": 7200,
        "max_pending_seconds": 7200,
    },
    "output": {"path": "s3://bucket-a/out/", "kms_key_id": "alias/key", "compression": "GZIP"},
    "checkpoint": {"s3_uri": "s3://bucket-a/ckpt/", "local_path": "/opt/ml/checkpoints"},
    "role_arn": "arn:aws:iam::123456789012:role/Trainer",
    "network": {
        "security_group_ids": ["sg-0123abcd"],
        "subnets": ["subnet-0123abcd"],
        "network_isolation": False,
        "inter_container_encryption": True,
    },
    "environment": {"FOO": "bar"},
    "tags": {"team": "ml"},
    "sifting": {"mode": "PRUNE", "keep_fraction": 0.7, "anneal_fraction": 0.1},
    "distribution": {"type": "TORCH_DISTRIBUTED", "processes_per_host": 1},
    "region": "us-east-1",
    "max_retry_attempts": 1,
}

TUNING: dict[str, Any] = {
    "name": "hostile-tune",
    "training": TRAINING,
    "objective": {"metric": "val:loss", "type": "MINIMIZE"},
    "ranges": {
        "lr": {"continuous": {"min": 0.001, "max": 0.1, "scaling": "LOGARITHMIC"}},
        "opt": {"categorical": {"values": ["adam", "sgd"]}},
        "epochs": {"integer": {"min": 1, "max": 5}},
    },
    "strategy": "BAYESIAN",
    "early_stopping": "OFF",
    "limits": {"max_jobs": 10, "max_parallel_jobs": 2, "max_runtime_seconds": 36000},
    "completion": {
        "target_objective_value": 0.1,
        "max_jobs_not_improving": 5,
        "convergence_detection": True,
    },
    "warm_start": {"parents": ["parent-job"], "type": "IDENTICAL_DATA_AND_ALGORITHM"},
    "random_seed": 1,
}

BASES = {"training": {"training": TRAINING}, "tuning": {"tuning": TUNING}}
# Without the EFS channel, whose "needs a VPC" error would hide what a partial VPC does.
S3_ONLY = {"training": {**TRAINING, "data": {"train": TRAINING["data"]["train"]}}}


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


LONG = "x" * 5000
HUGE = "y" * 200_000
ANY_TYPE = [None, [], {}, [1, 2], {"a": 1}, _nested(20), _nested(70)]
STRINGS = ["", " ", "x" * 257, LONG, HUGE, "s3//b/x/", "S3://Bucket/x", "\u0000", "💥", 0, True]
INTEGERS = [0, -1, 2**31, -(2**63), 10**30, 10**400, 1.5, 1e308, "12", True]
NUMBERS = [0, -1.0, 1e308, -1e308, 5e-324, 10**30, "nan", True]
BOOLS = ["yes", 2, 0.5]


def _hostile(field: FieldDescriptor, as_item: bool = False) -> list[Any]:
    """Values for one field (or, `as_item`, for one item of a list or map field)."""
    message = field.message_type
    if not as_item and message is not None and message.GetOptions().map_entry:
        item = message.fields_by_name["value"]
        one = _hostile(item, as_item=True)[:6]
        return [
            *ANY_TYPE,
            "x",
            {"": "x"},
            {"k" * 300: "x"},
            {f"k{i}": "x" for i in range(101)},
            {f"k{i}": "x" for i in range(1000)},
            *({"k": value} for value in one),
        ]
    if not as_item and field.is_repeated:
        one = _hostile(field, as_item=True)[:6]
        return [*ANY_TYPE, "x", [None], ["x"] * 101, ["x"] * 1000, *([v] for v in one)]
    if message is not None:
        if message.full_name == "google.protobuf.Value":
            return [*ANY_TYPE, "", LONG, HUGE, 10**30, 1e308]
        return [*ANY_TYPE, "x", 5, {"unknown_field": 1}]
    if field.enum_type is not None:
        names = [v.name for v in field.enum_type.values]
        return [*ANY_TYPE, *names, "bogus", "", 3, 99, True]
    by_type = {
        FieldDescriptor.TYPE_STRING: STRINGS,
        FieldDescriptor.TYPE_BOOL: BOOLS,
        FieldDescriptor.TYPE_DOUBLE: NUMBERS,
        FieldDescriptor.TYPE_FLOAT: NUMBERS,
    }
    return [*ANY_TYPE, *by_type.get(field.type, INTEGERS)]


def _walk(descriptor: Descriptor, prefix: tuple) -> Iterator[tuple[tuple, FieldDescriptor]]:
    """Every field path below `descriptor`; map and list items step in as "k" and 0."""
    for field in descriptor.fields:
        path = (*prefix, field.name)
        yield path, field
        message = field.message_type
        if message is None or message.full_name.startswith("google.protobuf."):
            continue
        if message.GetOptions().map_entry:
            value = message.fields_by_name["value"]
            if value.message_type is not None and value.message_type.full_name.startswith(
                "trainspec."
            ):
                yield from _walk(value.message_type, (*path, "k"))
            continue
        if field.is_repeated:
            yield from _walk(message, (*path, 0))
        elif message.full_name != "trainspec.v1.TrainingJobSpec" or len(prefix) < 2:
            yield from _walk(message, path)


def _leaves(tree: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path of a base spec, to drop one at a time (groups with a member missing)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*prefix, key)
            yield from _leaves(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield (*prefix, index)
            yield from _leaves(value, (*prefix, index))


def _with(tree: dict, path: tuple, value: Any, *, drop: bool = False) -> dict:
    out = copy.deepcopy(tree)
    node: Any = out
    for part, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            while len(node) <= part:
                node.append(copy.deepcopy(empty))
            if not isinstance(node[part], dict | list):
                node[part] = empty
            node = node[part]
        else:
            if not isinstance(node.get(part), dict | list):
                node[part] = empty
            node = node[part]
    last = path[-1]
    if drop:
        del node[last]
    elif isinstance(node, list):
        while len(node) <= last:
            node.append(None)
        node[last] = value
    else:
        node[last] = value
    return out


def _compile(tree: dict, tmp_path) -> str:
    """ "ok", or the SpecError's codes; anything else fails the test with the spec."""
    text = json.dumps(tree)
    try:
        compile_text(str(tmp_path / "spec.json"), text)
    except SpecError as error:
        assert error.diagnostics, text[:300]
        for diagnostic in error.diagnostics:
            assert diagnostic.location is not None, (diagnostic, text[:300])
            assert diagnostic.message, diagnostic
        return ",".join(sorted({d.code for d in error.diagnostics}))
    return "ok"


def test_the_bases_compile(tmp_path):
    for base in (*BASES.values(), S3_ONLY):
        assert _compile(base, tmp_path) == "ok"


FIELDS = sorted(
    {path: field for path, field in _walk(job_spec_pb2.JobSpec.DESCRIPTOR, ())}.items(),
    key=lambda item: [str(p) for p in item[0]],
)


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[".".join(map(str, p)) for p, _ in FIELDS])
def test_hostile_values_are_spec_errors(path, field, tmp_path):
    base = BASES[path[0]]
    failures = []
    for value in _hostile(field):
        tree = _with(base, path, value)
        try:
            _compile(tree, tmp_path)
        except Exception as error:  # collect every failure of the field
            failures.append(f"{str(value)[:60]!r}: {type(error).__name__}: {str(error)[:300]}")
    assert not failures, "\n".join(failures)


DROP_BASES = {**BASES, "training-s3": S3_ONLY}


@pytest.mark.parametrize("name", sorted(DROP_BASES))
def test_a_group_missing_any_one_member_is_a_spec_error_or_valid(name, tmp_path):
    base = DROP_BASES[name]
    failures = []
    for path in _leaves(base):
        try:
            _compile(_with(base, path, None, drop=True), tmp_path)
        except Exception as error:  # collect every failure
            failures.append(f"without {'.'.join(map(str, path))}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)
