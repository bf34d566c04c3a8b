"""Per-epoch sifting counters, exposed on every loader and logged at epoch end."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger("trainspec.trainer.sifting")


@dataclass(frozen=True)
class SiftingStats:
    """Counters of one epoch on this process (rank).

    samples_seen: samples the original data offered this epoch.
    samples_scored: samples that went through a scoring forward pass.
    samples_kept: samples yielded for training (delay steps included, padding excluded).
    samples_repeated: samples repeated to give every rank the same number of batches.
    batches: batches yielded.
    scoring_seconds: host wall time spent scoring and selecting.
    """

    epoch: int = 0
    samples_seen: int = 0
    samples_scored: int = 0
    samples_kept: int = 0
    samples_repeated: int = 0
    batches: int = 0
    scoring_seconds: float = 0.0

    @property
    def kept_fraction(self) -> float:
        return self.samples_kept / self.samples_seen if self.samples_seen else 0.0


def log_epoch(name: str, stats: SiftingStats) -> None:
    logger.info(
        "%s epoch %d: seen %d, scored %d, kept %d (%.1f%%), repeated %d, %d batches, scoring %.3fs",
        name,
        stats.epoch,
        stats.samples_seen,
        stats.samples_scored,
        stats.samples_kept,
        100 * stats.kept_fraction,
        stats.samples_repeated,
        stats.batches,
        stats.scoring_seconds,
    )


class Counters:
    """Mutable per-epoch counts behind a loader's `stats` (a per-batch frozen copy is slow)."""

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch
        self.samples_seen = self.samples_scored = self.samples_kept = 0
        self.samples_repeated = self.batches = 0
        self.scoring_seconds = 0.0

    def add(
        self,
        *,
        samples_seen: int = 0,
        samples_scored: int = 0,
        samples_kept: int = 0,
        samples_repeated: int = 0,
        batches: int = 0,
        scoring_seconds: float = 0.0,
    ) -> None:
        self.samples_seen += samples_seen
        self.samples_scored += samples_scored
        self.samples_kept += samples_kept
        self.samples_repeated += samples_repeated
        self.batches += batches
        self.scoring_seconds += scoring_seconds

    def snapshot(self) -> SiftingStats:
        return SiftingStats(
            epoch=self.epoch,
            samples_seen=self.samples_seen,
            samples_scored=self.samples_scored,
            samples_kept=self.samples_kept,
            samples_repeated=self.samples_repeated,
            batches=self.batches,
            scoring_seconds=self.scoring_seconds,
        )
