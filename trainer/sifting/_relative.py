"""Relative-probabilistic policy: keep a sample with probability (loss percentile)**beta."""

from __future__ import annotations

import numpy as np
import torch

from ._policy import SiftPolicy

# Uniform draws taken from the generator at a time (see NOTE [threshold pool]).
_POOL = 4096


class RelativeProbabilisticPolicy(SiftPolicy):
    """Percentiles against a ring buffer of the last `history_length` losses.

    A batch's losses join the history first; each one's percentile is then its mid-rank
    among the last `history_length` losses, and it is kept when a uniform draw falls below
    percentile**beta.

    NOTE [no host sync]: the history, the percentiles and the random draws all live on the
    losses' device; positions in the ring are tracked with Python ints because batch sizes
    are known on the host, so nothing here waits for the device.

    NOTE [cpu kernels]: on CPU the ring, the sort and the searches run in numpy on the
    tensors' own memory (views, no copies): for a batch of 64 against 500 losses each
    torch call costs several times its numpy twin in dispatch alone (about 10 us against
    40 us a batch), and this runs for every scored batch, a visible share of a small CPU
    model's scoring forward. Both paths make the same choices. (Ranking a whole group of
    batches in one vectorised pass, with an argsort and per-window counts, was measured
    slower than this loop for groups of up to 8 batches of 64.)
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
        self._history_np: np.ndarray | None = None  # a view of _history on CPU
        self._filled = 0
        self._pos = 0  # the oldest entry once full; equal to _filled before
        self._pool: torch.Tensor | None = None
        self._pool_np: np.ndarray | None = None
        self._pool_pos = 0

    # -- the public policy API --------------------------------------------------------------

    def keep_mask(self, losses: torch.Tensor) -> torch.Tensor:
        losses = _prepare(losses)
        if losses.device.type == "cpu":
            return torch.from_numpy(self._keep_cpu([losses.numpy()]))
        return self._keep_device(losses)

    def keep_index(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """Rank consecutive batches' losses in turn; the kept positions in their concatenation.

        The same choices as `keep_mask` on each batch in turn, in one pass.
        """
        parts = [_prepare(x) for x in losses]
        if parts[0].device.type == "cpu":
            return torch.from_numpy(np.flatnonzero(self._keep_cpu([p.numpy() for p in parts])))
        return torch.cat([self._keep_device(p) for p in parts]).nonzero().flatten()

    def percentiles(self, losses: torch.Tensor) -> torch.Tensor:
        """Mid-rank percentile of each loss in the current history, in [0, 1]."""
        assert self._history is not None
        losses = _prepare(losses)
        history = self._history[: self._filled].sort().values.to(losses.device)
        return _rank_sums(history, losses) * (0.5 / self._filled)

    # -- implementation ----------------------------------------------------------------------

    def _ring(self, device: torch.device) -> torch.Tensor:
        if self._history is None or self._history.device != device:
            self._history = torch.zeros(self.history_length, dtype=torch.float32, device=device)
            self._history_np = self._history.numpy() if device.type == "cpu" else None
            self._filled = self._pos = 0
        return self._history

    def _keep_device(self, losses: torch.Tensor) -> torch.Tensor:
        """One batch with torch ops on the losses' device (asynchronous on CUDA)."""
        ring, n, cap = self._ring(losses.device), losses.numel(), self.history_length
        if n >= cap:
            ring.copy_(losses[n - cap :])
            self._pos, self._filled = 0, cap
        else:
            first = min(n, cap - self._pos)
            ring[self._pos : self._pos + first] = losses[:first]
            if first < n:
                ring[: n - first] = losses[first:]
            self._pos = (self._pos + n) % cap
            self._filled = min(cap, self._filled + n)
        ranks = _rank_sums(ring[: self._filled].sort().values, losses)
        thresholds = self._thresholds(n).to(losses.device)
        # A NaN loss sorts last, ranks near 1 and so is kept: the training step surfaces it.
        return ranks > thresholds * (2 * self._filled)

    def _keep_cpu(self, parts: list[np.ndarray]) -> np.ndarray:
        """Keep flags for consecutive batches on CPU, ranked in turn as `_keep_device` does."""
        self._ring(torch.device("cpu"))
        ring, cap = self._history_np, self.history_length
        assert ring is not None  # a CPU ring always has its NumPy view
        n_all = sum(len(p) for p in parts)
        thresholds = self._thresholds_cpu(n_all)
        flags = []
        start = 0
        for values in parts:
            n = len(values)
            if n >= cap:
                ring[:] = values[n - cap :]
                self._pos, self._filled = 0, cap
            else:
                first = min(n, cap - self._pos)
                ring[self._pos : self._pos + first] = values[:first]
                if first < n:
                    ring[: n - first] = values[first:]
                self._pos = (self._pos + n) % cap
                self._filled = min(cap, self._filled + n)
            history = np.sort(ring[: self._filled])
            # count(history < loss) + count(history <= loss), as _rank_sums.
            ranks = np.searchsorted(history, values, "left")
            ranks += np.searchsorted(history, values, "right")
            # A NaN loss sorts last, ranks near 1 and so is kept: the training step sees it.
            flags.append(ranks > thresholds[start : start + n] * (2 * self._filled))
            start += n
        return flags[0] if len(flags) == 1 else np.concatenate(flags)

    def _thresholds(self, n: int) -> torch.Tensor:
        pool, start = self._draws(n)
        return pool.narrow(0, start, n)

    def _thresholds_cpu(self, n: int) -> np.ndarray:
        pool, start = self._draws(n)
        if self._pool_np is None:
            self._pool_np = pool.cpu().numpy()
        return self._pool_np[start : start + n]

    def _draws(self, n: int) -> tuple[torch.Tensor, int]:
        """The pool of draws of u**(1/beta), u uniform in [0, 1), and where the next n start.

        NOTE [threshold pool]: u < p**beta exactly when u**(1/beta) < p, so the draws are
        taken _POOL at a time and raised to 1/beta once; each batch takes the next n. The
        sequence depends on the seed only, so runs (and all DDP ranks) stay in step.
        """
        if self._pool is None or self._pool_pos + n > self._pool.numel():
            gen = self.generator
            pool = torch.rand(max(_POOL, n), generator=gen, device=gen.device)
            self._pool = pool.pow_(1.0 / self.beta)
            self._pool_np = None
            self._pool_pos = 0
        start = self._pool_pos
        self._pool_pos += n
        return self._pool, start


def _prepare(losses: torch.Tensor) -> torch.Tensor:
    losses = losses.detach().reshape(-1)
    return losses if losses.dtype == torch.float32 else losses.float()


def _rank_sums(ordered: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """count(history < loss) + count(history <= loss), twice the mid-rank, per loss.

    A sort plus two binary searches beats a batch x history comparison, in linear memory.
    """
    return torch.searchsorted(ordered, losses) + torch.searchsorted(ordered, losses, right=True)
