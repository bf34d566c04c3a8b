"""The sift policy base: given per-sample losses, decide which samples to keep."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class SiftPolicy(ABC):
    """Decides, on the losses' device, which samples of a scored batch are kept."""

    @abstractmethod
    def keep_mask(self, losses: torch.Tensor) -> torch.Tensor:
        """Record `losses` (1-d) and return a boolean mask of the samples to keep."""

    def keep_index(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """Record consecutive batches' losses in turn; the kept positions in their concatenation.

        Policies may override this with a faster pass that makes the same choices.
        """
        return torch.cat([self.keep_mask(x) for x in losses]).nonzero().flatten()
