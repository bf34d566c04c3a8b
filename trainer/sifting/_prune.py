"""PruningDataloader: no scoring pass; each epoch trains on a subset chosen from last losses."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, SequentialSampler

from ._config import PruneConfig, RandomDropConfig
from ._runtime import collective_device, make_generator, model_device, world
from ._stats import Counters, SiftingStats, log_epoch

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

# InfoBatch's default prune probability among low-loss samples.
_MAX_DROP_PROBABILITY = 0.5


class PruningDataloader:
    """Epoch-level sifting that needs no extra forward pass (InfoBatch).

    The training step reports its per-sample losses through `report(losses)`, which
    returns the (re-weighted) mean loss to backpropagate. With a PruneConfig, each epoch
    after the first prunes samples whose last loss is below the mean, by the config's
    `rule` ("infobatch": each with probability r, kept ones weighted 1/(1 - r); "quota": a
    fixed share of the data, see PruneConfig); with reweight="step" every weight is also
    scaled by the epoch's kept share. The last `anneal_fraction` of the `epochs` train on
    all data, so `epochs` is required unless anneal_fraction is 0. With a RandomDropConfig
    every epoch trains on a uniform random `keep_fraction` of the data, unweighted.

    Samples are drawn by index from `orig_dataloader.dataset` in the order of its sampler
    (see NOTE [data order]), batched with its batch size, collate_fn, workers and
    drop_last. Under DDP the chosen indices are shuffled by the loader's generator (unless
    the original sampler is sequential) and split across ranks like DistributedSampler
    does (padded so all ranks get the same number of batches), so the original loader
    must not have a DistributedSampler of its own; every rank's reported losses are merged
    (one all-reduce) when the next epoch starts, also after a rank left an epoch early.
    `planned_steps()` gives every epoch's batch count ahead where the rule fixes it, and
    `progress` the epochs done so far (fractional) for schedules driven by it.
    """

    def __init__(
        self,
        config: PruneConfig | RandomDropConfig,
        orig_dataloader: DataLoader,
        model: torch.nn.Module | None = None,
        *,
        epochs: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        process_group: ProcessGroup | None = None,
    ) -> None:
        problems = []
        if not isinstance(config, PruneConfig | RandomDropConfig):
            problems.append(
                f"config must be a PruneConfig or RandomDropConfig, got {type(config).__name__}"
            )
        dataset = getattr(orig_dataloader, "dataset", None)
        if dataset is None or isinstance(dataset, IterableDataset):
            problems.append(
                "orig_dataloader must be a DataLoader over a map-style dataset (samples are "
                "chosen by index)"
            )
        batch_size = getattr(orig_dataloader, "batch_size", None)
        if batch_size is None:
            problems.append("orig_dataloader must have a batch_size (no custom batch_sampler)")
        if epochs is not None and (
            isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
        ):
            problems.append(f"epochs must be a positive integer, got {epochs!r}")
        elif epochs is None and isinstance(config, PruneConfig) and config.anneal_fraction > 0:
            # NOTE [epochs required]: annealing needs the run's length; without it the last
            # epochs would silently stay pruned.
            problems.append(
                f"epochs is required with anneal_fraction={config.anneal_fraction!r} (the last "
                "epochs train on all data); pass epochs=<the run's epoch count>, or "
                "anneal_fraction=0 to prune to the end"
            )
        sampler = getattr(orig_dataloader, "sampler", None)
        if isinstance(sampler, DistributedSampler) and sampler.num_replicas > 1:
            # NOTE [own split]: pruning chooses from the whole data set, so the loader
            # splits the chosen samples across ranks itself; a user's split underneath
            # would be ignored, so it is refused.
            problems.append(
                "orig_dataloader has a DistributedSampler (num_replicas="
                f"{sampler.num_replicas}): PruningDataloader splits the kept samples across "
                "ranks itself; give it a DataLoader with shuffle=True (or False) and no "
                "DistributedSampler"
            )
        if problems or dataset is None or batch_size is None:
            raise ValueError("; ".join(problems))
        self.config = config
        self.orig_dataloader = orig_dataloader
        self.epochs = epochs
        self.process_group = process_group
        self._batch_size: int = batch_size
        self.device = model_device(model)
        self.generator = make_generator(self.device, generator, seed, process_group)
        self.size = len(dataset)
        self._shuffle = not isinstance(orig_dataloader.sampler, SequentialSampler)
        self._prune = isinstance(config, PruneConfig)
        # NaN marks a sample whose loss was never reported: it is never pruned.
        self._losses = torch.full((self.size,), float("nan"), device=self.device)
        self._updated = torch.zeros(self.size, dtype=torch.bool, device=self.device)
        self._current: tuple[int, torch.Tensor, torch.Tensor | None] | None = None
        self._reported: list[torch.Tensor | None] = []
        self._counters = Counters()
        self.epoch_stats: list[SiftingStats] = []
        # The next (or current) epoch's choice: (epoch, chosen indices, weights).
        self._plan: tuple[int, torch.Tensor, torch.Tensor | None] | None = None
        self._iterating = False
        self._unmerged = False  # an epoch's losses not yet merged across ranks
        self._batch_in_epoch = 0
        self._epoch_batches = 0

    @property
    def anneal_epochs(self) -> int:
        """How many final epochs train on all data (0 when `epochs` is unknown)."""
        config = self.config
        if not isinstance(config, PruneConfig) or self.epochs is None:
            return 0
        if config.anneal_fraction == 0:
            return 0
        return min(self.epochs, math.ceil(config.anneal_fraction * self.epochs - 1e-9))

    def __len__(self) -> int:
        """Batches in the next epoch (or the current one while iterating).

        Under the "infobatch" rule this makes the next epoch's choice (under DDP a
        collective: call it on every rank or on none).
        """
        epoch = len(self.epoch_stats) + 1
        size = self._fixed_size(epoch)
        if size is None:
            return self._batches(self._rows(self._planned(epoch)[0].numel()))
        return self._batches(self._rows(size))

    def planned_steps(self) -> tuple[int, ...]:
        """The batches (optimizer steps) of every epoch of the run, known ahead.

        For per-step learning-rate schedulers (OneCycleLR, cosine with warmup, linear
        decay): `total_steps=sum(loader.planned_steps())`. Needs `epochs`; exact for the
        "quota" rule and random drop when every yielded batch's losses are reported (a
        sample with no loss is never dropped, so an epoch after an unreported one can have
        more steps). The "infobatch" rule prunes a share that depends on the losses, so
        its counts are not known ahead: it raises (drive the schedule by `progress`, or
        use rule="quota").
        """
        if self.epochs is None:
            raise ValueError("planned_steps() needs the loader's epochs; pass epochs=")
        steps = []
        for epoch in range(1, self.epochs + 1):
            size = self._fixed_size(epoch)
            if size is None:
                raise ValueError(
                    "planned_steps(): rule='infobatch' prunes a share that depends on the "
                    "losses, so its step counts are not known ahead; drive the schedule by "
                    "loader.progress (epochs done, fractional) or use rule='quota'"
                )
            steps.append(self._batches(self._rows(size)))
        return tuple(steps)

    @property
    def progress(self) -> float:
        """Epochs done, fractional: 2.25 once a quarter of the third epoch's batches were
        yielded (so a scheduler stepped after each optimizer step ends each epoch at a
        whole number)."""
        done = len(self.epoch_stats)
        if not self._iterating or not self._epoch_batches:
            return float(done)
        return done + self._batch_in_epoch / self._epoch_batches

    def _rows(self, size: int) -> int:
        return math.ceil(size / world(self.process_group)[1])

    def _batches(self, rows: int) -> int:
        bs = self._batch_size
        return rows // bs if self.orig_dataloader.drop_last else math.ceil(rows / bs)

    def _fixed_size(self, epoch: int) -> int | None:
        """Samples chosen in `epoch`, or None where the losses decide (infobatch)."""
        if self._uses_all(epoch):
            return self.size
        config = self.config
        if isinstance(config, PruneConfig) and config.rule == "infobatch":
            return None
        keep = config.keep if isinstance(config, PruneConfig) else config.keep_fraction
        return round(keep * self.size)

    def _uses_all(self, epoch: int) -> bool:
        if not self._prune:
            return False
        if epoch == 1:
            return True
        return self.epochs is not None and epoch > self.epochs - self.anneal_epochs

    @property
    def stats(self) -> SiftingStats:
        """Counters of the current (or last finished) epoch."""
        return self._counters.snapshot()

    def report(self, losses: torch.Tensor) -> torch.Tensor:
        """Record the last yielded batch's per-sample losses; return the loss to backpropagate."""
        current = self._current
        if current is None:
            raise RuntimeError("report() called before a batch was yielded")
        position, index, weights = current
        if losses.dim() != 1 or losses.numel() != index.numel():
            raise ValueError(
                f"report() needs one loss per sample of the batch: expected "
                f"({index.numel()},), got {tuple(losses.shape)}"
            )
        if self._prune:
            # NOTE [deferred loss table]: kept per batch and written into the table once at
            # epoch end; a second report() for the same batch replaces the first.
            self._reported[position] = losses.detach()
        if weights is None:
            return losses.mean()
        if weights.dtype != losses.dtype or weights.device != losses.device:
            weights = weights.to(device=losses.device, dtype=losses.dtype)
        # The weights are pre-divided by the batch length: one op gives the weighted mean.
        return torch.dot(losses, weights)

    def __iter__(self) -> Iterator[Any]:
        epoch = len(self.epoch_stats) + 1
        if self.epochs is not None and epoch == self.epochs + 1:
            warnings.warn(
                f"PruningDataloader: epoch {epoch} started but epochs={self.epochs}; the "
                "annealing and planned_steps() assumed the run ends there (pass the real "
                "epoch count)",
                stacklevel=2,
            )
        rank, size = world(self.process_group)
        chosen, weights = self._planned(epoch)
        self._counters = Counters(epoch=epoch)
        if size == 1:
            mine, weights = self._in_sampler_order(chosen, weights)
            padding = 0
        else:
            if self._shuffle:
                order = torch.randperm(
                    chosen.numel(), generator=self.generator, device=self.generator.device
                ).to(chosen.device)
                chosen = chosen[order]
                weights = None if weights is None else weights[order]
            # NOTE [equal batch counts]: pad by repeating, then stride, as DistributedSampler.
            per_rank = math.ceil(chosen.numel() / size)
            padding = per_rank * size - chosen.numel()
            if padding:
                chosen = torch.cat([chosen, chosen[:padding]])
                weights = None if weights is None else torch.cat([weights, weights[:padding]])
            mine = chosen[rank::size]
            weights = None if weights is None else weights[rank::size]
        loader = self.orig_dataloader
        bs = self._batch_size
        host = mine.tolist()  # the one transfer of indices per epoch
        batches = [host[i : i + bs] for i in range(0, len(host), bs)]
        if loader.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        if weights is not None:
            # Divided by each batch's length once, so report() is a single dot product.
            weights = weights / bs
            full = len(host) // bs * bs
            if full < len(host):
                weights[full:] *= bs / (len(host) - full)
        inner = DataLoader(
            loader.dataset,
            batch_sampler=batches,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context if loader.num_workers else None,
            # Seeded from the draw above: no second draw from the user's generator.
            generator=self._worker_generator if size == 1 else loader.generator,
            prefetch_factor=loader.prefetch_factor if loader.num_workers else None,
        )
        unique = chosen.numel() - padding
        repeated = sum(1 for p in range(unique, unique + padding) if p % size == rank)
        self._counters.add(samples_seen=math.ceil(self.size / size))
        self._reported = [None] * len(batches)
        starts: list[int] = []
        start = 0
        self._iterating, self._batch_in_epoch, self._epoch_batches = True, 0, len(batches)
        try:
            for position, (rows, batch) in enumerate(zip(batches, inner, strict=True)):
                self._batch_in_epoch = position + 1  # yielded: counted in `progress`
                end = start + len(rows)
                self._current = (
                    position,
                    mine[start:end],
                    None if weights is None else weights[start:end],
                )
                starts.append(start)
                start = end
                self._counters.add(batches=1, samples_kept=len(rows))
                yield batch
            self._counters.add(samples_kept=-repeated, samples_repeated=repeated)
        finally:
            self._record(mine, starts)  # a loop stopped early keeps the losses reported so far
            # NOTE [merge at the next epoch]: the all-reduce of this epoch's losses waits
            # for the next epoch's start, which every rank reaches whether it finished this
            # one or left it early; a collective here would hang a rank that finished
            # against one that broke out of its loop.
            self._unmerged = self._prune
            self._iterating = False
            self._current = None
            self.epoch_stats.append(self.stats)
            log_epoch(type(self).__name__, self.stats)

    def _in_sampler_order(
        self, chosen: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The chosen samples in the order the original sampler gives this epoch.

        NOTE [data order]: one process walks the original DataLoader's sampler each epoch
        (drawing from its generator exactly as a plain epoch would) and skips the dropped
        samples, so a seeded DataLoader gives the same order with and without sifting and
        a full epoch is exactly the plain one (with workers, their seeds differ). Under DDP
        every rank must agree on the order, so the loader's own generator shuffles instead.
        """
        loader = self.orig_dataloader
        # A plain epoch's iterator draws its workers' base seed first, then the sampler
        # draws; the same draws in the same order give the same permutation.
        seed = torch.empty((), dtype=torch.int64).random_(generator=loader.generator).item()
        self._worker_generator = torch.Generator().manual_seed(int(seed))
        order = torch.as_tensor(list(loader.sampler), dtype=torch.long).to(self.device)
        if chosen.numel() == self.size and weights is None:
            return order, None
        keep = torch.zeros(self.size, dtype=torch.bool, device=self.device)
        keep[chosen] = True
        mine = order[keep[order]]
        if weights is None:
            return mine, None
        table = torch.ones(self.size, device=self.device)
        table[chosen] = weights
        return mine, table[mine]

    def _record(self, mine: torch.Tensor, starts: list[int]) -> None:
        """Write this epoch's reported losses into the loss table (one scatter)."""
        pairs = [
            (mine[s : s + r.numel()], r)
            for s, r in zip(starts, self._reported, strict=False)
            if r is not None
        ]
        self._reported = []
        if not pairs:
            return
        index = torch.cat([i for i, _ in pairs]).to(self.device)
        values = torch.cat([v.float().reshape(-1) for _, v in pairs]).to(self.device)
        self._losses[index] = values
        self._updated[index] = True

    def _planned(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`epoch`'s choice, made once (after merging the ranks' losses) and kept."""
        if self._plan is None or self._plan[0] != epoch:
            self._merge_losses()
            self._plan = (epoch, *self._choose(epoch))
        return self._plan[1], self._plan[2]

    def _choose(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This epoch's sample indices and their loss weights (None: all 1), equal on all ranks."""
        everything = torch.arange(self.size, device=self.device)
        if self._uses_all(epoch):
            return everything, None
        config = self.config
        if isinstance(config, PruneConfig) and config.rule == "infobatch":
            return self._choose_infobatch(everything, config)
        size = self._fixed_size(epoch)
        assert size is not None  # only the infobatch rule leaves it open, handled above
        drop = self.size - size
        if drop <= 0:
            return everything, None
        if not isinstance(config, PruneConfig):
            keep = torch.randperm(
                self.size, generator=self.generator, device=self.generator.device
            )[: self.size - drop]
            return keep.to(self.device).sort().values, None
        losses = self._losses
        known = ~losses.isnan()
        ranked = torch.where(known, losses, torch.full_like(losses, float("inf")))
        order = ranked.argsort()
        n_known = int(known.sum())  # one sync per epoch
        if n_known == 0:
            return everything, None
        mean = losses[known].mean()
        below = int((ranked < mean).sum())
        # NOTE [pool]: InfoBatch drops at random among the below-mean samples; when that
        # pool is small the drop probability is capped at 1/2 by widening it to the lowest
        # 2 * drop losses, so no kept sample's weight exceeds 2 unless keep_fraction < 1/2.
        pool_size = min(n_known, max(below, math.ceil(drop / _MAX_DROP_PROBABILITY)))
        drop = min(drop, pool_size)
        pool = order[:pool_size]
        perm = torch.randperm(pool_size, generator=self.generator, device=self.generator.device).to(
            self.device
        )
        dropped = pool[perm[:drop]]
        weights = torch.ones(self.size, device=self.device)
        if pool_size > drop:
            weights[pool] = pool_size / (pool_size - drop)
        # NOTE [reweighting]: a pool sample is kept with probability p = 1 - drop/pool, so
        # weighting it 1/p makes the kept set's weighted sum unbiased for the full data's
        # sum (InfoBatch's rescaling, reweight="epoch": an epoch's summed update matches a
        # full epoch's, in fewer, larger steps). reweight="step" also scales every weight
        # by the kept fraction, so each step's weighted batch mean is unbiased for the full
        # data's mean (the same step size as without pruning).
        if config.reweight == "step":
            weights *= (self.size - drop) / self.size
        keep = torch.ones(self.size, dtype=torch.bool, device=self.device)
        keep[dropped] = False
        chosen = keep.nonzero().squeeze(1)
        return chosen, weights[chosen]

    def _choose_infobatch(
        self, everything: torch.Tensor, config: PruneConfig
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """InfoBatch's rule: drop each below-mean sample with probability r, weight 1/(1 - r).

        NOTE [infobatch rule]: a below-mean sample is kept with probability 1 - r, so its
        weight 1/(1 - r) makes the kept set's weighted sum unbiased for the full data's sum;
        nothing above the mean is dropped or weighted, so the pruned share is r times the
        share below the mean and adapts to the losses. Samples with no reported loss are
        never pruned. One draw of a uniform per sample, on the loss table's device.
        """
        losses = self._losses
        known = ~losses.isnan()
        if not bool(known.any()):  # one sync per epoch
            return everything, None
        r = config.probability
        mean = losses[known].mean()
        below = known & (losses < mean)
        draw = torch.rand(self.size, generator=self.generator, device=self.generator.device)
        dropped = below & (draw.to(self.device) < r)
        keep = ~dropped
        chosen = keep.nonzero().squeeze(1)  # the count: one more sync
        weights = torch.where(below, 1.0 / (1.0 - r), 1.0)[chosen]
        if config.reweight == "step":
            weights *= chosen.numel() / self.size
        return chosen, weights

    def _merge_losses(self) -> None:
        """Under DDP, merge every rank's losses reported since the last merge (one all-reduce)."""
        if not self._unmerged:
            return
        self._unmerged = False
        _, size = world(self.process_group)
        if size > 1 and self._prune:
            comm = collective_device(self.device, self.process_group)
            updated = self._updated.float()
            box = torch.stack([torch.nan_to_num(self._losses * updated, nan=0.0), updated])
            box = box.to(comm)
            dist.all_reduce(box, group=self.process_group)
            box = box.to(self.device)
            merged = box[0] / box[1].clamp(min=1)
            self._losses = torch.where(box[1] > 0, merged, self._losses)
        self._updated.zero_()
