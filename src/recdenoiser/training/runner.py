"""``train(config)``: data -> model -> Lightning fit -> best checkpoint -> test evaluation.

Each run writes into its own directory::

    RUN/config.yaml          resolved configuration (only concrete values)
    RUN/data.json            which data it trained on (content sha256, cache key, sizes)
    RUN/run.log              the run's log (command, config, data statistics, versions, device)
    RUN/metrics.csv          Lightning CSV log (training loss per epoch, validation metrics)
                             (metrics.earlier.csv: earlier epochs, while a resumed run trains)
    RUN/validation.csv       validation metrics at every validation
    RUN/checkpoints/best.pt  best model on validation (self-contained, see checkpoint.py)
    RUN/checkpoints/last.ckpt Lightning state for ``--resume``
    RUN/results.json         validation and test metrics of the best model, both protocols
    RUN/per_user/*.csv       per-user test metrics (for paired significance tests)
    RUN/noise.npz            injected-noise ground truth, when data.noise_ratio > 0

``RUN`` is made only once the configuration, the data and the model have been checked: the model
(and its training data) is built first, so a setting the model refuses leaves no folder behind.
A run that fails later logs the error at the end of ``RUN/run.log``, and its name stays taken:
re-running it says so and, when ``RUN`` holds no ``last.ckpt`` to resume, to delete the folder
or choose another name (a failed run's files are never removed or reused silently).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from recdenoiser import __version__
from recdenoiser.config import DataConfig, RunConfig, dump_config, load_config, resolve
from recdenoiser.data import LeaveOneOutSplit, inject_noise, load_dataset
from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.errors import RecDenoiserError
from recdenoiser.evaluation import EvalResult, evaluate, save_per_user
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.training.build import (
    build_objective,
    build_recommender,
    check_model,
    warn_ignored_settings,
    warn_known_collapses,
)
from recdenoiser.training.callbacks import SaveTrainingState, ValidateAndKeepBest, write_history
from recdenoiser.training.checkpoint import load_checkpoint, save_checkpoint
from recdenoiser.training.data import TrainingSequences
from recdenoiser.training.module import RecommenderModule

logger = logging.getLogger(__name__)

PROTOCOLS = ("sampled", "full")


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    results: dict[str, Any]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from recdenoiser.errors import ConfigError

        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    return name


def dataset_defaults(name: str) -> tuple[int, float]:
    """(max_len, dropout) as in the SASRec paper: ML-1M 200 / 0.2, sparser data 50 / 0.5."""
    from recdenoiser.data import DATASETS

    if name in DATASETS:
        info = DATASETS.get(name)
        max_len = int(getattr(info, "max_len", 50))
    else:
        max_len = 50
    dropout = 0.2 if max_len >= 200 else 0.5
    return max_len, dropout


def load_data(data: DataConfig) -> SequenceDataset:
    """The (cached) dataset a ``data`` config section describes."""
    kwargs: dict[str, Any] = {}
    if data.k_core != "auto":
        kwargs["k_core"] = data.k_core
    return load_dataset(
        data.dataset,
        data_dir=data.data_dir,
        fmt=data.format,
        columns=data.columns,
        sep=data.sep,
        min_rating=data.min_rating,
        skip_bad_lines=data.skip_bad_lines,
        drop_duplicates=data.drop_duplicates,
        download=data.download,
        **kwargs,
    )


def load_split(config: RunConfig) -> tuple[SequenceDataset, LeaveOneOutSplit, Any]:
    data = config.data
    dataset = load_data(data)
    split = LeaveOneOutSplit.from_dataset(dataset)
    noise = None
    if data.noise_ratio > 0:
        split, noise = inject_noise(split, data.noise_ratio, data.noise_seed)
    return dataset, split, noise


def make_run_dir(config: RunConfig) -> Path:
    """The new, empty run directory (an existing empty one is used as it is).

    A folder that holds anything is never overwritten: the error says how to continue it
    (``--resume`` when it has ``checkpoints/last.ckpt``) or, for a run that stopped before its
    first checkpoint, to delete it or pick another name.
    """
    name = config.name or (
        f"{config.model.name}{'-denoiser' if config.denoiser.enabled else ''}-"
        f"{Path(config.data.dataset).stem}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    run_dir = Path(config.output_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            raise RecDenoiserError(
                f"run directory {run_dir} already exists and is not empty: choose another name "
                f"(--set name=...) or continue it with --resume {last}"
            )
        finished = (run_dir / "results.json").is_file()
        raise RecDenoiserError(
            f"run directory {run_dir} already exists and has no checkpoint to resume "
            + ("(the run there finished)" if finished else f"(see {run_dir / 'run.log'})")
            + ": delete it or choose another name (--set name=...)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


SAME_ON_RESUME = ("data", "model", "denoiser")


def data_identity(dataset: SequenceDataset) -> dict[str, Any]:
    """What identifies the data a run trained on (``RUN/data.json``)."""
    return {
        "sha256": dataset.meta.get("sha256"),
        "cache_key": dataset.meta.get("cache_key"),
        "n_users": int(dataset.n_users),
        "n_items": int(dataset.n_items),
    }


def check_resume(path: Path, config: RunConfig, dataset: SequenceDataset | None = None) -> Path:
    """The run directory of a Lightning checkpoint ``RUN/checkpoints/*.ckpt``, after checking
    that it exists, is a training-state checkpoint and was made with the same data settings,
    model and denoiser settings and, given ``dataset``, the same data (``RUN/data.json``; runs
    made before it existed are not checked). Nothing is written before these checks pass."""
    if not path.is_file():
        raise RecDenoiserError(f"--resume: no such checkpoint file: {path}")
    run_dir = path.parent.parent
    stored_path = run_dir / "config.yaml"
    if path.parent.name != "checkpoints" or not stored_path.exists():
        raise RecDenoiserError(
            f"--resume: {path} is not inside a run directory (expected RUN/checkpoints/last.ckpt "
            "next to RUN/config.yaml)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or foreign files raise many unrelated types
        raise RecDenoiserError(f"--resume: cannot read {path} ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "pytorch-lightning_version" not in state:
        raise RecDenoiserError(
            f"--resume: {path} is not a training-state checkpoint; use RUN/checkpoints/last.ckpt "
            "(best.pt holds weights only)"
        )
    stored = load_config(stored_path).model_dump(mode="json")
    new = config.model_dump(mode="json")
    changed = [
        f"{section}.{key}"
        for section in SAME_ON_RESUME
        for key in stored[section]
        if stored[section][key] != new[section][key]
    ]
    if changed:
        raise RecDenoiserError(
            f"--resume: the configuration differs from the run's in {', '.join(changed)}; "
            "only train.* and eval.* settings may change when resuming"
        )
    stored_data = run_dir / "data.json"
    if dataset is not None and stored_data.is_file():
        try:
            before = json.loads(stored_data.read_text())
        except (OSError, ValueError):
            before = None
        now = data_identity(dataset)
        if not isinstance(before, dict) or any(before.get(k) != now[k] for k in now):
            was = before if isinstance(before, dict) else {}
            raise RecDenoiserError(
                f"--resume: the data differs from the data the run trained on "
                f"({was.get('n_users')} users, {was.get('n_items')} items, sha256 "
                f"{str(was.get('sha256'))[:12]} then; {now['n_users']} users, {now['n_items']} "
                f"items, sha256 {str(now['sha256'])[:12]} now)"
            )
    return run_dir


def check_catalogue(split: LeaveOneOutSplit, config: RunConfig) -> None:
    """Fail before training when the sampled protocol cannot draw enough negatives."""
    if len(split.eval_users) == 0:
        raise RecDenoiserError(
            f"dataset {split.dataset.name!r} has no user with 3 or more interactions to evaluate"
        )
    lengths = np.diff(split.dataset.offsets)[split.eval_users]
    worst = int(split.eval_users[int(np.argmax(lengths))])
    unseen = split.n_items - len(np.unique(split.dataset.sequence(worst)))
    if unseen < config.eval.num_negatives:
        raise RecDenoiserError(
            f"user {split.dataset.user_ids[worst]} has only {unseen} unseen items but the sampled "
            f"protocol needs eval.num_negatives={config.eval.num_negatives}; lower it"
        )


def environment_info(device: str) -> dict[str, Any]:
    return {
        "recdenoiser": __version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }


def evaluate_model(
    model: SequentialRecommender,
    split: LeaveOneOutSplit,
    config: RunConfig,
    *,
    stage: str,
    protocol: str,
    device: str,
) -> EvalResult:
    ev = config.eval
    return evaluate(
        model,
        split,
        stage=stage,  # type: ignore[arg-type]
        protocol=protocol,  # type: ignore[arg-type]
        max_len=int(config.data.max_len),
        num_negatives=ev.num_negatives,
        ks=tuple(ev.ks),
        seed=ev.seed,
        max_users=ev.max_users,
        exclude_history=ev.exclude_history,
        batch_size=ev.batch_size,
        device=device,
    )


def train(config: RunConfig, *, resume: str | Path | None = None) -> RunResult:
    """Train and evaluate one model; returns the run directory and its results.

    Everything that can be checked is checked before the run directory is made (see the module
    docstring): the model's settings before the data is read, then the model and its training
    data are built.
    """
    check_model(config)  # unknown model, settings the model cannot use: before loading data
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    device = pick_device(config.train.device)
    started = time.perf_counter()
    dataset, split, noise = load_split(config)
    max_len, dropout = dataset_defaults(config.data.dataset)
    k_core = int((dataset.meta.get("options") or {}).get("k_core") or 0)
    config = resolve(
        config, dataset_max_len=max_len, dataset_dropout=dropout, dataset_k_core=k_core
    )
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_recommender(config, dataset.n_items, dataset.n_users)
    train_data = TrainingSequences.for_model(  # refuses e.g. a time-aware model without times
        split, model, int(config.data.max_len), config.model.num_negatives
    )
    check_catalogue(split, config)

    run_dir = check_resume(Path(resume), config, dataset) if resume else make_run_dir(config)
    if not resume:
        (run_dir / "data.json").write_text(json.dumps(data_identity(dataset), indent=2))
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("recdenoiser")
    level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)  # the run's own log is complete whatever the caller shows
    root.addHandler(handler)
    try:
        with quiet_lightning():
            return _train_in(
                run_dir, config, dataset, split, noise, model, train_data, device, started, resume
            )
    except BaseException as exc:
        _log_failure(handler, exc)
        raise
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _log_failure(handler: logging.Handler, exc: BaseException) -> None:
    """Write why the run stopped into its run.log only (the caller reports the error itself):
    the message of a user error, the traceback of anything else."""
    if isinstance(exc, RecDenoiserError):
        message = f"run failed: {exc}"
    elif isinstance(exc, Exception):
        message = f"run failed: {type(exc).__name__}: {exc}"
    else:  # KeyboardInterrupt, SystemExit
        message = f"run stopped: {type(exc).__name__}"
    bug = isinstance(exc, Exception) and not isinstance(exc, RecDenoiserError)
    exc_info = (type(exc), exc, exc.__traceback__) if bug else None
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (message,), exc_info)
    handler.handle(record)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up banners and warnings that do not apply to this trainer."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for pattern in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            yield
        finally:
            for lg, lvl in zip(loggers, levels, strict=True):
                lg.setLevel(lvl)


LIGHTNING_NOISE = (
    ".*Experiment logs directory .* exists and is not empty.*",
    ".*IterableDataset.* has `__len__` defined.*",
    ".*is smaller than the logging interval.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
    ".*does not have many workers which may be a bottleneck.*",
    ".*Checkpoint directory .* exists and is not empty.*",
)


def _train_in(
    run_dir: Path,
    config: RunConfig,
    dataset: SequenceDataset,
    split: LeaveOneOutSplit,
    noise: Any,
    model: SequentialRecommender,
    train_data: TrainingSequences,
    device: str,
    started: float,
    resume: str | Path | None,
) -> RunResult:
    env = environment_info(device)
    (run_dir / "config.yaml").write_text(dump_config(config))
    logger.info("run directory: %s", run_dir)
    logger.info("environment: %s", json.dumps(env))
    logger.info("resolved config:\n%s", dump_config(config))
    stats = dataset.stats()
    logger.info(
        "dataset %s: %d users, %d items, %d interactions, avg length %.2f, density %.5f; "
        "%d users too short to evaluate (train only)",
        dataset.name,
        stats["users"],
        stats["items"],
        stats["interactions"],
        stats["avg_length"],
        stats["density"],
        split.n_short_users,
    )
    if noise is not None:
        np.savez(
            run_dir / "noise.npz", replaced=noise.replaced, original_items=noise.original_items
        )
        logger.info(
            "noise: replaced %d of %d training items (ratio %.3f, seed %d)",
            int(noise.replaced.sum()),
            len(noise.replaced),
            noise.ratio,
            noise.seed,
        )

    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model %s: %d parameters", type(model).__name__, n_params)
    warn_ignored_settings(config)
    warn_known_collapses(config)
    module = RecommenderModule(model, build_objective(config), config, train_data)

    best_path = run_dir / "checkpoints" / "best.pt"

    def validate() -> EvalResult:
        return evaluate_model(
            model, split, config, stage="valid", protocol=config.eval.protocol, device=device
        )

    def save_best(info: dict[str, Any]) -> None:
        save_checkpoint(best_path, model, config, dataset, info)

    keeper = ValidateAndKeepBest(
        validate, save_best, config.train.eval_every, config.train.monitor, config.train.patience
    )
    from lightning.pytorch.loggers import CSVLogger

    metrics_csv = run_dir / "metrics.csv"
    # Lightning's CSV logger starts metrics.csv anew: on resume, the epochs trained before are
    # kept in metrics.earlier.csv until they are merged back, whatever ends this attempt
    earlier_csv = run_dir / "metrics.earlier.csv"
    if resume:
        epoch = _checkpoint_epoch(Path(resume))
        logger.info("resuming from %s (after epoch %d)", resume, epoch + 1)
        _keep_earlier_metrics(metrics_csv, earlier_csv, epoch)
    loggers: list[Any] = [CSVLogger(run_dir, name="", version="")]
    if config.train.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    last = SaveTrainingState(run_dir / "checkpoints" / "last.ckpt")
    precision = "bf16-mixed" if config.train.precision == "bf16" else "32-true"
    trainer = L.Trainer(
        max_epochs=config.train.epochs,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,  # type: ignore[arg-type]
        logger=loggers,
        callbacks=[keeper, last],
        enable_progress_bar=config.train.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=config.train.grad_clip,
        log_every_n_steps=max(1, min(50, len(train_data) // config.train.batch_size)),
        enable_checkpointing=False,  # SaveTrainingState writes last.ckpt (atomically)
    )
    fit_start = time.perf_counter()
    try:
        trainer.fit(module, ckpt_path=str(resume) if resume else None)
    except SystemExit:  # Lightning turns Ctrl-C into a clean shutdown and exit(1)
        if not trainer.interrupted:
            raise
        last_ckpt = run_dir / "checkpoints" / "last.ckpt"
        hint = f"; continue with --resume {last_ckpt}" if last_ckpt.exists() else ""
        raise KeyboardInterrupt(f"training interrupted{hint}") from None
    except RuntimeError as exc:
        if resume and "size mismatch" in str(exc):  # a run older than RUN/data.json
            raise RecDenoiserError(
                f"--resume: {resume} does not fit the model built from the current data and "
                "settings (tensor sizes differ): the data changed since the run"
            ) from None
        raise
    finally:
        if resume:
            _merge_earlier_metrics(metrics_csv, earlier_csv)
    train_seconds = time.perf_counter() - fit_start
    write_history(keeper.history, run_dir / "validation.csv")

    best = load_checkpoint(best_path, device=device)
    results: dict[str, Any] = {
        "model": config.model.name,
        "denoiser": config.denoiser.enabled,
        "dataset": dataset.name,
        "seed": config.seed,
        "best_epoch": keeper.best_epoch,
        "epochs_run": trainer.current_epoch,
        "train_seconds": train_seconds,
        "parameters": n_params,
        "environment": env,
        "valid": {},
        "test": {},
    }
    (run_dir / "per_user").mkdir(exist_ok=True)
    for protocol in PROTOCOLS:
        valid = evaluate_model(
            best.model, split, config, stage="valid", protocol=protocol, device=device
        )
        test = evaluate_model(
            best.model, split, config, stage="test", protocol=protocol, device=device
        )
        results["valid"][protocol] = valid.metrics
        results["test"][protocol] = test.metrics
        save_per_user(test, run_dir / "per_user" / f"test_{protocol}.csv")
        logger.info(
            "test (%s protocol, best epoch %d):\n%s",
            protocol,
            keeper.best_epoch,
            test.format_table(),
        )
    results["wall_seconds"] = time.perf_counter() - started
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    logger.info(
        "results written to %s (wall time %.1f s)",
        run_dir / "results.json",
        results["wall_seconds"],
    )
    if os.environ.get("RECDENOISER_KEEP_LAST", "1") == "0":
        (run_dir / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
    return RunResult(run_dir=run_dir, config=config, results=results)


def _checkpoint_epoch(path: Path) -> int:
    """The (0-based) epoch after which a Lightning training-state checkpoint was saved."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    return int(state.get("epoch", -1))


def _keep_earlier_metrics(metrics_csv: Path, earlier_csv: Path, epoch: int) -> None:
    """Move the rows of epochs up to ``epoch`` (0-based, those in the checkpoint) into
    ``earlier_csv``; rows of later epochs belong to an attempt that was cut short and are
    trained again."""
    rows: list[dict[str, str]] = []
    for row in _read_csv(earlier_csv) + _read_csv(metrics_csv):  # earlier attempts first
        try:
            keep = int(float(row.get("epoch") or -1)) <= epoch
        except ValueError:
            keep = False
        if keep and row not in rows:
            rows.append(row)
    _write_csv_atomically(earlier_csv, rows)
    metrics_csv.unlink(missing_ok=True)


def _merge_earlier_metrics(metrics_csv: Path, earlier_csv: Path) -> None:
    if earlier_csv.exists():
        _write_csv_atomically(metrics_csv, _read_csv(earlier_csv) + _read_csv(metrics_csv))
        earlier_csv.unlink()


def _write_csv_atomically(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    _write_csv(tmp, rows)
    os.replace(tmp, path)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
