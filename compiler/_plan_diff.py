"""What changed between two plans, as data: grouped changes with their origins on both
sides, the cost and duration envelope's delta, and the risks a reviewer must see.

Pure functions over `trainspec.v1.Plan` messages: no compile, no files, no git. The CLI's
`diff` and `lock --check` render a `PlanDiff`; the gRPC DiffPlans lists the same leaves
(`changed_leaves`) as PlanChange messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from trainspec.compiler._tree import whole_numbers

# The parts of a plan that say what would run. Provenance, warnings, data reports,
# versions and the digest describe how the plan was made, so two plans for the same job
# made by different compiler versions still diff as empty.
COMPARED = (
    "job",
    "sagemaker_operation",
    "sagemaker_request",
    "model_artifact_uri",
    "batch_sizes",
    "envelope",
)

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

# Groups in the order a reviewer reads them; `group_of` puts every path in one.
GROUPS = (
    "compute",
    "data",
    "hyperparameters",
    "tuning",
    "cost envelope",
    "security",
    "job",
    "request",
)

# Field-path prefixes (training paths; a tuning job's `tuning.training.` is read as
# `training.`) -> group. The longest matching prefix wins, so the security settings
# inside `compute` and `output` land in security.
_GROUP_PREFIXES = {
    "training.compute.": "compute",
    "training.distribution.": "compute",
    "training.per_device_batch_size": "compute",
    "batch_sizes.": "compute",
    "training.data.": "data",
    "training.hyperparameters.": "hyperparameters",
    "training.batch_size_hyperparameter": "hyperparameters",
    "training.sifting.": "hyperparameters",
    "tuning.": "tuning",
    "envelope.": "cost envelope",
    "training.role_arn": "security",
    "training.network.": "security",
    "training.compute.volume_kms_key_id": "security",
    "training.output.kms_key_id": "security",
    "sagemaker_request.": "request",
    "sagemaker_operation": "request",
    "model_artifact_uri": "request",
}

# The risks `diff` can flag; a defaults file's `review.ignore` turns any of them off.
RISKS = {
    "cost_increase": "the worst-case cost rises by more than the review threshold",
    "instance_family_change": "the instance family changes (performance, quotas, images)",
    "spot_off": "managed spot training is turned off (on-demand prices)",
    "encryption_off": "encryption (inter-container traffic or a KMS key) is turned off",
    "network_isolation_off": "network isolation or the VPC is turned off",
    "role_change": "the IAM role the job assumes changes",
    "data_elsewhere": "a data channel points somewhere else",
}

DEFAULT_COST_INCREASE_PERCENT = 10.0

_ORIGIN_KINDS = {
    1: "built-in",
    2: "catalog",
    3: "defaults",
    4: "spec",
    5: "--set",
    6: "inferred",
}


@dataclass(frozen=True)
class ReviewPolicy:
    """What counts as a risk: a defaults file's `review` block (trainspec.v1.ReviewPolicy)."""

    cost_increase_percent: float = DEFAULT_COST_INCREASE_PERCENT
    cost_increase_amount: float | None = None  # in the envelope's currency; None: off
    ignore: frozenset[str] = frozenset()

    @classmethod
    def from_tree(cls, tree: Mapping[str, Any] | None) -> ReviewPolicy:
        """The policy of a validated `review` block (None: the defaults)."""
        tree = tree or {}
        percent = tree.get("cost_increase_percent")
        amount = tree.get("cost_increase_amount")
        return cls(
            cost_increase_percent=(
                DEFAULT_COST_INCREASE_PERCENT if percent is None else float(percent)
            ),
            cost_increase_amount=None if amount is None else float(amount),
            ignore=frozenset(tree.get("ignore") or ()),
        )


@dataclass(frozen=True)
class Change:
    """One leaf that differs; `old`/`new` are ABSENT where the side lacks it."""

    group: str
    path: str
    old: Any
    new: Any
    old_origin: str = ""
    new_origin: str = ""


@dataclass(frozen=True)
class Envelope:
    """The figures of a cost envelope a reviewer compares."""

    currency: str
    worst_case_cost: float
    expected_cost: float
    worst_case_seconds: int
    expected_seconds: int


@dataclass(frozen=True)
class Risk:
    code: str
    path: str
    message: str


@dataclass(frozen=True)
class PlanDiff:
    """The difference between an old and a new plan of one spec (either may be None:
    the spec was added or removed)."""

    old_envelope: Envelope | None
    new_envelope: Envelope | None
    changes: tuple[Change, ...] = ()
    risks: tuple[Risk, ...] = ()
    status: str = "unchanged"  # unchanged, changed, added, removed
    operation: str = ""
    versions: tuple[str, str] = field(default=("", ""))  # what made each side

    @property
    def different(self) -> bool:
        return self.status != "unchanged"

    def grouped(self) -> list[tuple[str, list[Change]]]:
        """The changes by group, in GROUPS order, leaving out empty groups."""
        return [
            (name, [c for c in self.changes if c.group == name])
            for name in GROUPS
            if any(c.group == name for c in self.changes)
        ]


# -- leaves -----------------------------------------------------------------------------


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def changed_leaves(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf path whose value differs (ABSENT for a missing side), sorted by path."""
    found: list[tuple[str, Any, Any]] = []
    _walk(path, old, new, found)
    return sorted(found, key=lambda change: change[0])


def _walk(path: str, old: Any, new: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _walk(_join(path, key), old.get(key, ABSENT), new.get(key, ABSENT), out)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            _walk(
                _join(path, index),
                old[index] if index < len(old) else ABSENT,
                new[index] if index < len(new) else ABSENT,
                out,
            )
    elif old != new or type(old) is not type(new):
        out.append((path, old, new))


def proto_tree(plan: Any) -> dict[str, Any]:
    """The compared parts of a plan as its proto3 JSON mapping (what DiffPlans compares)."""
    tree = json_format.MessageToDict(plan, preserving_proto_field_name=True)
    return {name: tree[name] for name in COMPARED if name in tree}


def review_tree(plan: Any) -> dict[str, Any]:
    """The compared parts as a reviewer reads them: the request typed as botocore types
    it, whole numbers without `.0`, 64-bit integers as numbers, `job.` left off."""
    tree = proto_tree(plan)
    job = tree.pop("job", {})
    if plan.sagemaker_request_json:
        tree["sagemaker_request"] = json.loads(plan.sagemaker_request_json)
    envelope = tree.get("envelope")
    if envelope:
        for key in ("worst_case_seconds", "expected_seconds"):
            if key in envelope:
                envelope[key] = int(envelope[key])
    return whole_numbers({**job, **tree})


# -- groups and origins -----------------------------------------------------------------


def training_path(path: str) -> str:
    """A tuning job's training fields read as a training job's."""
    return (
        "training." + path[len("tuning.training.") :]
        if path.startswith("tuning.training.")
        else path
    )


def group_of(path: str) -> str:
    path = training_path(path)
    best, group = "", "job"
    for prefix, name in _GROUP_PREFIXES.items():
        matches = path.startswith(prefix) or path == prefix.rstrip(".")
        if matches and len(prefix) > len(best):
            best, group = prefix, name
    return group


def origin_text(entry: Any) -> str:
    """A ValueOrigin as one line: `spec a.yaml:3:5`, `inferred rule:x (why)`."""
    where = ""
    if entry.location.path:
        loc = entry.location
        where = f"{loc.path}:{loc.line}:{loc.column}" if loc.line else loc.path
    kind = _ORIGIN_KINDS.get(entry.kind, "?")
    if where.startswith(kind + " "):  # an override's location is its `--set ...` text
        kind = ""
    text = " ".join(p for p in (kind, where or entry.source) if p)
    return text + (f" ({entry.reason})" if entry.reason else "")


def _origins(plan: Any) -> dict[str, str]:
    return {entry.field_path: origin_text(entry) for entry in plan.provenance}


def _origin_of(path: str, origins: Mapping[str, str]) -> str:
    """The origin recorded for the path or, for a leaf inside a value (a list item, a map
    entry), for the nearest path above it."""
    probe = path
    while probe:
        if probe in origins:
            return origins[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return ""


# -- envelope and risks -----------------------------------------------------------------


def envelope_of(plan: Any) -> Envelope:
    e = plan.envelope
    return Envelope(
        currency=e.currency or "USD",
        worst_case_cost=round(e.worst_case_cost, 2),
        expected_cost=round(e.expected_cost, 2),
        worst_case_seconds=int(e.worst_case_seconds),
        expected_seconds=int(e.expected_seconds),
    )


def _training(tree: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    if "tuning" in tree:
        return "tuning.training.", tree["tuning"].get("training", {})
    return "training.", tree.get("training", {})


def _families(training: Mapping[str, Any]) -> set[str]:
    compute = training.get("compute", {})
    types = [compute.get("instance_type", "")]
    types += [g.get("instance_type", "") for g in compute.get("instance_groups", [])]
    return {t.split(".")[1] for t in types if t.count(".") >= 2}


def _location(channel: Any) -> Any:
    if isinstance(channel, Mapping):
        fs = channel.get("file_system") or {}
        return channel.get("uri") or (fs.get("id"), fs.get("directory_path"))
    return channel


def _risks(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_env: Envelope,
    new_env: Envelope,
    policy: ReviewPolicy,
) -> list[Risk]:
    prefix, before = _training(old)
    new_prefix, after = _training(new)
    if prefix != new_prefix:
        prefix = new_prefix  # the job changed kind: report the new job's paths
    found: list[Risk] = []

    def get(tree: Mapping[str, Any], *keys: str) -> Any:
        for key in keys:
            tree = tree.get(key) or {} if isinstance(tree, Mapping) else {}
        return tree or None

    rise = new_env.worst_case_cost - old_env.worst_case_cost
    if rise > 0:
        percent = rise / old_env.worst_case_cost * 100 if old_env.worst_case_cost else None
        over_percent = percent is None or percent > policy.cost_increase_percent
        over_amount = policy.cost_increase_amount is not None and (
            rise > policy.cost_increase_amount
        )
        if over_percent or over_amount:
            share = f", +{percent:.1f}%" if percent is not None else ""
            found.append(
                Risk(
                    "cost_increase",
                    "envelope.worst_case_cost",
                    f"worst-case cost {old_env.worst_case_cost:.2f} -> "
                    f"{new_env.worst_case_cost:.2f} {new_env.currency} "
                    f"(+{rise:.2f}{share}; threshold {policy.cost_increase_percent:g}%"
                    + (
                        f" or {policy.cost_increase_amount:g} {new_env.currency}"
                        if policy.cost_increase_amount is not None
                        else ""
                    )
                    + ")",
                )
            )
    old_families, new_families = _families(before), _families(after)
    if old_families and new_families and old_families != new_families:
        found.append(
            Risk(
                "instance_family_change",
                prefix + "compute.instance_type",
                f"instance family {', '.join(sorted(old_families))} -> "
                f"{', '.join(sorted(new_families))}",
            )
        )
    if get(before, "compute", "spot") and not get(after, "compute", "spot"):
        found.append(Risk("spot_off", prefix + "compute.spot", "spot training turned off"))
    if get(before, "network", "inter_container_encryption") and not get(
        after, "network", "inter_container_encryption"
    ):
        found.append(
            Risk(
                "encryption_off",
                prefix + "network.inter_container_encryption",
                "inter-container traffic encryption turned off",
            )
        )
    for keys, what in (
        (("compute", "volume_kms_key_id"), "the storage volume's KMS key"),
        (("output", "kms_key_id"), "the output's KMS key"),
    ):
        if get(before, *keys) and not get(after, *keys):
            found.append(Risk("encryption_off", prefix + ".".join(keys), f"{what} removed"))
    if get(before, "network", "network_isolation") and not get(
        after, "network", "network_isolation"
    ):
        found.append(
            Risk(
                "network_isolation_off",
                prefix + "network.network_isolation",
                "network isolation turned off",
            )
        )
    if get(before, "network", "subnets") and not get(after, "network", "subnets"):
        found.append(
            Risk(
                "network_isolation_off",
                prefix + "network.subnets",
                "the VPC config is removed: the job gets the internet",
            )
        )
    if before.get("role_arn") != after.get("role_arn"):
        found.append(
            Risk(
                "role_change",
                prefix + "role_arn",
                f"role {before.get('role_arn', '(none)')} -> {after.get('role_arn', '(none)')}",
            )
        )
    old_data, new_data = before.get("data", {}), after.get("data", {})
    for channel in sorted(new_data):
        where = _location(new_data[channel])
        if channel not in old_data:
            found.append(
                Risk("data_elsewhere", f"{prefix}data.{channel}", f"new channel reads {where}")
            )
        elif _location(old_data[channel]) != where:
            found.append(
                Risk(
                    "data_elsewhere",
                    f"{prefix}data.{channel}",
                    f"channel reads {_location(old_data[channel])} -> {where}",
                )
            )
    kept = [r for r in found if r.code not in policy.ignore]
    return sorted(kept, key=lambda r: (r.code, r.path, r.message))


# -- the diff ---------------------------------------------------------------------------


def _versions(plan: Any) -> str:
    catalogs = ", ".join(f"{k} {v}" for k, v in sorted(plan.versions.catalogs.items()))
    return f"trainspec {plan.versions.compiler}" + (f"; catalogs {catalogs}" if catalogs else "")


def diff_plans(old: Any | None, new: Any | None, policy: ReviewPolicy | None = None) -> PlanDiff:
    """The grouped changes from `old` to `new` (None: the spec does not exist there)."""
    policy = policy or ReviewPolicy()
    if old is None or new is None:
        present = new if old is None else old
        assert present is not None, "diff_plans needs at least one plan"
        return PlanDiff(
            old_envelope=None if old is None else envelope_of(old),
            new_envelope=None if new is None else envelope_of(new),
            status="added" if old is None else "removed",
            operation=present.sagemaker_operation,
            versions=(
                "" if old is None else _versions(old),
                "" if new is None else _versions(new),
            ),
        )
    old_tree, new_tree = review_tree(old), review_tree(new)
    old_origins, new_origins = _origins(old), _origins(new)
    changes = tuple(
        Change(
            group_of(path),
            path,
            before,
            after,
            _origin_of(path, old_origins) if before is not ABSENT else "",
            _origin_of(path, new_origins) if after is not ABSENT else "",
        )
        for path, before, after in changed_leaves(old_tree, new_tree)
    )
    old_env, new_env = envelope_of(old), envelope_of(new)
    risks = tuple(_risks(old_tree, new_tree, old_env, new_env, policy)) if changes else ()
    return PlanDiff(
        old_envelope=old_env,
        new_envelope=new_env,
        changes=changes,
        risks=risks,
        status="changed" if changes else "unchanged",
        operation=new.sagemaker_operation,
        versions=(_versions(old), _versions(new)),
    )


def risk_codes() -> Iterable[str]:
    return sorted(RISKS)
