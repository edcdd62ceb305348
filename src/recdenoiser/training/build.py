"""Build a model (and its Rec-Denoiser plug-in, when enabled) from a resolved configuration."""

from __future__ import annotations

from recdenoiser.config import RunConfig
from recdenoiser.errors import ConfigError
from recdenoiser.models import build_model
from recdenoiser.models.base import SelfAttentiveRecommender, SequentialRecommender
from recdenoiser.training.objective import BackboneObjective, Objective


def build_recommender(
    config: RunConfig, n_items: int, n_users: int | None = None
) -> SequentialRecommender:
    max_len = config.data.max_len
    if not isinstance(max_len, int):
        raise ConfigError("data.max_len must be resolved before building a model")
    model = build_model(config.model, n_items=n_items, max_len=max_len, n_users=n_users)
    if config.denoiser.enabled:
        from recdenoiser.denoiser import attach_denoiser

        if not isinstance(model, SelfAttentiveRecommender):
            raise ConfigError(
                f"denoiser.enabled needs a self-attentive model; {config.model.name!r} is not one"
            )
        attach_denoiser(model, config.denoiser)
    return model


def build_objective(config: RunConfig) -> Objective:
    if config.denoiser.enabled:
        from recdenoiser.denoiser import DenoiserObjective

        return DenoiserObjective(config.denoiser)
    return BackboneObjective()
