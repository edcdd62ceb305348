"""Evaluation throughput of a freshly initialised SASRec: sampled and full-ranking protocols.

Times ``recdenoiser.evaluation.evaluate`` on every evaluable user of the dataset (test stage) for
each protocol, each protocol in a fresh subprocess (``--one PROTOCOL``) so that peak memory is
per protocol. The model is untrained: evaluation cost does not depend on the weights. The sampled
protocol's time includes drawing its negatives inside ``evaluate``; that part is also timed alone
and shown in its own column.

With ``--repeats N > 1`` the first run is a warm-up and the median of runs 2..N is reported; with
``--repeats 1`` the single run is reported. ``--max-users M`` evaluates a seeded subset for quick
checks and extrapolates the seconds to all users (the output says so).

Usage: python benchmarks/eval_speed.py --dataset games --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
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

PROTOCOLS = ("sampled", "full")


# ----------------------------------------------------------------------------- one protocol
def run_one(args: argparse.Namespace) -> dict[str, Any]:
    from recdenoiser.config import RunConfig, resolve
    from recdenoiser.evaluation import evaluate, sample_negatives
    from recdenoiser.training.build import build_recommender
    from recdenoiser.training.runner import dataset_defaults

    setup_torch(args.threads, args.seed)
    device = pick_device(args.device)
    max_len = dataset_max_len(args.dataset, args.max_len)

    started = time.perf_counter()
    split = load_split(args.dataset, args.data_dir)
    load_seconds = time.perf_counter() - started

    config = RunConfig()
    config.data.dataset = args.dataset
    config = resolve(
        config, dataset_max_len=max_len, dataset_dropout=dataset_defaults(args.dataset)[1]
    )
    model = build_recommender(config, split.n_items).to(device)  # SASRec needs no n_users
    all_users = len(split.eval_users)
    n_users = min(args.max_users, all_users) if args.max_users else all_users

    negatives_seconds = None
    if args.one == "sampled":
        users = split.eval_users[:n_users]
        with Timer() as timer:
            sample_negatives(split, users, args.num_negatives, args.eval_seed)
        negatives_seconds = timer.seconds * all_users / n_users

    runs: list[float] = []
    metrics: dict[str, float] = {}
    for _ in range(args.repeats):
        with Timer(device) as timer:
            result = evaluate(
                model,
                split,
                stage=args.stage,
                protocol=args.one,
                max_len=max_len,
                num_negatives=args.num_negatives,
                seed=args.eval_seed,
                max_users=args.max_users,
                batch_size=args.batch_size,
                device=device,
            )
        runs.append(timer.seconds)
        metrics = dict(result.metrics)
    timed = runs[1:] if len(runs) > 1 else runs
    seconds = median(timed)
    return {
        "protocol": args.one,
        "dataset": args.dataset,
        "data": describe_split(split),
        "stage": args.stage,
        "max_len": max_len,
        "users": n_users,
        "all_users": all_users,
        "extrapolated": n_users < all_users,
        "run_seconds": runs,
        "seconds": seconds * all_users / n_users,
        "users_per_second": n_users / seconds,
        "negatives_seconds": negatives_seconds,
        "ndcg@10": metrics.get("ndcg@10"),
        "load_seconds": load_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": peak_cuda_mb(device),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }


# ----------------------------------------------------------------------------- driver
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), help="comma-separated: sampled, full"
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="users per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="runs per protocol (see doc)")
    parser.add_argument("--num-negatives", type=int, default=100)
    parser.add_argument("--stage", choices=["valid", "test"], default="test")
    parser.add_argument("--eval-seed", type=int, default=2022, help="seed of the negatives")
    parser.add_argument(
        "--max-users", type=int, default=None, help="evaluate a subset; seconds are extrapolated"
    )
    parser.add_argument("--one", choices=list(PROTOCOLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (
        args.repeats < 1
        or args.batch_size < 1
        or (args.max_users is not None and args.max_users < 1)
    ):
        parser.error("--repeats, --batch-size and --max-users must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        emit_result(run_one(args))
        return 0
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise SystemExit(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")

    setup_torch(args.threads, args.seed)
    device = pick_device(args.device)
    info = print_header(f"Evaluation speed: {args.dataset}", device)
    base = child_arguments(args, skip=("protocols", "json"))
    results: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        print(f"running {protocol} ...", file=sys.stderr, flush=True)
        results[protocol] = run_child([__file__, "--one", protocol, *base])

    first = next((r for r in results.values() if "seconds" in r), None)
    if first is not None:
        print(
            f"Dataset {args.dataset}: {first['data']}; {first['all_users']:,} evaluable users, "
            f"{args.stage} stage, max_len {first['max_len']}, batch size {args.batch_size}, "
            f"untrained SASRec (default config).\n"
        )
        if first["extrapolated"]:
            print(
                f"**Extrapolated**: only {first['users']:,} of {first['all_users']:,} users were "
                "evaluated; seconds are scaled up to all users.\n"
            )
    if args.repeats > 1:
        which = "run 2" if args.repeats == 2 else f"median of runs 2..{args.repeats}"
        print(f"Seconds: {which} (run 1 is a warm-up, not counted).\n")
    else:
        print("Seconds: a single run, including warm-up.\n")

    show_cuda = device == "cuda"
    headers = ["protocol", "users", "seconds", "users/s", "of which negatives s", "peak RSS MB"]
    if show_cuda:
        headers.append("peak CUDA MB")
    rows = []
    notes = []
    for protocol, r in results.items():
        if "seconds" not in r:
            notes.append(f"- `{protocol}`: not run ({r.get('error', '?')})")
            continue
        name = f"sampled ({args.num_negatives} negatives)" if protocol == "sampled" else "full"
        row = [
            name,
            f"{r['all_users']:,}",
            fmt(r["seconds"]),
            fmt(r["users_per_second"], 0),
            fmt(r["negatives_seconds"]),
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
