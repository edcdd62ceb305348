"""End-to-end training on the planted dataset: quality, run files, determinism, resume,
checkpoints, Rec-Denoiser runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from recdenoiser.config import RunConfig, load_config
from recdenoiser.data import LeaveOneOutSplit, load_dataset
from recdenoiser.denoiser import AttentionMasks
from recdenoiser.errors import RecDenoiserError
from recdenoiser.evaluation import evaluate, load_per_user
from recdenoiser.models.batch import Batch
from recdenoiser.training import data as training_data
from recdenoiser.training.build import build_recommender
from recdenoiser.training.checkpoint import load_checkpoint, save_checkpoint
from recdenoiser.training.runner import RunResult, train
from tests.conftest import make_run_config
from tests.helpers import N_ITEMS, PopularityScorer, left_padded

METRIC_KEYS = ("hit@1", "hit@5", "hit@10", "ndcg@1", "ndcg@5", "ndcg@10", "mrr")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def evaluate_like_run(model: Any, split: LeaveOneOutSplit, config: RunConfig, stage: str) -> Any:
    return evaluate(
        model,
        split,
        stage=stage,  # type: ignore[arg-type]
        protocol="sampled",
        max_len=int(config.data.max_len),
        num_negatives=config.eval.num_negatives,
        ks=tuple(config.eval.ks),
        seed=config.eval.seed,
    )


@pytest.fixture()
def epoch_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the epoch counter every time an epoch of training batches starts."""
    seen: list[int] = []
    original = training_data._EpochBatches.__iter__

    def spy(self: Any) -> Any:
        seen.append(self.epoch)
        return original(self)

    monkeypatch.setattr(training_data._EpochBatches, "__iter__", spy)
    return seen


# ----------------------------------------------------------------------------- quality
def test_beats_popularity_on_planted_data(trained_run: RunResult) -> None:
    config = trained_run.config
    dataset = load_dataset(config.data.dataset, fmt="user-item", k_core=0)
    split = LeaveOneOutSplit.from_dataset(dataset)
    popularity = PopularityScorer(split.train_items, split.n_items)
    pop = evaluate_like_run(popularity, split, config, "test").metrics
    model = trained_run.results["test"]["sampled"]
    # measured: popularity hit@10 ~0.51, ndcg@10 ~0.25; model (6 epochs) ~0.92 / ~0.79
    assert model["hit@10"] >= pop["hit@10"] + 0.25, (model, pop)
    assert model["ndcg@10"] >= pop["ndcg@10"] + 0.3, (model, pop)
    assert model["hit@1"] >= 0.4
    # the full-ranking protocol is harder but still far above chance (10 / 60)
    assert trained_run.results["test"]["full"]["hit@10"] >= 0.5


def test_run_directory_contents(trained_run: RunResult) -> None:
    run = trained_run.run_dir
    assert run.name == "main"
    for name in (
        "config.yaml",
        "run.log",
        "results.json",
        "metrics.csv",
        "validation.csv",
        "checkpoints/best.pt",
        "checkpoints/last.ckpt",
        "per_user/test_sampled.csv",
        "per_user/test_full.csv",
    ):
        assert (run / name).is_file(), name
    saved = load_config(run / "config.yaml")
    assert saved == trained_run.config
    assert saved.data.max_len == 20 and saved.model.dropout == 0.1
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == 6
    assert results["model"] == "sasrec" and results["denoiser"] is False
    for stage in ("valid", "test"):
        for protocol in ("sampled", "full"):
            assert set(METRIC_KEYS) <= set(results[stage][protocol])
    per_user = load_per_user(run / "per_user" / "test_sampled.csv")
    assert len(per_user) == 300  # every planted user has >= 8 interactions
    assert per_user["hit@10"].mean() == pytest.approx(results["test"]["sampled"]["hit@10"])


def test_run_log_is_complete_through_the_python_api(trained_run: RunResult) -> None:
    """run.log should hold the run's story whoever calls ``train``.

    runner.train attaches a FileHandler to the "recdenoiser" logger but never lets INFO records
    through it: only the CLI (configure_logging) lowers that logger's level to INFO. Through the
    Python API the logger keeps the default WARNING level and run.log stays empty.
    """
    log = (trained_run.run_dir / "run.log").read_text()
    assert "300 users, 60 items" in log
    assert "resolved config" in log
    assert "results written to" in log


def test_best_checkpoint_chosen_on_validation(trained_run: RunResult) -> None:
    run = trained_run.run_dir
    history = read_csv(run / "validation.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4, 5, 6]
    monitor = trained_run.config.train.monitor
    scores = [float(r[monitor]) for r in history]
    best_epoch = int(history[int(np.argmax(scores))]["epoch"])
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] == best_epoch
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best.info["epoch"] == best_epoch
    assert best.info["valid_metrics"][monitor] == pytest.approx(max(scores))
    # results.json holds the metrics of exactly this checkpoint
    split = LeaveOneOutSplit.from_dataset(best.dataset)
    for stage in ("valid", "test"):
        again = evaluate_like_run(best.model, split, best.config, stage).metrics
        assert again == pytest.approx(results[stage]["sampled"], abs=1e-9)
    assert results["valid"]["sampled"][monitor] == pytest.approx(max(scores))


def test_loaded_checkpoint_keeps_id_maps(trained_run: RunResult) -> None:
    best = load_checkpoint(trained_run.run_dir)  # a run directory means its best.pt
    dataset = load_dataset(trained_run.config.data.dataset, fmt="user-item", k_core=0)
    assert best.dataset.user_ids.tolist() == dataset.user_ids.tolist()
    assert best.dataset.item_ids.tolist() == dataset.item_ids.tolist()
    np.testing.assert_array_equal(best.dataset.items, dataset.items)
    np.testing.assert_array_equal(best.dataset.offsets, dataset.offsets)
    assert best.config == trained_run.config
    assert not best.model.training


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_scores(tmp_path: Path, planted_dataset: Any) -> None:
    config = make_run_config(Path("unused.txt"), tmp_path, model={"num_blocks": 2})
    torch.manual_seed(3)
    model = build_recommender(config, planted_dataset.n_items).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config, planted_dataset, {"epoch": 4})
    loaded = load_checkpoint(path)
    assert loaded.info["epoch"] == 4 and loaded.info["package_version"]
    batch = Batch(
        item_seq=left_padded([[1, 2, 3], [5, 9, 2, 33, 60], [7]], 20), users=torch.arange(3)
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.score_all(batch), model.score_all(batch))
    assert loaded.dataset.user_index("17") == planted_dataset.user_index("17")
    assert loaded.dataset.item_ids.tolist() == planted_dataset.item_ids.tolist()
    assert loaded.dataset.timestamps is None


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(RecDenoiserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(RecDenoiserError, match="not a readable recdenoiser checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(RecDenoiserError, match="format version"):
        load_checkpoint(foreign)


# --------------------------------------------------------------------- determinism, resume
def test_same_seed_same_results(tiny_config: RunConfig, epoch_spy: list[int]) -> None:
    first = train(tiny_config.model_copy(update={"name": "a"}))
    assert epoch_spy == [0, 1]  # the trainer advances the loader's epoch counter
    second = train(tiny_config.model_copy(update={"name": "b"}))
    for stage in ("valid", "test"):
        assert first.results[stage] == second.results[stage]
    assert first.results["best_epoch"] == second.results["best_epoch"]
    a = torch.load(first.run_dir / "checkpoints/best.pt", weights_only=True)["state_dict"]
    b = torch.load(second.run_dir / "checkpoints/best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_from_last_checkpoint(
    tiny_config: RunConfig, epoch_spy: list[int]
) -> None:
    first = train(tiny_config.model_copy(update={"name": "resumable"}))
    run = first.run_dir
    assert [r["epoch"] for r in read_csv(run / "validation.csv")] == ["1", "2"]
    epoch_spy.clear()
    longer = tiny_config.model_copy(deep=True)
    longer.train.epochs = 3
    resumed = train(longer, resume=run / "checkpoints" / "last.ckpt")
    assert resumed.run_dir == run
    assert epoch_spy == [2]  # only the third epoch ran
    assert resumed.results["epochs_run"] == 3
    history = read_csv(run / "validation.csv")
    assert [r["epoch"] for r in history] == ["1", "2", "3"]
    metrics = read_csv(run / "metrics.csv")
    epochs = sorted({int(r["epoch"]) for r in metrics if r.get("epoch")})
    assert 2 in epochs  # Lightning counts from 0: the third epoch
    assert 0 in epochs, "metrics.csv lost the epochs logged before the resume"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3


# --------------------------------------------------------------------------- denoiser
@pytest.mark.parametrize(
    ("mask_kind", "estimator"),
    [("positional", "arm"), ("input_dependent", "ar"), ("input_dependent", "arm")],
)
def test_denoiser_run_and_reload(tiny_config: RunConfig, mask_kind: str, estimator: str) -> None:
    config = RunConfig.model_validate(
        {
            **tiny_config.model_dump(),
            "name": f"den-{mask_kind}-{estimator}",
            "denoiser": {"enabled": True, "mask_kind": mask_kind, "estimator": estimator},
            "train": {**tiny_config.train.model_dump(), "epochs": 1},
        }
    )
    result = train(config)
    assert result.results["denoiser"] is True
    for protocol in ("sampled", "full"):
        assert all(np.isfinite(v) for v in result.results["test"][protocol].values())
    path = result.run_dir / "checkpoints" / "best.pt"
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert "model.mask_provider.phi" not in stored  # keys are the model's own
    assert "mask_provider.phi" in stored
    assert ("mask_provider.query.weight" in stored) == (mask_kind == "input_dependent")
    loaded = load_checkpoint(path)
    masks = loaded.model.mask_provider  # type: ignore[attr-defined]
    assert isinstance(masks, AttentionMasks)
    assert loaded.config.denoiser.mask_kind == mask_kind
    torch.testing.assert_close(masks.phi.detach(), stored["mask_provider.phi"])
    # a training step moved the mask logits away from their initial value
    assert not torch.allclose(masks.phi, torch.full_like(masks.phi, masks.phi.flatten()[-1]))
    split = LeaveOneOutSplit.from_dataset(loaded.dataset)
    again = evaluate_like_run(loaded.model, split, loaded.config, "test").metrics
    assert again == pytest.approx(result.results["test"]["sampled"], abs=1e-9)


def test_catalogue_size_matches(trained_run: RunResult) -> None:
    best = load_checkpoint(trained_run.run_dir)
    assert best.dataset.n_items == N_ITEMS
    assert best.model.item_table().shape == (N_ITEMS + 1, 16)
