"""Training callbacks: validation, best-checkpoint keeping and early stopping in one; and the
resumable training state written after every epoch.

Selection uses the validation split only; the test split is never looked at during training.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

from recdenoiser.evaluation import EvalResult

logger = logging.getLogger(__name__)


class ValidateAndKeepBest(L.Callback):
    """Evaluate on validation every ``every`` epochs; save the best model; stop after
    ``patience`` validations without improvement of ``monitor``."""

    def __init__(
        self,
        validate: Callable[[], EvalResult],
        save_best: Callable[[dict[str, Any]], None],
        every: int,
        monitor: str,
        patience: int | None,
    ):
        self.validate = validate
        self.save_best = save_best
        self.every = every
        self.monitor = monitor
        self.patience = patience
        self.best_score = -math.inf
        self.best_epoch = -1
        self.bad_validations = 0
        self.history: list[dict[str, Any]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # resumed from a state saved after early stopping (killed during the final test
        # evaluation): the decision stands, no further epoch is trained
        if self.patience is not None and self.bad_validations >= self.patience:
            logger.info(
                "training had stopped early (no improvement in %d validations): not resuming it",
                self.patience,
            )
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = epoch >= (trainer.max_epochs or 0)
        if epoch % self.every and not last:
            return
        start = time.perf_counter()
        result = self.validate()
        if self.monitor not in result.metrics:
            raise KeyError(f"train.monitor {self.monitor!r} is not among {sorted(result.metrics)}")
        score = result.metrics[self.monitor]
        pl_module.log_dict({f"val/{k}": v for k, v in result.metrics.items()}, on_epoch=True)
        record = {"epoch": epoch, **result.metrics, "eval_seconds": time.perf_counter() - start}
        self.history.append(record)
        improved = score > self.best_score
        logger.info(
            "epoch %d: validation %s = %.4f (best %.4f at epoch %d)%s",
            epoch,
            self.monitor,
            score,
            max(score, self.best_score),
            epoch if improved else self.best_epoch,
            " *" if improved else "",
        )
        if improved:
            self.best_score, self.best_epoch, self.bad_validations = score, epoch, 0
            self.save_best({"epoch": epoch, "valid_metrics": result.metrics})
        else:
            self.bad_validations += 1
            if self.patience is not None and self.bad_validations >= self.patience:
                logger.info("early stopping: no improvement in %d validations", self.patience)
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad_validations": self.bad_validations,
            "history": self.history,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]
        self.bad_validations = state_dict["bad_validations"]
        self.history = list(state_dict["history"])


class SaveTrainingState(L.Callback):
    """Write the full training state (``--resume``) to ``path`` after every epoch.

    Written to a temporary file and renamed, so a process killed at any moment (``kill -9``
    included) leaves the previous epoch's complete state, never a truncated file. Put it after
    the callbacks whose state it must hold (:class:`ValidateAndKeepBest`): callbacks run in
    list order.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # with optimizer and callback states
        os.replace(tmp, self.path)


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    import csv

    if not history:
        return
    keys = list(history[0])
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
