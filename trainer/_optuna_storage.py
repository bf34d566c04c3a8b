"""Optuna's RDB storage, made safe for the tuner's parallel trial threads on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState


class TrialStorage(optuna.storages.RDBStorage):
    """RDBStorage whose trial state changes are serialized within this process.

    A trial thread claims a queued trial (WAITING -> RUNNING) with a read-check-write that
    relies on SELECT ... FOR UPDATE, which SQLite ignores: two threads could claim the same
    requeued trial, and the second then fails the whole tuning job with "Cannot tell a
    COMPLETE trial". A process-wide lock makes the claim atomic for our threads; shared
    databases across machines (PostgreSQL, MySQL) keep their row locks.
    """

    _state_lock = threading.Lock()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._state_lock:
            return super().set_trial_state_values(trial_id, state, values)
