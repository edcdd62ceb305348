"""Sequential recommenders built from shared parts; ``MODELS`` maps names to classes."""

from recdenoiser.models import (  # noqa: F401  (importing a module registers its model)
    bert4rec,
    caser,
    fpmc,
    gru4rec,
    sasrec,
    ssept,
    tisasrec,
)
from recdenoiser.models.base import (
    MODELS,
    SelfAttentiveRecommender,
    SequentialRecommender,
    build_model,
)
from recdenoiser.models.batch import Batch, pad_left

__all__ = [
    "MODELS",
    "Batch",
    "SelfAttentiveRecommender",
    "SequentialRecommender",
    "build_model",
    "pad_left",
]
