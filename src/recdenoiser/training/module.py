"""The Lightning module: one training step = the objective on one batch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from recdenoiser.config import RunConfig
from recdenoiser.errors import TrainingError
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.training.data import TrainingSequences
from recdenoiser.training.objective import Objective

MASK_PARAM_PREFIX = "mask_provider."


def _divergence_message(
    loss: torch.Tensor, logs: dict[str, Any], epoch: int, batch_idx: int
) -> str:
    terms = ", ".join(f"{name} {float(value):.4g}" for name, value in logs.items())
    return (
        f"training diverged at epoch {epoch + 1}, batch {batch_idx + 1}: the loss is "
        f"{float(loss.detach()):g} ({terms}); lower train.lr, denoiser.beta or denoiser.gamma, "
        "or set train.grad_clip (checkpoints written so far are kept in the run folder)"
    )


class RecommenderModule(L.LightningModule):
    def __init__(
        self,
        model: SequentialRecommender,
        objective: Objective,
        config: RunConfig,
        train_data: TrainingSequences,
    ):
        super().__init__()
        self.model = model
        self.objective = objective
        self.config = config
        self.train_data = train_data

    def train_dataloader(self) -> Any:
        cfg = self.config.train
        return self.train_data.loader(cfg.batch_size, self.config.seed, cfg.bucket_by_length)

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "epoch"):
            dataset.epoch = self.current_epoch

    def transfer_batch_to_device(
        self, batch: Batch, device: torch.device, dataloader_idx: int
    ) -> Batch:
        return batch.to(device)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, logs = self.objective(self.model, batch)
        if not bool(torch.isfinite(loss.detach())):
            raise TrainingError(_divergence_message(loss, logs, self.current_epoch, batch_idx))
        n = len(batch)
        for name, value in logs.items():
            self.log(
                f"train/{name}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=n,
                prog_bar=name == "loss",
            )
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.config.train
        backbone: list[torch.nn.Parameter] = []
        masks: list[torch.nn.Parameter] = []
        for name, param in self.model.named_parameters():
            (masks if name.startswith(MASK_PARAM_PREFIX) else backbone).append(param)
        groups: list[dict[str, Any]] = [{"params": backbone}]
        if masks:
            mask_lr = self.config.denoiser.mask_lr or cfg.lr
            groups.append({"params": masks, "lr": mask_lr, "weight_decay": 0.0})
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
