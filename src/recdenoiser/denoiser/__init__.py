"""Rec-Denoiser as a plug-in for any self-attentive backbone.

``attach_denoiser(model, config)`` plugs trainable attention masks into the model's mask hook;
``DenoiserObjective(config)`` adds the L0 and Jacobian terms to its loss. The backbone's code is
not copied or changed.
"""

from __future__ import annotations

from recdenoiser.config import DenoiserConfig
from recdenoiser.denoiser.masks import AttentionMasks
from recdenoiser.denoiser.objective import DenoiserObjective
from recdenoiser.models.base import SelfAttentiveRecommender


def attach_denoiser(
    model: SelfAttentiveRecommender, config: DenoiserConfig
) -> SelfAttentiveRecommender:
    """Give ``model`` one trainable mask per attention layer (when ``config.masks``)."""
    if config.masks:
        model.mask_provider = AttentionMasks(
            num_layers=len(model.encoder.blocks),
            max_len=model.max_len,
            hidden_size=model.config.hidden_size,
            config=config,
        )
    return model


__all__ = ["AttentionMasks", "DenoiserObjective", "attach_denoiser"]
