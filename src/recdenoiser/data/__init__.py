"""Data pipeline: readers, preprocessing, splits, noise injection, dataset registry and cache."""

from recdenoiser.data.cache import load_dataset
from recdenoiser.data.dataset import PAD, SequenceDataset
from recdenoiser.data.noise import NoiseRecord, inject_noise
from recdenoiser.data.preprocess import preprocess
from recdenoiser.data.readers import ColumnMapping, from_dataframe, read_interactions
from recdenoiser.data.registry import DATASETS
from recdenoiser.data.split import LeaveOneOutSplit

__all__ = [
    "DATASETS",
    "PAD",
    "ColumnMapping",
    "LeaveOneOutSplit",
    "NoiseRecord",
    "SequenceDataset",
    "from_dataframe",
    "inject_noise",
    "load_dataset",
    "preprocess",
    "read_interactions",
]
