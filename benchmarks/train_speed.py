"""Seconds per training epoch of SASRec, Rec-Denoiser variants and their ablations.

Each case runs in a fresh subprocess (``--one CASE``), so peak memory is measured per case. The
loop is the one of the Lightning module without Lightning: ``objective(model, batch)`` ->
``loss.backward()`` -> Adam step, on batches of ``TrainingSequences.loader`` (length-bucketed
unless the case says otherwise), with the same optimizer parameter groups.

Epoch time: with ``--epochs 1`` the single epoch is reported (it includes first-step warm-up,
small next to hundreds of batches); with ``--epochs N > 1`` the first epoch is a warm-up and the
median of epochs 2..N is reported. With ``--steps K`` only the first K batches of each epoch run
and the time is extrapolated to a full epoch (batches come in shuffled order, so the K batches
are a random sample of the epoch's batch lengths); the output says so.

Usage: python benchmarks/train_speed.py --dataset games --epochs 3
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from common import (
    Timer,
    add_common_arguments,
    child_arguments,
    dataset_max_len,
    describe_split,
    emit_result,
    fmt,
    load_split,
    markdown_table,
    median,
    peak_cuda_mb,
    peak_rss_mb,
    pick_device,
    print_header,
    run_child,
    setup_torch,
    write_json,
)

from recdenoiser.config import DenoiserConfig, RunConfig, resolve


@dataclass(frozen=True)
class Case:
    description: str
    configure: Callable[[RunConfig], None]
    bucket: bool = True
    bf16: bool = False
    requires_model: str | None = None


def _nothing(config: RunConfig) -> None:
    pass


def _set(section: str, **values: Any) -> Callable[[RunConfig], None]:
    def apply(config: RunConfig) -> None:
        part = getattr(config, section)
        for key, value in values.items():
            setattr(part, key, value)

    return apply


def _denoiser(**values: Any) -> Callable[[RunConfig], None]:
    def apply(config: RunConfig) -> None:
        config.denoiser = DenoiserConfig(enabled=True, **values)

    return apply


CASES: dict[str, Case] = {
    "sasrec": Case("SASRec, default config (length-bucketed batches)", _nothing),
    "sasrec-unbucketed": Case("SASRec, plain shuffled batches (bucket=False)", _nothing, False),
    "sasrec-explicit": Case(
        "SASRec, explicit attention (fused_attention=False)", _set("model", fused_attention=False)
    ),
    "denoiser-arm": Case("Rec-Denoiser, ARM, masks + Jacobian", _denoiser()),
    "denoiser-arm-jac0.25": Case(
        "Rec-Denoiser, ARM, Jacobian on 25% of the batch", _denoiser(jacobian_sample=0.25)
    ),
    "denoiser-arm-jac-every4": Case(
        "Rec-Denoiser, ARM, Jacobian every 4th step (weighted by 4)", _denoiser(jacobian_every=4)
    ),
    "denoiser-ar": Case("Rec-Denoiser, AR estimator", _denoiser(estimator="ar")),
    "denoiser-input": Case(
        "Rec-Denoiser, ARM, input-dependent masks", _denoiser(mask_kind="input_dependent")
    ),
    "denoiser-masks-only": Case("Rec-Denoiser, ARM, masks only", _denoiser(jacobian=False)),
    "denoiser-jacobian-only": Case("Rec-Denoiser, Jacobian only", _denoiser(masks=False)),
    "bert4rec": Case(
        "BERT4Rec (Cloze training, full softmax, GELU, post-norm), if registered",
        _set("model", name="bert4rec", loss="softmax", activation="gelu", norm="post"),
        requires_model="bert4rec",
    ),
    "sasrec-bf16": Case("SASRec under torch.autocast(bfloat16)", _nothing, bf16=True),
}
DEFAULT_CASES = list(CASES)


def build_config(case: Case, dataset: str, max_len: int, batch_size: int) -> RunConfig:
    from recdenoiser.training.runner import dataset_defaults

    config = RunConfig()
    config.data.dataset = dataset
    config.train.batch_size = batch_size
    case.configure(config)
    _, dropout = dataset_defaults(dataset)
    return resolve(config, dataset_max_len=max_len, dataset_dropout=dropout)


def make_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """The optimizer of ``RecommenderModule.configure_optimizers`` (mask logits in own group)."""
    from recdenoiser.training.module import MASK_PARAM_PREFIX

    cfg = config.train
    backbone: list[torch.nn.Parameter] = []
    masks: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        (masks if name.startswith(MASK_PARAM_PREFIX) else backbone).append(param)
    groups: list[dict[str, Any]] = [{"params": backbone}]
    if masks:
        groups.append(
            {"params": masks, "lr": config.denoiser.mask_lr or cfg.lr, "weight_decay": 0.0}
        )
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def build_model_compat(build: Callable[..., Any], config: RunConfig, split: Any) -> Any:
    """``build_recommender(config, n_items[, n_users])``: n_users where the builder takes it."""
    if "n_users" in inspect.signature(build).parameters:
        return build(config, split.n_items, split.n_users)
    return build(config, split.n_items)


# ----------------------------------------------------------------------------- one case (child)
def run_one(args: argparse.Namespace) -> dict[str, Any]:
    from recdenoiser.models import MODELS
    from recdenoiser.training.build import build_objective, build_recommender
    from recdenoiser.training.data import TrainingSequences

    case = CASES[args.one]
    if case.requires_model and case.requires_model not in MODELS:
        return {"skipped": f"model {case.requires_model!r} is not registered"}
    setup_torch(args.threads, args.seed)
    device = pick_device(args.device)
    max_len = dataset_max_len(args.dataset, args.max_len)

    started = time.perf_counter()
    split = load_split(args.dataset, args.data_dir)
    load_seconds = time.perf_counter() - started

    config = build_config(case, args.dataset, max_len, args.batch_size)
    model = build_model_compat(build_recommender, config, split).to(device)
    model.train()
    objective = build_objective(config)
    optimizer = make_optimizer(model, config)
    if hasattr(TrainingSequences, "for_model"):  # models with their own training input
        data = TrainingSequences.for_model(split, model, max_len, config.model.num_negatives)
    else:
        data = TrainingSequences(split, max_len, config.model.num_negatives, model.needs_negatives)
    loader = data.loader(config.train.batch_size, config.seed, case.bucket)
    n_batches = len(loader)
    steps = min(args.steps, n_batches) if args.steps else n_batches
    autocast = (
        torch.autocast(device_type=device, dtype=torch.bfloat16) if case.bf16 else nullcontext()
    )

    epoch_seconds: list[float] = []
    last_loss = torch.zeros(())
    for epoch in range(args.epochs):
        loader.dataset.epoch = epoch  # as RecommenderModule.on_train_epoch_start
        with Timer(device) as timer:
            for step, batch in enumerate(loader):
                if step >= steps:
                    break
                batch = batch.to(device)
                with autocast:
                    loss, _ = objective(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last_loss = loss.detach()
        epoch_seconds.append(timer.seconds * n_batches / steps)
    timed = epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds
    per_epoch = median(timed)
    return {
        "case": args.one,
        "description": case.description,
        "dataset": args.dataset,
        "data": describe_split(split),
        "max_len": max_len,
        "dropout": config.model.dropout,
        "batch_size": config.train.batch_size,
        "sequences": len(data),
        "batches": n_batches,
        "steps_timed": steps,
        "extrapolated": steps < n_batches,
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": per_epoch,
        "sequences_per_second": len(data) / per_epoch,
        "final_loss": float(last_loss.float()),
        "load_seconds": load_seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": peak_cuda_mb(device),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }


# ----------------------------------------------------------------------------- driver (parent)
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help="comma-separated cases (default: all): " + ", ".join(CASES),
    )
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (see module doc)")
    parser.add_argument(
        "--steps", type=int, default=None, help="batches per epoch; extrapolated to a full epoch"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--one", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--epochs and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        emit_result(run_one(args))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")

    setup_torch(args.threads, args.seed)
    device = pick_device(args.device)
    info = print_header(f"Training speed: {args.dataset}", device)
    base = child_arguments(args)
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        print(f"running {case} ...", file=sys.stderr, flush=True)
        results[case] = run_child([__file__, "--one", case, *base])

    first = next((r for r in results.values() if "seconds_per_epoch" in r), None)
    if first is not None:
        print(
            f"Dataset {args.dataset}: {first['data']}; {first['sequences']:,} training sequences "
            f"in {first['batches']} batches of {first['batch_size']}; max_len {first['max_len']}, "
            f"dropout {first['dropout']}.\n"
        )
        if first["extrapolated"]:
            print(
                f"**Extrapolated**: only the first {first['steps_timed']} of {first['batches']} "
                "batches of each epoch were timed; s/epoch is scaled up to a full epoch.\n"
            )
    if args.epochs > 1:
        which = "epoch 2" if args.epochs == 2 else f"median of epochs 2..{args.epochs}"
        print(f"s/epoch: {which} (epoch 1 is a warm-up, not counted).\n")
    else:
        print("s/epoch: a single epoch, including first-step warm-up.\n")

    reference = results.get("sasrec", {}).get("seconds_per_epoch")
    show_cuda = device == "cuda"
    headers = ["case", "s/epoch", "sequences/s", "ratio to sasrec", "peak RSS MB"]
    if show_cuda:
        headers.append("peak CUDA MB")
    rows = []
    notes = []
    for case, r in results.items():
        if "seconds_per_epoch" not in r:
            reason = r.get("skipped") or r.get("error", "?")
            notes.append(f"- `{case}`: not run ({reason})")
            continue
        sec = r["seconds_per_epoch"]
        row = [
            f"`{case}`",
            fmt(sec),
            fmt(r["sequences_per_second"], 0),
            fmt(sec / reference) if reference else "-",
            fmt(r["peak_rss_mb"], 0),
        ]
        if show_cuda:
            row.append(fmt(r["peak_cuda_mb"], 0))
        rows.append(row)
    print(markdown_table(headers, rows))
    if notes:
        print("\n" + "\n".join(notes))
    write_json(args.json, {"machine": info, "args": vars(args), "results": results})
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
