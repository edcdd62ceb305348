"""Evaluation: sampled and full-ranking leave-one-out metrics with per-user results."""

from recdenoiser.evaluation.candidates import (
    EvaluationError,
    InsufficientNegativesError,
    sample_negatives,
)
from recdenoiser.evaluation.evaluator import (
    EvalResult,
    Scorer,
    evaluate,
    load_per_user,
    paired_test,
    save_per_user,
)
from recdenoiser.evaluation.metrics import (
    DEFAULT_KS,
    METRIC_NAMES,
    mean_metrics,
    metric_names,
    rank_metrics,
)

__all__ = [
    "DEFAULT_KS",
    "METRIC_NAMES",
    "EvalResult",
    "EvaluationError",
    "InsufficientNegativesError",
    "Scorer",
    "evaluate",
    "load_per_user",
    "mean_metrics",
    "metric_names",
    "paired_test",
    "rank_metrics",
    "sample_negatives",
    "save_per_user",
]
