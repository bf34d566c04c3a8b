"""The runner's edge: read TRAINSPEC_SIFTING and build the matching loader for a script."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ._config import (
    LossConfig,
    PruneConfig,
    RandomDropConfig,
    RelativeProbabilisticSiftConfig,
    SiftConfig,
    SiftingBaseConfig,
)

ENV_VAR = "TRAINSPEC_SIFTING"

_MODES = {
    "SIFTING_MODE_UNSPECIFIED": "relative",
    "SIFTING_MODE_RELATIVE_PROBABILISTIC": "relative",
    "SIFTING_MODE_PRUNE": "prune",
    "SIFTING_MODE_RANDOM": "random",
}
_MODE_NUMBERS = dict(enumerate(_MODES))
# Field -> the modes it applies to; proto3 JSON accepts the lowerCamelCase spelling too.
_FIELDS = {
    "mode": {"relative", "prune", "random"},
    "beta_value": {"relative"},
    "loss_history_length": {"relative"},
    "sift_delay": {"relative"},
    "repeat_delay_per_epoch": {"relative"},
    "keep_fraction": {"prune", "random"},
    "anneal_fraction": {"prune"},
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_ALIASES = {**{f: f for f in _FIELDS}, **{_camel(f): f for f in _FIELDS}}


def _prefix(message: str) -> str:
    return f"{ENV_VAR}: {message}"


def config_from_json(text: str) -> SiftConfig:
    """Parse the proto3 JSON of a trainspec.v1.Sifting message into a config object.

    Field names may be snake_case or lowerCamelCase. A field at its proto3 zero value
    counts as absent; absent fields take the defaults: beta_value 0.5,
    loss_history_length 500, sift_delay 0, repeat_delay_per_epoch false, keep_fraction
    0.6 (prune) or 0.7 (random), anneal_fraction 0.125. In prune mode a keep_fraction
    selects the "quota" rule; without one PruneConfig's default rule applies. Raises
    ValueError naming the field for unknown fields, wrong types, out-of-range values and
    fields that do not apply to the mode.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(_prefix(f"not valid JSON ({err})")) from None
    if not isinstance(raw, Mapping):
        raise ValueError(_prefix(f"must hold a JSON object, got {type(raw).__name__}"))
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key)
        if name is None:
            raise ValueError(_prefix(f"unknown field {key!r}; known fields: {', '.join(_FIELDS)}"))
        if name in fields:
            raise ValueError(_prefix(f"field {name} given twice"))
        fields[name] = value
    mode = _mode(fields.pop("mode", "SIFTING_MODE_UNSPECIFIED"))
    # NOTE [proto3 zero]: proto3 has no presence for these scalars and some serializers
    # print every field, so a field at its zero value means "not set".
    fields = {k: v for k, v in fields.items() if not (v is False or (_is_number(v) and v == 0))}
    for name in fields:
        if mode not in _FIELDS[name]:
            raise ValueError(_prefix(f"field {name} does not apply to mode {_mode_name(mode)}"))
    # proto3 JSON writes 64-bit ints as strings; int32 fields come as numbers, but accept
    # integral strings for robustness.
    for name in ("loss_history_length", "sift_delay"):
        if isinstance(fields.get(name), str) and fields[name].lstrip("-").isdigit():
            fields[name] = int(fields[name])
    try:
        if mode == "relative":
            # The proto's sift_delay is 0 when unset (SiftingBaseConfig's own default,
            # 1000, is SageMaker's and applies to scripts that build configs by hand).
            base = {"sift_delay": fields.pop("sift_delay", 0)}
            if "repeat_delay_per_epoch" in fields:
                base["repeat_delay_per_epoch"] = fields.pop("repeat_delay_per_epoch")
            return RelativeProbabilisticSiftConfig(
                **fields, loss_based_sift_config=LossConfig(SiftingBaseConfig(**base))
            )
        if mode == "prune":
            # NOTE [env rule]: the Sifting message has keep_fraction, the quota rule's
            # knob, and no rule field: a keep_fraction asks for the quota rule, its
            # absence for PruneConfig's default rule.
            if "keep_fraction" in fields:
                fields["rule"] = "quota"
            return PruneConfig(**fields)
        return RandomDropConfig(**fields)
    except ValueError as err:
        raise ValueError(_prefix(str(err))) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mode(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in _MODE_NUMBERS:
        value = _MODE_NUMBERS[value]
    if isinstance(value, str) and value in _MODES:
        return _MODES[value]
    raise ValueError(_prefix(f"mode must be one of {', '.join(_MODES)}, got {value!r}"))


def _mode_name(mode: str) -> str:
    return {
        "relative": "SIFTING_MODE_RELATIVE_PROBABILISTIC",
        "prune": "SIFTING_MODE_PRUNE",
        "random": "SIFTING_MODE_RANDOM",
    }[mode]


def config_from_env(environ: Mapping[str, str] = os.environ) -> SiftConfig | None:
    """The config in TRAINSPEC_SIFTING, or None when the variable is absent or empty."""
    text = environ.get(ENV_VAR, "")
    if not text.strip():
        return None
    return config_from_json(text)


def from_config(
    config: SiftConfig,
    dataloader: Any,
    model: Any = None,
    loss_impl: Any = None,
    *,
    epochs: int | None = None,
    batch_transforms: Any = None,
    **options: Any,
) -> Any:
    """The loader for `config`: a SiftingDataloader or a PruningDataloader.

    Both iterate like the original DataLoader and have `report(per_sample_losses)`,
    returning the loss to backpropagate, and `stats` / `epoch_stats`. `loss_impl` (a Loss)
    is needed by the relative-probabilistic mode only; `epochs` (the run's total) lets the
    prune mode anneal (required unless its anneal_fraction is 0). Extra keyword options
    (seed, generator, process_group, and for the relative mode autocast_dtype,
    log_batch_data) are passed on.
    """
    from ._prune import PruningDataloader
    from ._sift_dataloader import SiftingDataloader

    if isinstance(config, RelativeProbabilisticSiftConfig):
        return SiftingDataloader(config, dataloader, batch_transforms, model, loss_impl, **options)
    if isinstance(config, PruneConfig | RandomDropConfig):
        return PruningDataloader(config, dataloader, model, epochs=epochs, **options)
    raise ValueError(
        "config must be a RelativeProbabilisticSiftConfig, PruneConfig or RandomDropConfig, "
        f"got {type(config).__name__}"
    )
