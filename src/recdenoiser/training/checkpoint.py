"""Self-contained model checkpoints.

A checkpoint holds the weights, the resolved run configuration, the dataset's id maps and
sequences (so raw ids map back and histories are known) and the package version: loading it needs
nothing else. It is a ``torch.save`` dict of tensors, strings and plain containers, loaded with
``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recdenoiser import __version__
from recdenoiser.config import RunConfig, config_from_dict
from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.errors import RecDenoiserError
from recdenoiser.models.base import SequentialRecommender

FORMAT_VERSION = 1


@dataclass
class LoadedCheckpoint:
    model: SequentialRecommender
    config: RunConfig
    dataset: SequenceDataset
    info: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    model: SequentialRecommender,
    config: RunConfig,
    dataset: SequenceDataset,
    info: dict[str, Any] | None = None,
) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": config.model_dump(mode="json"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dataset": {
            "name": dataset.name,
            "items": torch.from_numpy(dataset.items),
            "offsets": torch.from_numpy(dataset.offsets),
            "timestamps": None
            if dataset.timestamps is None
            else torch.from_numpy(dataset.timestamps),
            "user_ids": dataset.user_ids.tolist(),
            "item_ids": dataset.item_ids.tolist(),
        },
        "info": info or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    from recdenoiser.training.build import build_recommender

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    if not path.exists():
        raise RecDenoiserError(f"checkpoint not found: {path}")
    use_best = "pass the run folder or its checkpoints/best.pt"
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # torch raises several unrelated types for corrupt files
        if path.suffix == ".ckpt":
            hint = f".ckpt files are Lightning resume checkpoints: {use_best}"
        else:
            hint = f"the file is not one saved by recdenoiser train: {use_best}"
        raise RecDenoiserError(f"{path}: not a readable recdenoiser checkpoint; {hint}") from None
    if isinstance(payload, dict) and "pytorch-lightning_version" in payload:
        raise RecDenoiserError(
            f"{path} is a Lightning resume checkpoint (for train --resume), not a model: {use_best}"
        )
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise RecDenoiserError(f"{path}: not a recdenoiser checkpoint (format version mismatch)")
    missing = [k for k in ("config", "dataset", "state_dict") if k not in payload]
    if missing:
        raise RecDenoiserError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    config = config_from_dict(payload["config"], f"{path} (stored config)")
    ds = payload["dataset"]
    try:
        dataset = SequenceDataset(
            name=ds["name"],
            items=ds["items"].numpy(),
            offsets=ds["offsets"].numpy(),
            user_ids=ds["user_ids"],
            item_ids=ds["item_ids"],
            timestamps=None if ds["timestamps"] is None else ds["timestamps"].numpy(),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise RecDenoiserError(f"{path}: damaged dataset section ({exc!r})") from None
    model = build_recommender(config, dataset.n_items, dataset.n_users)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RecDenoiserError(
            f"{path}: the weights do not fit the stored configuration ({first})"
        ) from None
    model.to(device).eval()
    info = dict(payload.get("info", {}))
    info["package_version"] = payload.get("package_version")
    return LoadedCheckpoint(model=model, config=config, dataset=dataset, info=info)
