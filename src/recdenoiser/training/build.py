"""Build a model (and its Rec-Denoiser plug-in, when enabled) from a resolved configuration."""

from __future__ import annotations

import logging

from recdenoiser.config import ModelConfig, RunConfig
from recdenoiser.errors import ConfigError
from recdenoiser.models import MODELS, build_model
from recdenoiser.models.base import SelfAttentiveRecommender, SequentialRecommender
from recdenoiser.models.losses import NEEDS_NEGATIVES
from recdenoiser.training.objective import BackboneObjective, Objective

logger = logging.getLogger(__name__)


def check_model(config: RunConfig) -> type[SequentialRecommender]:
    """The model class ``model.name`` names, after refusing the settings it cannot use.

    Needs the configuration only (the class's own :meth:`~SequentialRecommender.check_config`
    and whether it is self-attentive), so the trainer calls it before reading data or writing
    anything. ``data.max_len`` may still be ``"auto"``: checks that need it then wait for the
    model to be built.
    """
    cls = MODELS.get(config.model.name)
    if config.denoiser.enabled and not issubclass(cls, SelfAttentiveRecommender):
        raise ConfigError(
            f"denoiser.enabled needs a self-attentive model; {config.model.name!r} is not one"
        )
    max_len = config.data.max_len
    cls.check_config(config.model, max_len if isinstance(max_len, int) else None)
    return cls


def warn_ignored_settings(config: RunConfig) -> None:
    """Log a warning for each explicitly set value the run will not use (not an error)."""
    model = config.model
    default = ModelConfig.model_fields["num_negatives"].default
    if not NEEDS_NEGATIVES[model.loss] and model.num_negatives != default:
        logger.warning(
            "model.num_negatives=%d is ignored: loss %r scores every item and samples no negatives",
            model.num_negatives,
            model.loss,
        )
    if model.attention != "sparse_fixed":
        for key in ("sparse_window", "sparse_stride"):
            value = getattr(model, key)
            if value != ModelConfig.model_fields[key].default:
                logger.warning(
                    "model.%s=%d is ignored: it only shapes model.attention=sparse_fixed "
                    "(this run uses %r)",
                    key,
                    value,
                    model.attention,
                )


def warn_known_collapses(config: RunConfig) -> None:
    """Log a warning for setting combinations measured to collapse training (not an error)."""
    den = config.denoiser
    if den.enabled and den.jacobian and den.gamma > 0 and config.model.norm == "post":
        logger.warning(
            "denoiser.jacobian with post-norm blocks (model.norm=post, e.g. BERT4Rec): every "
            "post-norm block ends in a LayerNorm and has no skip path around it, so the "
            "Jacobian penalty can be driven to ~0 only by making the blocks ignore their input; "
            "measured on BERT4Rec (ML-1M, Beauty, Games) this leaves a popularity ranker, on ML-1M "
            "also at gamma=1e-5 and with jacobian_target=residual. denoiser.jacobian=false keeps "
            "the masks and kept pace with the backbone in a 20-epoch check (docs/results.md, "
            "Table 2)"
        )


def build_recommender(
    config: RunConfig, n_items: int, n_users: int | None = None
) -> SequentialRecommender:
    max_len = config.data.max_len
    if not isinstance(max_len, int):
        raise ConfigError("data.max_len must be resolved before building a model")
    check_model(config)  # refuses the denoiser on models without attention
    model = build_model(config.model, n_items=n_items, max_len=max_len, n_users=n_users)
    if config.denoiser.enabled:
        from recdenoiser.denoiser import attach_denoiser

        assert isinstance(model, SelfAttentiveRecommender)
        attach_denoiser(model, config.denoiser)
    return model


def build_objective(config: RunConfig) -> Objective:
    if config.denoiser.enabled:
        from recdenoiser.denoiser import DenoiserObjective

        return DenoiserObjective(config.denoiser)
    return BackboneObjective()
