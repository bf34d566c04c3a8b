"""SiftingDataloader: wraps a DataLoader, scores each batch and yields only kept samples."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from . import _batch
from ._config import RelativeProbabilisticSiftConfig
from ._loss import Loss
from ._relative import RelativeProbabilisticPolicy
from ._runtime import (
    collective_device,
    make_generator,
    model_device,
    module_list,
    preserved,
    world,
)
from ._stats import Counters, SiftingStats, log_epoch, logger

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

# The default group (see NOTE [groups]): about this many samples, at most this many batches.
_GROUP_SAMPLES, _MAX_GROUP = 512, 8


class SiftingDataloader:
    """A drop-in for SageMaker smart sifting's SiftingDataloader.

    Iterating yields batches of the original batch size and format made only of kept
    samples; the leftover at epoch end is yielded too. Counters: `stats` (current epoch)
    and `epoch_stats` (finished epochs).

    Beyond the SageMaker arguments (all keyword-only): `generator` or `seed` for every
    random choice, `autocast_dtype` to score under torch.autocast, `process_group` for DDP,
    and `score_batches`, how many original batches are fetched and scored before they are
    sifted together (default: enough for 512 samples and for one batch of kept samples,
    at most 8); it changes no choice, only how often the bookkeeping runs, and that many
    batches are held at once.
    """

    def __init__(
        self,
        sift_config: RelativeProbabilisticSiftConfig,
        orig_dataloader: Any,
        batch_transforms: Any = None,
        model: torch.nn.Module | None = None,
        loss_impl: Loss | None = None,
        log_batch_data: bool = False,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        process_group: ProcessGroup | None = None,
        score_batches: int | None = None,
    ) -> None:
        problems = []
        if score_batches is not None and (
            isinstance(score_batches, bool)
            or not isinstance(score_batches, int)
            or score_batches < 1
        ):
            problems.append(f"score_batches must be a positive integer, got {score_batches!r}")
        if not isinstance(sift_config, RelativeProbabilisticSiftConfig):
            problems.append(
                "sift_config must be a RelativeProbabilisticSiftConfig, "
                f"got {type(sift_config).__name__}"
            )
        if model is None or not isinstance(model, torch.nn.Module):
            problems.append(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if loss_impl is None or not callable(getattr(loss_impl, "loss", None)):
            problems.append(
                f"loss_impl must have a loss(model, transformed_batch, original_batch) method, "
                f"got {type(loss_impl).__name__}"
            )
        if batch_transforms is not None and not (
            callable(batch_transforms) or callable(getattr(batch_transforms, "transform", None))
        ):
            problems.append("batch_transforms must be callable or have a transform(batch) method")
        if problems or model is None or loss_impl is None:
            raise ValueError("; ".join(problems))
        self.sift_config = sift_config
        self.orig_dataloader = orig_dataloader
        self.batch_transforms = batch_transforms
        self.model = model
        self.loss_impl = loss_impl
        self.log_batch_data = log_batch_data
        self.autocast_dtype = autocast_dtype
        self.process_group = process_group
        self.device = model_device(model)
        self.generator = make_generator(self.device, generator, seed, process_group)
        self.policy = RelativeProbabilisticPolicy(
            sift_config.beta_value, sift_config.loss_history_length, self.generator
        )
        if score_batches is None:
            # At least one batch of kept samples per group (1/(1 + beta) of each is kept),
            # and enough samples that the per-group bookkeeping is small beside the forwards.
            size = getattr(orig_dataloader, "batch_size", None) or _GROUP_SAMPLES
            score_batches = min(
                _MAX_GROUP,
                max(math.ceil(1 + sift_config.beta_value), math.ceil(_GROUP_SAMPLES / size)),
            )
        self.score_batches = score_batches
        self._counters = Counters()
        self.epoch_stats: list[SiftingStats] = []
        self._steps = 0  # batches yielded since the (last) delay started
        self._layout: Any = None
        self._pending: list[int] = []  # under DDP: every rank's buffered sample count

    # -- the public loop API ---------------------------------------------------------------

    @property
    def stats(self) -> SiftingStats:
        """Counters of the current (or last finished) epoch."""
        return self._counters.snapshot()

    def report(self, losses: torch.Tensor) -> torch.Tensor:
        """The loss to backpropagate from the training step's per-sample losses (their mean).

        Present so a script can call `sifter.report(losses)` whatever the sifting mode.
        """
        return losses.mean()

    def __iter__(self) -> Iterator[Any]:
        self._counters = Counters(epoch=len(self.epoch_stats) + 1)
        if self.sift_config.repeat_delay_per_epoch:
            self._steps = 0
        # Listed once per epoch: walking the module tree shows in every scored group.
        self._modules = module_list(self.model)
        try:
            yield from self._epoch()
        finally:
            self.epoch_stats.append(self.stats)
            log_epoch("SiftingDataloader", self.stats)

    # -- implementation ----------------------------------------------------------------------

    def _emit(self, batch: Any, kept: int, repeated: int = 0) -> Any:
        self._steps += 1
        self._counters.add(batches=1, samples_kept=kept, samples_repeated=repeated)
        if self.log_batch_data and logger.isEnabledFor(logging.DEBUG):
            logger.debug("yield batch %d: %d kept samples", self.stats.batches, kept)
        return batch

    def _epoch(self) -> Iterator[Any]:
        _, size = world(self.process_group)
        hint = getattr(self.orig_dataloader, "batch_size", None)
        iterator = iter(self.orig_dataloader)
        while self._steps < self.sift_config.sift_delay:
            # NOTE [delay]: no scoring and no collective during the delay; the original
            # loader (e.g. with a DistributedSampler) already gives every rank the same
            # number of batches.
            batch = next(iterator, None)
            if batch is None:
                return
            if self._layout is None:
                self._layout = _batch.detect_layout(batch, hint)
            n = _batch.batch_size(batch, self._layout)
            self._counters.add(samples_seen=n)
            yield self._emit(batch, n)
        if size == 1:
            yield from self._sift(iterator, hint)
        else:
            yield from self._sift_distributed(iterator, hint)

    def _sift(self, iterator: Iterator[Any], hint: int | None) -> Iterator[Any]:
        """One process: score a group of batches, yield the full batches of kept samples.

        NOTE [groups]: `score_batches` original batches are fetched, then scored one by
        one under a single eval-mode/no-grad/RNG-restoring context and ranked in one pass
        (the same choices as batch after batch; see RelativeProbabilisticPolicy). The
        scoring forwards are unchanged; the bookkeeping around them is paid once per
        group, and on CUDA the one host sync (the kept count) too. Fetching stays outside
        the context, so a dataset's random augmentations draw from the live RNG.
        """
        buffer: _batch.BatchBuffer | None = None
        target = hint or 0
        while True:
            batches = list(islice(iterator, self.score_batches))
            if not batches:
                break
            start = time.perf_counter()
            if self._layout is None:
                self._layout = _batch.detect_layout(batches[0], hint)
            layout = self._layout
            sizes = [_batch.batch_size(b, layout) for b in batches]
            if buffer is None:
                buffer = _batch.BatchBuffer(layout)
                target = target or sizes[0]
            index = self.policy.keep_index(self._score(batches, sizes))
            kept, total = index.numel(), sum(sizes)  # the one host sync per group
            if kept:
                joined = _batch.concat(batches, layout)
                buffer.add(joined if kept == total else _batch.select(joined, layout, index), kept)
            self._counters.add(
                samples_seen=total,
                samples_scored=total,
                scoring_seconds=time.perf_counter() - start,
            )
            while buffer.size >= target:
                yield self._emit(buffer.take(target), target)
        if buffer is not None and buffer.size:
            n = buffer.size
            yield self._emit(buffer.take(n), n)

    def _sift_distributed(self, iterator: Iterator[Any], hint: int | None) -> Iterator[Any]:
        """Under DDP: one collective per step, so every rank yields the same batch count."""
        rank, size = world(self.process_group)
        width = hint or 0  # the gathered-loss row width, fixed for the run (0: not yet)
        buffer: _batch.BatchBuffer | None = None
        last: Any = None
        target = hint or 0
        self._pending = [0] * size
        while True:
            batch = next(iterator, None)
            start = time.perf_counter()
            if batch is not None and self._layout is None:
                self._layout = _batch.detect_layout(batch, hint)
            n = 0 if batch is None else _batch.batch_size(batch, self._layout)
            if buffer is None:
                if self._layout is None:
                    return  # no batch at all after the delay (on this rank)
                buffer = _batch.BatchBuffer(self._layout)
                target = target or n
                width = width or n
            losses = self._score([batch], [n])[0] if batch is not None else None
            all_losses, counts = self._gather(losses, n, width)
            if sum(counts) == 0:
                break
            if 0 in counts:
                # NOTE [equal batch counts]: every rank sees the counts, so all of them fail
                # together here instead of one waiting forever in a collective.
                raise RuntimeError(
                    f"the original DataLoader ran out of batches on rank(s) "
                    f"{[r for r, c in enumerate(counts) if c == 0]} before the others; "
                    "use a DistributedSampler so all ranks get the same number of batches"
                )
            mask = self.policy.keep_mask(all_losses)
            kept_per_rank = [
                int(c) for c in torch.stack([m.sum() for m in mask.split(counts)]).tolist()
            ]
            offset = sum(counts[:rank])
            index = mask[offset : offset + n].nonzero().squeeze(1)
            buffer.add(_batch.select(batch, self._layout, index), index.numel())
            self._counters.add(
                samples_seen=n, samples_scored=n, scoring_seconds=time.perf_counter() - start
            )
            last = batch
            fills = _fills(kept_per_rank, self._pending, buffer.size, rank)
            ready = min(fills) // target
            self._pending = [f - ready * target for f in fills]
            for _ in range(ready):
                yield self._emit(buffer.take(target), target)
        yield from self._flush(buffer, last, target, size)

    def _flush(
        self, buffer: _batch.BatchBuffer | None, last: Any, target: int, size: int
    ) -> Iterator[Any]:
        """Yield the leftover so that every rank yields the same number of batches."""
        if buffer is None:
            return
        fills = self._pending
        chunks = math.ceil(max(fills) / target) if max(fills) else 0
        mine = buffer.size
        for i in range(chunks):
            share = mine // chunks + (1 if i < mine % chunks else 0)
            if share:
                yield self._emit(buffer.take(share), share)
            else:
                # NOTE [padding]: like DistributedSampler, a rank short of samples repeats
                # one it has seen, so no rank waits at epoch end for a batch that never comes.
                one = _batch.narrow(last, self._layout, 0, 1)
                yield self._emit(one, 0, repeated=1)

    def _score(self, batches: list[Any], sizes: list[int]) -> list[torch.Tensor]:
        """One loss per sample of each batch, without autograd, in eval mode, RNG restored."""
        transform = self.batch_transforms
        if transform is not None and not callable(transform):
            transform = transform.transform
        transformed = [transform(b) for b in batches] if transform is not None else batches
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        loss = self.loss_impl.loss
        with preserved(self.model, self.device, self._modules), torch.no_grad(), autocast:
            losses = [loss(self.model, t, b) for t, b in zip(transformed, batches, strict=True)]
        for n, value in zip(sizes, losses, strict=True):
            if not isinstance(value, torch.Tensor) or value.numel() != n:
                got = (
                    tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                )
                raise ValueError(
                    f"loss_impl.loss must return one loss per sample: expected {n}, got {got}"
                )
        # The policy flattens and casts; only a loss on another device moves here.
        return [x if x.device == self.device else x.to(self.device) for x in losses]

    def _gather(
        self, losses: torch.Tensor | None, n: int, width: int
    ) -> tuple[torch.Tensor, list[int]]:
        """All ranks' losses of this step, in rank order, with one collective."""
        if n > width:
            raise ValueError(f"batch of {n} samples is larger than the batch size {width}")
        row = torch.full((width + 1,), float("nan"), device=self.device)
        row[0] = n
        if losses is not None:
            row[1 : n + 1] = losses.detach().reshape(-1)
        comm = collective_device(self.device, self.process_group)
        row = row.to(comm)
        rows = [torch.empty_like(row) for _ in range(dist.get_world_size(self.process_group))]
        dist.all_gather(rows, row, group=self.process_group)
        table = torch.stack(rows).to(self.device)
        counts = [int(c) for c in table[:, 0].tolist()]
        parts = [table[r, 1 : c + 1] for r, c in enumerate(counts)]
        return torch.cat(parts), counts


def _fills(kept: list[int], pending: list[int], mine: int, rank: int) -> list[int]:
    """Buffer sizes of all ranks after this step (every rank computes the same list)."""
    fills = [b + k for b, k in zip(pending, kept, strict=True)]
    assert fills[rank] == mine
    return fills
