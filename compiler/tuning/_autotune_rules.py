"""Autotune rules: load and validate catalog/hyperparameters.yaml into frozen rule objects."""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic, InternalError
from trainspec.compiler.catalog._yaml_data import read_packaged_yaml
from trainspec.compiler.check._fast_accept import compile_document

RULES_FILE = "hyperparameters.yaml"

_SCALINGS = ["AUTO", "LINEAR", "LOGARITHMIC", "REVERSE_LOGARITHMIC"]
_NUMBER = {"type": "number"}
_ID = {"type": "string", "required": True, "regex": r"[a-z][a-z0-9_.]*"}
_VERSION = {"type": "integer", "required": True, "min": 1}
_NAMES = {"type": "list", "schema": {"type": "string", "empty": False}}

_SCHEMA: dict[str, Any] = {
    "version": {"type": "integer", "required": True, "min": 1},
    "range_rules": {
        "type": "list",
        "required": True,
        "schema": {
            "type": "dict",
            "schema": {
                "id": _ID,
                "version": _VERSION,
                "names": {**_NAMES, "required": True, "minlength": 1},
                "type": {
                    "type": "string",
                    "required": True,
                    "allowed": ["integer", "continuous", "categorical"],
                },
                "scaling": {"type": "string", "allowed": _SCALINGS},
                "derive": {
                    "type": "dict",
                    "required": True,
                    "schema": {
                        "mode": {
                            "type": "string",
                            "required": True,
                            "allowed": ["scale", "shift", "fixed"],
                        },
                        "low": _NUMBER,
                        "high": _NUMBER,
                        "min": _NUMBER,
                        "max": _NUMBER,
                    },
                },
                "when_zero": {
                    "type": "dict",
                    "schema": {
                        "min": {**_NUMBER, "required": True},
                        "max": {**_NUMBER, "required": True},
                    },
                },
                "bounds": {
                    "type": "dict",
                    "required": True,
                    "schema": {
                        "min": {**_NUMBER, "required": True},
                        "max": {**_NUMBER, "required": True},
                    },
                },
                "round": {"type": "string", "allowed": ["none", "integer", "power_of_two"]},
                "per_device": {"type": "boolean"},
                "reason": {"type": "string", "required": True, "empty": False},
            },
        },
    },
    "never_tuned": {
        "type": "dict",
        "required": True,
        "schema": {
            "id": _ID,
            "version": _VERSION,
            "names": _NAMES,
            "prefixes": _NAMES,
            "suffixes": _NAMES,
        },
    },
    "strategy": {
        "type": "dict",
        "required": True,
        "schema": {
            "id": _ID,
            "version": _VERSION,
            "resource_names": {**_NAMES, "required": True},
            "sagemaker_resource_names": {**_NAMES, "required": True},
            "hyperband_min_resource": {"type": "integer", "required": True, "min": 1},
        },
    },
    "early_stopping": {
        "type": "dict",
        "required": True,
        "schema": {"id": _ID, "version": _VERSION},
    },
    "limits": {
        "type": "dict",
        "required": True,
        "schema": {
            "id": _ID,
            "version": _VERSION,
            **{
                key: {"type": "integer", "required": True, "min": 1}
                for key in (
                    "jobs_per_range",
                    "min_jobs",
                    "max_jobs",
                    "jobs_per_parallel",
                    "max_parallel",
                    "max_runtime_seconds",
                )
            },
        },
    },
    "completion": {
        "type": "dict",
        "required": True,
        "schema": {
            "id": _ID,
            "version": _VERSION,
            "min_not_improving": {"type": "integer", "required": True, "min": 3},
            "not_improving_fraction": {"type": "number", "required": True, "min": 0, "max": 1},
            "convergence_detection": {"type": "boolean", "required": True},
        },
    },
}


def normalize_name(name: str) -> str:
    """Hyperparameter names match case-blind, with `-` and `.` read as `_`."""
    return name.strip().lower().replace("-", "_").replace(".", "_")


class Derive(abc.ABC):
    """How a rule turns the static value into raw range bounds (before clipping)."""

    @abc.abstractmethod
    def bounds(self, value: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class ScaleDerive(Derive):
    """`[v * low, v * high]`, with a fixed range for v == 0 when one is given."""

    low: float
    high: float
    when_zero: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"scale needs 0 < low < high, got low={self.low} high={self.high}")

    def bounds(self, value: float) -> tuple[float, float]:
        if value == 0 and self.when_zero is not None:
            return self.when_zero
        lo, hi = value * self.low, value * self.high
        return (min(lo, hi), max(lo, hi))


@dataclass(frozen=True)
class ShiftDerive(Derive):
    """`[v + low, v + high]`."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"shift needs low < high, got low={self.low} high={self.high}")

    def bounds(self, value: float) -> tuple[float, float]:
        return (value + self.low, value + self.high)


@dataclass(frozen=True)
class FixedDerive(Derive):
    """`[min, max]` whatever the static value."""

    min: float
    max: float

    def __post_init__(self) -> None:
        if not self.min < self.max:
            raise ValueError(f"fixed needs min < max, got min={self.min} max={self.max}")

    def bounds(self, value: float) -> tuple[float, float]:
        return (self.min, self.max)


@dataclass(frozen=True)
class RangeRule:
    """One Autotune range rule: which names it matches and how the range follows the value."""

    id: str
    version: int
    names: tuple[str, ...]
    type: str  # "integer" | "continuous" | "categorical" (powers of two)
    scaling: str  # short Scaling name, e.g. "LOGARITHMIC"; "" for categorical
    derive: Derive
    hard_min: float
    hard_max: float
    round: str
    per_device: bool
    reason: str

    @property
    def source(self) -> str:
        return f"rule:{self.id}@v{self.version}"

    def derive_range(self, value: float, *, scale: int = 1) -> tuple[float, float] | None:
        """Bounds for a static value (already divided by `scale` devices), times `scale`.

        None when the clipped range is empty, so the name is better left static.
        """
        lo, hi = self.derive.bounds(value)
        lo, hi = max(lo, self.hard_min), min(hi, self.hard_max)
        if self.type == "integer":
            if self.round == "power_of_two":
                lo = 2 ** math.floor(math.log2(lo)) if lo >= 1 else 1
                hi = 2 ** math.ceil(math.log2(hi)) if hi >= 1 else 1
                lo, hi = max(lo, self.hard_min), min(hi, self.hard_max)
            lo, hi = math.ceil(lo), math.floor(hi)
            lo, hi = int(lo) * scale, int(hi) * scale
        else:
            # 0.003 * 10 is 0.030000000000000002; plans should read 0.03.
            lo, hi = float(f"{lo:.12g}"), float(f"{hi:.12g}")
        if self.scaling in ("LOGARITHMIC",) and lo <= 0:
            return None
        if not lo < hi:
            return None
        return (lo, hi)

    def derive_values(self, value: float, *, scale: int = 1) -> tuple[int, ...] | None:
        """A categorical rule's values for a static value already divided by `scale`
        devices: every power of two in the derived, clipped range, each times `scale`.

        Categorical, so a trial never runs a batch that is not a power of two per device
        (an integer range over the scaled bounds let trials pick 413 or 229). None when
        fewer than two values remain."""
        lo, hi = self.derive.bounds(value)
        lo, hi = max(lo, self.hard_min, 1), min(hi, self.hard_max)
        if hi < lo:
            return None
        exponents = range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1)
        values = tuple(2**e * scale for e in exponents)
        return values if len(values) >= 2 else None


@dataclass(frozen=True)
class Setting:
    """A setting rule (strategy, early stopping, limits, completion) with its parameters."""

    id: str
    version: int
    params: Mapping[str, Any]

    @property
    def source(self) -> str:
        return f"rule:{self.id}@v{self.version}"

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


@dataclass(frozen=True)
class Rules:
    """The whole rules file, ready to match names."""

    version: int
    range_rules: tuple[RangeRule, ...]
    never_tuned: Setting
    strategy: Setting
    early_stopping: Setting
    limits: Setting
    completion: Setting

    @property
    def rules_version(self) -> str:
        """The stamp a plan records for this rules file."""
        return f"hyperparameters@v{self.version}"

    def match(self, name: str) -> RangeRule | None:
        key = normalize_name(name)
        for rule in self.range_rules:
            if key in rule.names:
                return rule
        return None

    def is_resource(self, name: str) -> bool:
        return normalize_name(name) in self.strategy["resource_names"]

    def is_never_tuned(self, name: str) -> bool:
        key = normalize_name(name)
        nt = self.never_tuned
        return (
            key in nt["names"]
            or self.is_resource(name)
            or any(key.startswith(p) for p in nt["prefixes"])
            or any(key.endswith(s) for s in nt["suffixes"])
        )


def rules_from_data(data: Any, *, source: str = RULES_FILE) -> Rules:
    """Validate a parsed rules file and build `Rules`; InternalError names the bad rule."""
    if not (isinstance(data, dict) and _accepts_rules()(data)):
        _raise_schema_problems(data, source)  # cerberus says what is wrong, if anything
    seen: dict[str, str] = {}
    range_rules = []
    for index, raw in enumerate(data["range_rules"]):
        try:
            rule = _range_rule(raw)
        except ValueError as exc:
            raise InternalError(
                f"{source} is invalid: range_rules[{index}] ({raw['id']}): {exc}"
            ) from None
        for name in rule.names:
            if name in seen:
                raise InternalError(
                    f"{source} is invalid: name {name!r} is in rules {seen[name]!r} and {rule.id!r}"
                )
            seen[name] = rule.id
        range_rules.append(rule)

    def setting(key: str) -> Setting:
        raw = dict(data[key])
        return Setting(
            raw.pop("id"),
            raw.pop("version"),
            {
                k: tuple(normalize_name(n) for n in v) if isinstance(v, list) else v
                for k, v in raw.items()
            },
        )

    never_tuned = setting("never_tuned")
    never_tuned = Setting(
        never_tuned.id,
        never_tuned.version,
        {k: never_tuned.params.get(k, ()) for k in ("names", "prefixes", "suffixes")},
    )
    return Rules(
        version=data["version"],
        range_rules=tuple(range_rules),
        never_tuned=never_tuned,
        strategy=setting("strategy"),
        early_stopping=setting("early_stopping"),
        limits=setting("limits"),
        completion=setting("completion"),
    )


@functools.cache
def _accepts_rules() -> Callable[[Any], bool]:
    """The schema as a fast accept-only predicate (`_fast_accept`): a valid rules file
    needs no cerberus walk, which cost every process ~25 ms."""
    return compile_document(_SCHEMA, {})


def _raise_schema_problems(data: Any, source: str) -> None:
    """InternalError with every schema problem cerberus finds in `data`."""
    import cerberus

    validator = cerberus.Validator(_SCHEMA)
    if isinstance(data, dict) and validator.validate(data):
        return  # valid after all: the fast check may decline what it does not model
    errors = validator.errors if isinstance(data, dict) else {"": ["not a mapping"]}
    diagnostics = [
        Diagnostic(
            code="catalog.hyperparameters.invalid",
            field_path=path,
            message=message,
        )
        for path, message in _flatten_errors(errors, data)
    ]
    where = "; ".join(f"{d.field_path}: {d.message}" for d in diagnostics)
    raise InternalError(f"{source} is invalid: {where}", diagnostics)


def _range_rule(raw: Mapping[str, Any]) -> RangeRule:
    derive_raw = raw["derive"]
    mode = derive_raw["mode"]
    need = ("min", "max") if mode == "fixed" else ("low", "high")
    missing = [k for k in need if k not in derive_raw]
    if missing:
        raise ValueError(f"derive.mode {mode} needs derive.{' and derive.'.join(missing)}")
    derive: Derive
    if mode == "scale":
        zero = raw.get("when_zero")
        derive = ScaleDerive(
            derive_raw["low"],
            derive_raw["high"],
            (zero["min"], zero["max"]) if zero else None,
        )
    elif mode == "shift":
        derive = ShiftDerive(derive_raw["low"], derive_raw["high"])
    else:
        derive = FixedDerive(derive_raw["min"], derive_raw["max"])
    bounds = raw["bounds"]
    if raw["type"] == "categorical":
        if raw.get("round") != "power_of_two" or "scaling" in raw:
            raise ValueError("a categorical rule needs round: power_of_two and no scaling")
    elif "scaling" not in raw:
        raise ValueError(f"a {raw['type']} rule needs scaling")
    if not bounds["min"] < bounds["max"]:
        raise ValueError(f"bounds need min < max, got {bounds['min']} and {bounds['max']}")
    if raw.get("scaling") == "REVERSE_LOGARITHMIC" and (
        raw["type"] != "continuous" or bounds["min"] < 0 or bounds["max"] >= 1
    ):
        raise ValueError("REVERSE_LOGARITHMIC needs a continuous rule with bounds in [0, 1)")
    if raw.get("scaling") == "LOGARITHMIC" and bounds["min"] <= 0:
        raise ValueError("LOGARITHMIC needs bounds.min > 0")
    return RangeRule(
        id=raw["id"],
        version=raw["version"],
        names=tuple(normalize_name(n) for n in raw["names"]),
        type=raw["type"],
        scaling=raw.get("scaling", ""),
        derive=derive,
        hard_min=bounds["min"],
        hard_max=bounds["max"],
        round=raw.get("round", "none"),
        per_device=raw.get("per_device", False),
        reason=raw["reason"],
    )


def _flatten_errors(errors: Any, data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Cerberus's nested error tree -> (path, message), naming list items by their id."""
    out: list[tuple[str, str]] = []
    for key, values in errors.items():
        here = data.get(key) if isinstance(data, dict) else None
        if isinstance(key, int) and isinstance(data, list) and key < len(data):
            here = data[key]
            ident = here.get("id") if isinstance(here, dict) else None
            label = f"{prefix}[{key}]" + (f" ({ident})" if ident else "")
        else:
            label = f"{prefix}.{key}" if prefix else str(key)
        for value in values:
            if isinstance(value, dict):
                out.extend(_flatten_errors(value, here, label))
            else:
                out.append((label, str(value)))
    return out


@functools.cache
def load_rules() -> Rules:
    """The packaged rules file, loaded and validated once."""
    return rules_from_data(read_packaged_yaml(RULES_FILE))


def rules_version() -> str:
    """The version stamp of the packaged rules, for the plan's `versions`."""
    return load_rules().rules_version
