"""The Loss interface a scoring forward pass calls (same shape as SageMaker smart sifting's)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class Loss(ABC):
    """Computes one loss per sample for the relative-probabilistic sifter."""

    @abstractmethod
    def loss(
        self, model: torch.nn.Module, transformed_batch: Any, original_batch: Any = None
    ) -> torch.Tensor:
        """Return a 1-d tensor with one loss per sample of `transformed_batch`.

        It runs under torch.no_grad() with the model in eval mode; do not reduce the losses.
        """
