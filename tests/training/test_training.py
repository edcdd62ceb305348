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
from recdenoiser.data.cache import CACHE_DIR_ENV
from recdenoiser.denoiser import AttentionMasks
from recdenoiser.errors import RecDenoiserError
from recdenoiser.evaluation import evaluate, load_per_user
from recdenoiser.models.batch import Batch
from recdenoiser.training import data as training_data
from recdenoiser.training.build import build_recommender
from recdenoiser.training.checkpoint import load_checkpoint, save_checkpoint
from recdenoiser.training.runner import RunResult, train
from tests.conftest import make_run_config, spy_on_epochs
from tests.helpers import N_ITEMS, PopularityScorer, left_padded, write_user_item

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


def test_saved_config_holds_only_concrete_values(tiny_config: RunConfig) -> None:
    """config.py promises that the resolved configuration saved with every run holds only
    concrete values, but ``resolve`` never fills ``data.k_core="auto"``: config.yaml (and the
    checkpoint's config) say "auto" instead of the k-core filter the run actually used.

    ``train.device="auto"`` is left out: it is chosen per machine (results.json records it).
    """
    config = tiny_config.model_copy(deep=True)
    config.name = "auto-core"
    config.data.k_core = "auto"
    result = train(config)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    autos = [
        f"{section}.{key}"
        for section, values in saved.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if value == "auto" and f"{section}.{key}" != "train.device"
    ]
    assert autos == []
    assert saved["data"]["k_core"] == 5  # the default k-core filter for a file path


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


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, planted_file: Path) -> dict[str, Any]:
    """Train 2 epochs, then resume from last.ckpt with epochs=3."""
    out = tmp_path_factory.mktemp("resume")
    config = make_run_config(planted_file, out / "runs", name="resumable")
    seen: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(out / "cache"))
        spy_on_epochs(mp, seen)
        first = train(config)
        before = {
            "validation": read_csv(first.run_dir / "validation.csv"),
            "metrics": read_csv(first.run_dir / "metrics.csv"),
            "epochs_seen": list(seen),
        }
        seen.clear()
        longer = config.model_copy(deep=True)
        longer.train.epochs = 3
        again = train(longer, resume=first.run_dir / "checkpoints" / "last.ckpt")
    return {"first": first, "resumed": again, "before": before, "epochs_seen": seen}


def test_resume_continues_from_last_checkpoint(resumed: dict[str, Any]) -> None:
    run = resumed["first"].run_dir
    assert [r["epoch"] for r in resumed["before"]["validation"]] == ["1", "2"]
    assert resumed["before"]["epochs_seen"] == [0, 1]
    assert resumed["resumed"].run_dir == run
    assert resumed["epochs_seen"] == [2]  # only the third epoch ran, with its own order
    assert resumed["resumed"].results["epochs_run"] == 3
    history = read_csv(run / "validation.csv")
    assert [r["epoch"] for r in history] == ["1", "2", "3"]
    assert history[:2] == resumed["before"]["validation"]  # restored, not recomputed
    metrics = read_csv(run / "metrics.csv")
    assert 2 in {int(r["epoch"]) for r in metrics if r.get("epoch")}  # Lightning counts from 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3
    best = load_checkpoint(run)
    scores = [float(r["ndcg@10"]) for r in history]
    assert (
        best.info["epoch"] == int(np.argmax(scores)) + 1 == resumed["resumed"].results["best_epoch"]
    )


def test_a_resumed_attempt_cut_short_keeps_every_earlier_epoch(
    tmp_path: Path, planted_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_run_config(planted_file, tmp_path / "runs", name="twice", train={"epochs": 2})
    run = train(config)
    last = run.run_dir / "checkpoints" / "last.ckpt"
    original = training_data._EpochBatches.__iter__

    def dies_at_epoch_3(self: Any) -> Any:
        for i, batch in enumerate(original(self)):
            if self.epoch == 3 and i == 1:
                raise OSError("disk gone")  # any end of an attempt, as a kill would be
            yield batch

    monkeypatch.setattr(training_data._EpochBatches, "__iter__", dies_at_epoch_3)
    longer = config.model_copy(deep=True)
    longer.train.epochs = 5
    with pytest.raises(OSError, match="disk gone"):
        train(longer, resume=last)
    epochs = [int(r["epoch"]) for r in read_csv(run.run_dir / "metrics.csv") if r.get("epoch")]
    assert sorted(set(epochs)) == [0, 1, 2]  # the first attempt's epochs survived the second
    assert not (run.run_dir / "metrics.earlier.csv").exists()
    monkeypatch.setattr(training_data._EpochBatches, "__iter__", original)
    again = train(longer, resume=last)
    assert again.results["epochs_run"] == 5
    rows = [r for r in read_csv(run.run_dir / "metrics.csv") if r.get("epoch")]
    assert sorted({int(r["epoch"]) for r in rows}) == [0, 1, 2, 3, 4]
    losses = [r for r in rows if r.get("train/loss")]
    assert len(losses) == len({r["epoch"] for r in losses})  # epoch 3 not logged twice


def test_resume_after_an_early_stop_trains_no_further() -> None:
    """A run killed during its final test evaluation, after early stopping, is resumed from a
    state that says so: the stop stands (no extra epochs, which would change its results)."""
    from types import SimpleNamespace

    from recdenoiser.training.callbacks import ValidateAndKeepBest

    def keeper() -> ValidateAndKeepBest:
        return ValidateAndKeepBest(lambda: None, lambda _: None, 1, "ndcg@10", 2)  # type: ignore[arg-type,return-value]

    stopped, running = keeper(), keeper()
    state = {"best_score": 0.5, "best_epoch": 3, "bad_validations": 2, "history": []}
    stopped.load_state_dict(state)
    running.load_state_dict({**state, "bad_validations": 1})
    for callback, should_stop in ((stopped, True), (running, False)):
        trainer = SimpleNamespace(should_stop=False)
        callback.on_train_start(trainer, None)  # type: ignore[arg-type]
        assert trainer.should_stop is should_stop


def test_resume_refuses_other_data(tmp_path: Path, planted: list[list[int]]) -> None:
    data = write_user_item(tmp_path / "data.txt", planted)
    config = make_run_config(data, tmp_path / "runs", name="r", train={"epochs": 1})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
        run = train(config)
        stored = json.loads((run.run_dir / "data.json").read_text())
        assert stored["n_items"] > 0 and len(stored["sha256"]) == 64
        with data.open("a") as fh:
            fh.write("1 9999\n")
        with pytest.raises(RecDenoiserError, match="--resume: the data differs") as info:
            train(config, resume=run.run_dir / "checkpoints" / "last.ckpt")
        # a run made before RUN/data.json existed: the checkpoint itself does not fit
        (run.run_dir / "data.json").unlink()
        with pytest.raises(RecDenoiserError, match="does not fit the model built from the cur"):
            train(config, resume=run.run_dir / "checkpoints" / "last.ckpt")
        assert not (run.run_dir / "data.json").exists()  # not rewritten for the other data
        assert read_csv(run.run_dir / "metrics.csv")  # nor its log lost
    message = str(info.value)
    assert f"{stored['n_items']} items, sha256 {stored['sha256'][:12]} then" in message
    assert f"{stored['n_items'] + 1} items" in message and "\n" not in message


def test_resume_keeps_metrics_csv_history(resumed: dict[str, Any]) -> None:
    """metrics.csv should still hold the epochs trained before the resume.

    runner._train_in creates ``CSVLogger(run_dir, name="", version="")`` again on resume, and
    Lightning's CSV writer deletes an existing metrics.csv in its log directory: the training
    loss and validation rows of epochs 1-2 are lost (validation.csv survives because it is
    rebuilt from the callback state).
    """
    metrics = read_csv(resumed["first"].run_dir / "metrics.csv")
    epochs = sorted({int(r["epoch"]) for r in metrics if r.get("epoch")})
    before = sorted({int(r["epoch"]) for r in resumed["before"]["metrics"] if r.get("epoch")})
    assert before == [0, 1]
    assert epochs == [0, 1, 2]


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
    assert masks.phi.detach().std() > 0
    split = LeaveOneOutSplit.from_dataset(loaded.dataset)
    again = evaluate_like_run(loaded.model, split, loaded.config, "test").metrics
    assert again == pytest.approx(result.results["test"]["sampled"], abs=1e-9)


def test_diverging_loss_stops_with_a_one_line_error(tiny_config: RunConfig) -> None:
    """beta=1e300 overflows float32: the first step's loss is infinite; nothing NaN is saved."""
    config = RunConfig.model_validate(
        {
            **tiny_config.model_dump(),
            "name": "diverged",
            "denoiser": {"enabled": True, "beta": 1e300},
            "train": {**tiny_config.train.model_dump(), "epochs": 1},
        }
    )
    with pytest.raises(RecDenoiserError) as info:
        train(config)
    message = str(info.value)
    assert "diverged at epoch 1, batch 1" in message and "denoiser.beta" in message
    assert "\n" not in message
    assert not (Path(config.output_dir) / "diverged" / "results.json").exists()


def test_catalogue_size_matches(trained_run: RunResult) -> None:
    best = load_checkpoint(trained_run.run_dir)
    assert best.dataset.n_items == N_ITEMS
    assert best.model.item_table().shape == (N_ITEMS + 1, 16)


# ------------------------------------------------------------------- failed runs, run folder
@pytest.mark.parametrize(
    ("model", "denoiser", "message"),
    [
        ({"name": "gru4rec"}, {"enabled": True}, "denoiser.enabled needs a self-attentive model"),
        ({"name": "nosuchmodel"}, {}, "unknown model 'nosuchmodel'"),
        ({"name": "tisasrec"}, {}, "needs timestamps"),
        ({"name": "fpmc", "attention": "entmax15"}, {}, "model.attention='entmax15' needs"),
        ({"name": "caser", "caser_window": 21}, {}, "model.caser_window (21)"),
        ({"hidden_size": 10, "num_heads": 3}, {}, "num_heads (3)"),
        ({"name": "tisasrec", "norm": "sasrec"}, {}, "not 'sasrec'"),
    ],
    ids=["denoiser", "unknown-model", "timestamps", "attention", "caser-window", "heads", "norm"],
)
def test_build_errors_come_before_the_run_directory(
    tiny_config: RunConfig, model: dict[str, Any], denoiser: dict[str, Any], message: str
) -> None:
    config = make_run_config(
        Path(tiny_config.data.dataset),
        Path(tiny_config.output_dir),
        name="refused",
        model=model,
        denoiser=denoiser,
    )
    with pytest.raises(RecDenoiserError) as info:
        train(config)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (Path(tiny_config.output_dir) / "refused").exists()


def test_failed_run_logs_its_error_and_rerunning_says_what_to_do(
    tiny_config: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recdenoiser.training import runner

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RecDenoiserError("something went wrong in epoch 0")

    config = tiny_config.model_copy(update={"name": "again"}, deep=True)
    config.model.loss = "softmax"
    config.model.num_negatives = 5  # ignored by softmax: warned once, in run.log too
    run_dir = Path(config.output_dir) / "again"
    with monkeypatch.context() as mp:
        mp.setattr(runner, "RecommenderModule", broken)
        with pytest.raises(RecDenoiserError, match="epoch 0"):
            train(config)
    log = (run_dir / "run.log").read_text()
    assert "ERROR" in log and "run failed: something went wrong in epoch 0" in log
    assert log.count("model.num_negatives=5") == 1
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    # no checkpoint to resume: the error does not suggest --resume, it says what to do
    with pytest.raises(RecDenoiserError) as info:
        train(config)
    message = str(info.value)
    assert str(run_dir) in message and "--resume" not in message
    assert "delete it or choose another name" in message
    assert (run_dir / "run.log").read_text() == log  # nothing of the failed run is lost


def test_run_name_of_a_resumable_run_suggests_resume(trained_run: RunResult) -> None:
    from recdenoiser.training.runner import make_run_dir

    config = trained_run.config.model_copy(
        update={"output_dir": str(trained_run.run_dir.parent), "name": trained_run.run_dir.name}
    )
    with pytest.raises(RecDenoiserError, match=r"--resume .*last\.ckpt"):
        make_run_dir(config)


def test_ignored_num_negatives_is_a_warning(
    tiny_config: RunConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from recdenoiser.training.build import warn_ignored_settings

    config = tiny_config.model_copy(deep=True)
    config.model.loss = "softmax"
    with caplog.at_level("WARNING", logger="recdenoiser"):
        warn_ignored_settings(config)  # the default (1) is not worth a warning
        assert caplog.records == []
        config.model.num_negatives = 49
        warn_ignored_settings(config)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "model.num_negatives=49" in caplog.records[0].getMessage()
    assert "softmax" in caplog.records[0].getMessage()
    config.model.loss = "bce"
    caplog.clear()
    warn_ignored_settings(config)
    assert caplog.records == []


def test_sparse_pattern_settings_without_sparse_attention_are_a_warning(
    tiny_config: RunConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from recdenoiser.training.build import warn_ignored_settings

    config = tiny_config.model_copy(deep=True)
    config.model.sparse_window = 3
    with caplog.at_level("WARNING", logger="recdenoiser"):
        warn_ignored_settings(config)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "model.sparse_window=3" in messages[0] and "'softmax'" in messages[0]
    caplog.clear()
    config.model.attention = "sparse_fixed"
    with caplog.at_level("WARNING", logger="recdenoiser"):
        warn_ignored_settings(config)
    assert caplog.records == []


def test_jacobian_on_post_norm_blocks_is_a_warning(
    tiny_config: RunConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from recdenoiser.training.build import warn_known_collapses

    config = tiny_config.model_copy(deep=True)
    config.model.norm = "post"
    config.denoiser.enabled = True
    with caplog.at_level("WARNING", logger="recdenoiser"):
        warn_known_collapses(config)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "denoiser.jacobian=false" in caplog.records[0].getMessage()
    for change in ({"jacobian": False}, {"gamma": 0.0}, {"enabled": False}):
        caplog.clear()
        quiet = config.model_copy(deep=True)
        for key, value in change.items():
            setattr(quiet.denoiser, key, value)
        warn_known_collapses(quiet)
        assert caplog.records == [], change
    caplog.clear()
    config.model.norm = "pre"
    warn_known_collapses(config)
    assert caplog.records == []
