"""Loss-based data sifting for any PyTorch training loop.

Three modes, one loop shape::

    from trainspec.trainer import sifting

    config = sifting.config_from_env()          # TRAINSPEC_SIFTING, None when unset
    loader = train_loader if config is None else sifting.from_config(
        config, train_loader, model, MyLoss(), epochs=epochs, seed=0)
    for epoch in range(epochs):
        for x, y in loader:
            per_sample = F.cross_entropy(model(x), y, reduction="none")
            loss = loader.report(per_sample) if config else per_sample.mean()
            loss.backward(); optimizer.step(); optimizer.zero_grad()
        print(loader.stats)                     # SiftingStats of the epoch

* RelativeProbabilisticSiftConfig + SiftingDataloader: SageMaker smart sifting's method
  and API (same class names and call shapes: SiftingDataloader(sift_config,
  orig_dataloader, batch_transforms, model, loss_impl, log_batch_data), LossConfig,
  SiftingBaseConfig, Loss). Each batch is scored by an extra no-grad forward pass in eval
  mode (train/eval mode and RNG state restored after); a sample is kept with probability
  percentile**beta_value against the last loss_history_length losses (about
  1/(1 + beta_value) kept); kept samples refill batches of the original size and format
  (tensor, tuple/list, dict); the leftover is yielded at epoch end; no sifting during the
  first sift_delay steps. Optional torch.autocast for scoring (autocast_dtype).
  Batches are scored in groups of `score_batches` (same choices, less bookkeeping).
* PruneConfig + PruningDataloader: no scoring pass (InfoBatch). `report()` takes the
  training step's per-sample losses and returns the re-weighted loss to backpropagate.
  Later epochs prune among the samples whose last loss is below the mean: rule
  "infobatch" drops each with probability prune_probability (r) and weights the kept ones
  1/(1 - r), so the pruned share adapts to the losses; rule "quota" drops a fixed
  1 - keep_fraction of the data (a fixed compute budget). Both are unbiased (`reweight`:
  "epoch", as InfoBatch, or "step"). The last anneal_fraction of the epochs use all data,
  so `epochs` is required unless anneal_fraction is 0. `planned_steps()` gives every
  epoch's step count ahead (quota rule) for per-step LR schedulers; `progress` gives the
  epochs done for schedules that follow it (any rule). One process follows the original
  DataLoader's sampler order; under DDP the loader splits the data itself (a
  DistributedSampler underneath is refused) and merges the ranks' losses at each epoch's
  start.
* RandomDropConfig: a uniform random keep_fraction each epoch (the baseline).

Every random choice uses one torch.Generator (pass `generator` or `seed`; the default seed
is torch.initial_seed()). Loss history and percentiles stay on the model's device. Under
DistributedDataParallel every rank yields the same number of batches per epoch and
percentiles/losses are shared across ranks (the original loader must give every rank the
same number of batches, e.g. with a DistributedSampler).

The local runner passes a job's `sifting` block as TRAINSPEC_SIFTING, the proto3 JSON of
trainspec.v1.Sifting; `config_from_env()` turns it into one of the configs above (a
ValueError names the bad field) and `from_config()` into the loader. Counters are logged
at INFO on the "trainspec.trainer.sifting" logger at each epoch end.
"""

from ._batch import BatchFormatError
from ._config import (
    LossConfig,
    PruneConfig,
    RandomDropConfig,
    RelativeProbabilisticSiftConfig,
    SiftConfig,
    SiftingBaseConfig,
)
from ._env import ENV_VAR, config_from_env, config_from_json, from_config
from ._loss import Loss
from ._policy import SiftPolicy
from ._prune import PruningDataloader
from ._relative import RelativeProbabilisticPolicy
from ._sift_dataloader import SiftingDataloader
from ._stats import SiftingStats

__all__ = [
    "ENV_VAR",
    "BatchFormatError",
    "Loss",
    "LossConfig",
    "PruneConfig",
    "PruningDataloader",
    "RandomDropConfig",
    "RelativeProbabilisticPolicy",
    "RelativeProbabilisticSiftConfig",
    "SiftConfig",
    "SiftPolicy",
    "SiftingBaseConfig",
    "SiftingDataloader",
    "SiftingStats",
    "config_from_env",
    "config_from_json",
    "from_config",
]
