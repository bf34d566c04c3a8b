"""Relative-probabilistic policy: keep a sample with probability (loss percentile)**beta."""

from __future__ import annotations

import torch

from ._policy import SiftPolicy


class RelativeProbabilisticPolicy(SiftPolicy):
    """Percentiles against a ring buffer of the last `history_length` losses.

    NOTE [no host sync]: the history, the percentiles and the random draws all live on the
    losses' device; positions in the ring are tracked with Python ints because batch sizes
    are known on the host, so nothing here waits for the device.
    """

    def __init__(self, beta_value: float, history_length: int, generator: torch.Generator) -> None:
        if beta_value <= 0:
            raise ValueError(f"beta_value must be > 0, got {beta_value!r}")
        if history_length < 1:
            raise ValueError(f"loss_history_length must be >= 1, got {history_length!r}")
        self.beta = float(beta_value)
        self.history_length = int(history_length)
        self.generator = generator
        self._history: torch.Tensor | None = None
        self._filled = 0
        self._pos = 0

    def _push(self, losses: torch.Tensor) -> None:
        n, cap = losses.numel(), self.history_length
        if self._history is None or self._history.device != losses.device:
            self._history = torch.zeros(cap, dtype=torch.float32, device=losses.device)
        if n >= cap:
            self._history.copy_(losses[n - cap :])
            self._pos, self._filled = 0, cap
            return
        first = min(n, cap - self._pos)
        self._history[self._pos : self._pos + first] = losses[:first]
        if first < n:
            self._history[: n - first] = losses[first:]
        self._pos = (self._pos + n) % cap
        self._filled = min(cap, self._filled + n)

    def percentiles(self, losses: torch.Tensor) -> torch.Tensor:
        """Mid-rank percentile of each loss in the history, in (0, 1]."""
        assert self._history is not None
        # A sort plus two binary searches beats a batch x history comparison on CPU
        # (about 20 us against 90 us for 64 x 500) and keeps memory linear.
        history = self._history[: self._filled].sort().values
        below = torch.searchsorted(history, losses, right=False)
        at_or_below = torch.searchsorted(history, losses, right=True)
        return (below + at_or_below) * (0.5 / self._filled)

    def keep_mask(self, losses: torch.Tensor) -> torch.Tensor:
        losses = losses.detach().float().reshape(-1)
        self._push(losses)
        probability = self.percentiles(losses).pow_(self.beta)
        draws = torch.rand(
            losses.numel(), generator=self.generator, device=self.generator.device
        ).to(losses.device)
        # A NaN loss sorts last, ranks near 1 and so is kept: the training step surfaces it.
        return draws < probability
