"""Sifting configurations: frozen, validated in the constructor, one class per mode."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


def _check_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass; True as a step count is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SiftingBaseConfig:
    """When sifting starts (same names and defaults as SageMaker smart sifting).

    sift_delay: training steps (yielded batches) with no sifting at the start.
    repeat_delay_per_epoch: apply the delay again at the start of each epoch.
    """

    sift_delay: int = 1000
    repeat_delay_per_epoch: bool = False

    def __post_init__(self) -> None:
        _check_int("sift_delay", self.sift_delay, 0)
        if not isinstance(self.repeat_delay_per_epoch, bool):
            raise ValueError(
                f"repeat_delay_per_epoch must be a boolean, got {self.repeat_delay_per_epoch!r}"
            )


@dataclass(frozen=True)
class LossConfig:
    """The loss-based sifting options; `sift_config` may be given as a dict."""

    sift_config: SiftingBaseConfig = field(default_factory=SiftingBaseConfig)

    def __post_init__(self) -> None:
        value = self.sift_config
        if isinstance(value, dict):
            object.__setattr__(self, "sift_config", _from_dict(SiftingBaseConfig, value))
        elif not isinstance(value, SiftingBaseConfig):
            raise ValueError(
                f"sift_config must be a SiftingBaseConfig or a dict, got {type(value).__name__}"
            )


@dataclass(frozen=True)
class RelativeProbabilisticSiftConfig:
    """SageMaker smart sifting's method: keep a sample with probability percentile**beta.

    The percentile of a sample's loss is taken against the last `loss_history_length`
    losses, so about 1/(1 + beta_value) of the data is kept. Needs a scoring forward pass.
    """

    beta_value: float = 0.5
    loss_history_length: int = 500
    loss_based_sift_config: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        beta = _check_real("beta_value", self.beta_value)
        if beta <= 0:
            raise ValueError(f"beta_value must be > 0, got {self.beta_value!r}")
        _check_int("loss_history_length", self.loss_history_length, 1)
        value = self.loss_based_sift_config
        if isinstance(value, dict):
            object.__setattr__(self, "loss_based_sift_config", _from_dict(LossConfig, value))
        elif not isinstance(value, LossConfig):
            raise ValueError(
                f"loss_based_sift_config must be a LossConfig or a dict, got {type(value).__name__}"
            )

    @property
    def sift_delay(self) -> int:
        return self.loss_based_sift_config.sift_config.sift_delay

    @property
    def repeat_delay_per_epoch(self) -> bool:
        return self.loss_based_sift_config.sift_config.repeat_delay_per_epoch


def _check_keep_fraction(value: Any) -> None:
    keep = _check_real("keep_fraction", value)
    if not 0 < keep <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {value!r}")


RULES = ("quota", "infobatch")
# The rule PruneConfig uses when none is given (chosen from bench/sifting.py's
# pre-registered run; see the README's Sifting section).
DEFAULT_RULE = "infobatch"
# InfoBatch's default prune probability of a below-mean sample.
DEFAULT_PRUNE_PROBABILITY = 0.5
DEFAULT_KEEP_FRACTION = 0.6


@dataclass(frozen=True)
class PruneConfig:
    """No scoring pass: prune low-loss samples from later epochs by their last loss.

    rule: how a pruned epoch picks what to drop.
        "infobatch" (InfoBatch's own rule): every sample whose last loss is below the
        mean is dropped with probability `prune_probability` (r), and the below-mean
        samples kept are weighted 1/(1 - r). The pruned share adapts to the losses (about
        r x the share below the mean); nothing above the mean is ever dropped or weighted.
        "quota": a fixed `keep_fraction` of the data each pruned epoch (a fixed compute
        budget): 1 - keep_fraction of the data is dropped at random from the below-mean
        samples, the pool widened to the lowest 2 x (number dropped) losses when too few
        are below the mean (so above-mean samples can be dropped and weighted), the kept
        pool samples weighted 1/(their keep probability).
        Both are unbiased: with fixed losses, the expected weighted sum over a pruned
        epoch equals the full data's sum.
    prune_probability: r of the "infobatch" rule, in (0, 1); default 0.5 (InfoBatch's).
    keep_fraction: share of the data each pruned epoch of the "quota" rule trains on, in
        (0, 1]; default 0.6.
    anneal_fraction: share of the last epochs that train on all data, in [0, 1); the
        loader then needs the run's `epochs`.
    reweight: "epoch" (InfoBatch's rescaling: a pruned epoch's summed gradient is an
        unbiased estimate of a full epoch's, so its fewer steps are larger in expectation)
        or "step" (every weight also scaled by the epoch's kept share, so each step's
        weighted mean estimates the full data's mean: steps keep their size, and a pruned
        epoch moves only its kept share as far). For SGD "epoch" acts as a learning rate
        1/kept-share higher in pruned epochs; optimizers that normalise the gradient's
        scale, such as Adam, divide most of it out (bench/sifting.py's `boost` arms
        measure the step-size part alone).
    The first epoch always uses all data (no loss is known yet). Giving a knob of the
    other rule (keep_fraction with "infobatch", prune_probability with "quota") raises.
    """

    keep_fraction: float | None = None
    anneal_fraction: float = 0.125
    reweight: str = "epoch"
    rule: str = DEFAULT_RULE
    prune_probability: float | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(
                f"rule must be one of {', '.join(map(repr, RULES))}, got {self.rule!r}"
            )
        if self.rule == "infobatch" and self.keep_fraction is not None:
            raise ValueError(
                f"keep_fraction={self.keep_fraction!r} applies to rule='quota' only; "
                "rule='infobatch' drops each below-mean sample with probability "
                "prune_probability (pass rule='quota' for a fixed kept share)"
            )
        if self.rule == "quota" and self.prune_probability is not None:
            raise ValueError(
                f"prune_probability={self.prune_probability!r} applies to rule='infobatch' "
                "only; rule='quota' keeps keep_fraction of the data"
            )
        if self.keep_fraction is not None:
            _check_keep_fraction(self.keep_fraction)
        if self.prune_probability is not None:
            r = _check_real("prune_probability", self.prune_probability)
            if not 0 < r < 1:
                raise ValueError(
                    f"prune_probability must be in (0, 1), got {self.prune_probability!r}"
                )
        if self.reweight not in ("epoch", "step"):
            raise ValueError(f"reweight must be 'epoch' or 'step', got {self.reweight!r}")
        anneal = _check_real("anneal_fraction", self.anneal_fraction)
        if not 0 <= anneal < 1:
            raise ValueError(f"anneal_fraction must be in [0, 1), got {self.anneal_fraction!r}")

    @property
    def keep(self) -> float:
        """The quota rule's kept share (its default when keep_fraction is not given)."""
        return DEFAULT_KEEP_FRACTION if self.keep_fraction is None else self.keep_fraction

    @property
    def probability(self) -> float:
        """The infobatch rule's r (its default when prune_probability is not given)."""
        if self.prune_probability is None:
            return DEFAULT_PRUNE_PROBABILITY
        return self.prune_probability


@dataclass(frozen=True)
class RandomDropConfig:
    """The honest baseline: each epoch trains on a uniform random `keep_fraction` of the data."""

    keep_fraction: float = 0.7

    def __post_init__(self) -> None:
        _check_keep_fraction(self.keep_fraction)


SiftConfig = RelativeProbabilisticSiftConfig | PruneConfig | RandomDropConfig


def _from_dict(cls: type[Any], value: dict[str, Any]) -> Any:
    known = {each.name for each in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(sorted(known))}"
        )
    return cls(**value)
