"""What a training step minimises. The backbone loss alone, or (see ``recdenoiser.denoiser``)
the backbone loss plus Rec-Denoiser's regularisers."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from recdenoiser.models.base import SequentialRecommender
from recdenoiser.models.batch import Batch


class Objective(Protocol):
    def __call__(
        self, model: SequentialRecommender, batch: Batch
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Return the scalar loss to back-propagate and named tensors to log."""
        ...


class BackboneObjective:
    """The model's own next-item loss (mean over the batch's target positions)."""

    def __call__(
        self, model: SequentialRecommender, batch: Batch
    ) -> tuple[Tensor, dict[str, Tensor]]:
        loss = model.sequence_loss(batch).sum()
        return loss * batch.loss_scale, {"loss": loss.detach()}
