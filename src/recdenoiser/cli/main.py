"""The ``recdenoiser`` command: a thin layer over the Python API.

User mistakes (bad files, unknown keys or ids) print one ``error:`` line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from recdenoiser import __version__
from recdenoiser.errors import RecDenoiserError

if TYPE_CHECKING:
    from recdenoiser.training.checkpoint import LoadedCheckpoint

logger = logging.getLogger("recdenoiser.cli")


def _packaged_configs() -> dict[str, Path]:
    folder = resources.files("recdenoiser") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def _config_path(name: str | None) -> Path | None:
    if name is None:
        return None
    path = Path(name)
    if path.exists():
        return path
    packaged = _packaged_configs()
    if name in packaged:
        return packaged[name]
    raise RecDenoiserError(
        f"config {name!r} is neither a file nor a packaged config "
        f"(packaged: {', '.join(sorted(packaged))})"
    )


# ------------------------------------------------------------------------------ commands
def _prepare_columns(text: str) -> dict[str, str]:
    """``--columns``: a YAML mapping, parsed as ``train --set data.columns=...`` parses it."""
    import yaml

    from recdenoiser.data.readers import column_mapping
    from recdenoiser.errors import ConfigError

    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(
            f"--columns {text!r} is not a YAML mapping like '{{user: uid, item: iid}}' ({detail})"
        ) from None
    return column_mapping(value, "--columns").as_dict()


def _prepare_sep(text: str | None) -> str | None:
    """``--sep``: the separator as given; ``\\t`` (as typed in a shell) is a tab."""
    return "\t" if text == "\\t" else text


def cmd_prepare(args: argparse.Namespace) -> int:
    from recdenoiser.config import config_from_dict
    from recdenoiser.data import LeaveOneOutSplit
    from recdenoiser.training.runner import load_data

    data = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "format": args.format,
        "columns": None if args.columns is None else _prepare_columns(args.columns),
        "sep": _prepare_sep(args.sep),
        "min_rating": args.min_rating,
        "k_core": "auto" if args.k_core is None else args.k_core,
        "skip_bad_lines": args.skip_bad_lines,
        "drop_duplicates": args.drop_duplicates,
        "download": args.download,
    }
    dataset = load_data(config_from_dict({"data": data}, "prepare options").data)
    split = LeaveOneOutSplit.from_dataset(dataset)
    counts = dataset.meta.get("counts") or {}
    stats = dataset.stats()
    lines = [
        f"dataset       {dataset.name}",
        f"users         {stats['users']:,}",
        f"items         {stats['items']:,}",
        f"interactions  {stats['interactions']:,}",
        f"avg length    {stats['avg_length']:.2f}",
        f"density       {stats['density']:.5f}",
        f"timestamps    {'yes' if dataset.timestamps is not None else 'no'}",
        f"rows read     {counts.get('rows_read', '?'):,} "
        f"(skipped lines {counts.get('skipped_lines', 0)}, duplicate rows "
        f"{counts.get('duplicate_rows', 0)}, removed by filters "
        f"{counts.get('rows_read', 0) - counts.get('rows_kept', 0) if counts else '?'})",
        f"evaluated     {len(split.eval_users):,} users "
        f"({split.n_short_users:,} with < 3 interactions are used for training only)",
    ]
    print("\n".join(lines))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from recdenoiser.config import load_config
    from recdenoiser.training.runner import train

    overrides = list(args.set or [])
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    config = load_config(_config_path(args.config), overrides)
    result = train(config, resume=args.resume)
    _print_results(result.results)
    print(f"run directory: {result.run_dir}")
    return 0


def _print_results(results: dict) -> None:
    for stage in ("valid", "test"):
        for protocol, metrics in results.get(stage, {}).items():
            shown = "  ".join(
                f"{k}={v:.4f}" for k, v in metrics.items() if k in ("hit@10", "ndcg@10", "mrr")
            )
            print(f"{stage:5s} {protocol:7s} {shown}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recdenoiser.data import LeaveOneOutSplit, inject_noise
    from recdenoiser.evaluation import evaluate

    if args.max_users is not None and args.max_users < 1:
        raise RecDenoiserError(f"--max-users must be at least 1, got {args.max_users}")
    ckpt = _load(args.checkpoint)
    cfg = ckpt.config
    if args.inference_mask is not None:
        _set_inference_mask(ckpt.model, args.inference_mask, args.checkpoint)
    split = LeaveOneOutSplit.from_dataset(ckpt.dataset)
    if cfg.data.noise_ratio > 0:
        split, _ = inject_noise(split, cfg.data.noise_ratio, cfg.data.noise_seed)
    protocols: list[Literal["sampled", "full"]] = (
        ["sampled", "full"] if args.protocol == "both" else [args.protocol]
    )
    out = {}
    for protocol in protocols:
        result = evaluate(
            ckpt.model,
            split,
            stage=args.stage,
            protocol=protocol,
            max_len=int(cfg.data.max_len),
            num_negatives=cfg.eval.num_negatives,
            ks=tuple(cfg.eval.ks),
            seed=cfg.eval.seed,
            max_users=args.max_users if args.max_users is not None else cfg.eval.max_users,
            exclude_history=cfg.eval.exclude_history,
            batch_size=cfg.eval.batch_size,
        )
        out[protocol] = result.metrics
        if not args.json:
            print(f"{args.stage} split, {protocol} protocol ({len(result.per_user)} users)")
            print(result.format_table())
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def _set_inference_mask(model: object, mode: str, where: str) -> None:
    """Override the Rec-Denoiser inference mask of a loaded model (evaluate --inference-mask)."""
    from recdenoiser.denoiser import AttentionMasks

    masks = getattr(model, "mask_provider", None)
    if not isinstance(masks, AttentionMasks):
        raise RecDenoiserError(f"--inference-mask: {where} has no Rec-Denoiser attention masks")
    masks.config = masks.config.model_copy(update={"inference_mask": mode})


def cmd_recommend(args: argparse.Namespace) -> int:
    from recdenoiser.inference import Recommender

    if bool(args.users) == bool(args.history):
        raise RecDenoiserError("give either --users or --history (exactly one of them)")
    rec = Recommender(_load(args.checkpoint))
    if args.users:
        recs = rec.recommend_users(args.users, k=args.k, exclude_seen=not args.include_seen)
    else:
        recs = [rec.recommend_history(args.history, k=args.k, exclude_seen=not args.include_seen)]
    if args.json:
        print(json.dumps([r.to_dict() for r in recs], indent=2))
    else:
        for r in recs:
            label = f"user {r.query}" if args.users else f"history [{r.query}]"
            print(f"{label}:")
            for rank, (item, score) in enumerate(zip(r.items, r.scores, strict=True), 1):
                print(f"  {rank:3d}. {item}  {score:.4f}")
            if len(r.items) < args.k:
                print(f"  (only {len(r.items)} items are left to recommend)")
    return 0


def cmd_noise_report(args: argparse.Namespace) -> int:
    from recdenoiser.data import LeaveOneOutSplit, inject_noise
    from recdenoiser.denoiser.report import noise_detection, user_history_report
    from recdenoiser.models.base import SelfAttentiveRecommender

    ckpt = _load(args.checkpoint)
    model = ckpt.model
    if not isinstance(model, SelfAttentiveRecommender):
        raise RecDenoiserError(f"model {ckpt.config.model.name!r} has no attention masks")
    max_len = int(ckpt.config.data.max_len)
    split = LeaveOneOutSplit.from_dataset(ckpt.dataset)
    if args.noise_ratio is not None and not 0 < args.noise_ratio <= 0.5:
        raise RecDenoiserError(f"--noise-ratio must be in (0, 0.5], got {args.noise_ratio}")
    ratio = args.noise_ratio if args.noise_ratio is not None else ckpt.config.data.noise_ratio
    seed = args.noise_seed if args.noise_seed is not None else ckpt.config.data.noise_seed
    if args.user is not None:
        user = ckpt.dataset.user_index(args.user)
        injected = None
        if ratio > 0:  # the history as the model was trained on it (or as --noise-ratio makes it)
            split, noise = inject_noise(split, ratio, seed)
            injected = noise.replaced[split.train_offsets[user] : split.train_offsets[user + 1]]
        table = user_history_report(
            model, split.train_sequence(user), ckpt.dataset.item_ids, max_len, user=user
        )
        if injected is not None:
            table["injected"] = injected[len(injected) - len(table) :]
        if args.json:
            print(table.to_json(orient="records", indent=2))
        else:
            note = f", {ratio:.0%} of training items replaced (seed {seed})" if ratio > 0 else ""
            print(
                f"user {args.user}: keep probability of each history item the model sees "
                f"(oldest first{note})"
            )
            print(table.to_string(index=False))
        return 0
    if ratio <= 0:
        raise RecDenoiserError(
            "this run was trained without injected noise: pass --noise-ratio R to corrupt the "
            "training items for the report, or --user ID for one history"
        )
    noisy, noise = inject_noise(split, ratio, seed)
    result = noise_detection(model, noisy, noise, max_len)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for key, value in result.to_dict().items():
            print(f"{key:18s} {value:.4f}" if isinstance(value, float) else f"{key:18s} {value}")
    return 0


def _load(path: str) -> LoadedCheckpoint:
    from recdenoiser.training.checkpoint import load_checkpoint

    return load_checkpoint(path)


# -------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recdenoiser",
        description="Denoising self-attentive sequential recommendation (Rec-Denoiser).",
    )
    parser.add_argument("--version", action="version", version=f"recdenoiser {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="read, preprocess and cache a dataset; print statistics")
    p.add_argument("dataset", help="registry name (ml-1m, games, beauty, ...) or a file path")
    p.add_argument("--data-dir", help="dataset folder (default: $RECDENOISER_DATA_DIR or ./data)")
    p.add_argument("--format", help="reader format for a file path")
    p.add_argument(
        "--columns",
        metavar="MAPPING",
        help="'table' format: which columns hold what, as in data.columns, e.g. "
        "'{user: uid, item: iid, timestamp: ts}' (rating: optional); implies --format table",
    )
    p.add_argument(
        "--sep",
        help="field separator of a table, user-item, user-item-time or amazon-csv file "
        "(default: the format's; '\\t' is a tab)",
    )
    p.add_argument("--k-core", type=int, help="k-core filter (0 = off; default per dataset)")
    p.add_argument("--min-rating", type=float, help="keep interactions rated at least this")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines (counted)")
    p.add_argument("--drop-duplicates", action="store_true", help="remove repeated rows")
    p.add_argument("--download", action="store_true", help="download the raw files if missing")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train and evaluate a model from a YAML config")
    p.add_argument("config", nargs="?", help="YAML file or packaged config name")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.num_blocks=3 (repeatable)",
    )
    p.add_argument("--data-dir", help="dataset folder (same as --set data.data_dir=...)")
    p.add_argument("--resume", help="continue from RUN/checkpoints/last.ckpt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint (sampled and full ranking)")
    p.add_argument("checkpoint", help="run directory or checkpoint file")
    p.add_argument("--stage", choices=["valid", "test"], default="test")
    p.add_argument("--protocol", choices=["sampled", "full", "both"], default="both")
    p.add_argument("--max-users", type=int, help="evaluate a seeded random subset of users")
    p.add_argument(
        "--inference-mask",
        choices=["soft", "binary", "expected"],
        help="Rec-Denoiser checkpoints: evaluate with this inference mask, not the trained one",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-k next items for users or for a history")
    p.add_argument("checkpoint", help="run directory or checkpoint file")
    p.add_argument("--users", nargs="+", metavar="USER", help="raw user ids")
    p.add_argument("--history", nargs="+", metavar="ITEM", help="raw item ids, oldest first")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--include-seen", action="store_true", help="allow items already in history")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser(
        "noise-report", help="which history items the learned masks prune; noise detection"
    )
    p.add_argument("checkpoint", help="run directory or checkpoint file of a +Denoiser model")
    p.add_argument("--user", help="raw user id: show the keep probability of each history item")
    p.add_argument("--noise-ratio", type=float, help="default: the run's data.noise_ratio")
    p.add_argument("--noise-seed", type=int, help="default: the run's data.noise_seed")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_noise_report)

    from recdenoiser.experiments.cli import add_commands  # experiment run/run-cell/status, report

    add_commands(sub)
    return parser


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.setLevel(level)
    root = logging.getLogger("recdenoiser")
    root.handlers[:] = [handler]
    # the logger passes INFO on so that each run's own log file is complete even with --quiet
    root.setLevel(min(level, logging.INFO))
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Python warnings (skipped lines, duplicates, ...) as one "warning:" line each
    logging.captureWarnings(True)
    warn_handler = logging.StreamHandler(sys.stderr)
    warn_handler.setFormatter(_OneLineWarning())
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.handlers[:] = [warn_handler]
    py_warnings.propagate = False


class _OneLineWarning(logging.Formatter):
    """``warning: MESSAGE`` from the ``file:line: Category: MESSAGE\n  source`` text."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage().splitlines()[0] if record.getMessage() else ""
        parts = text.split(": ", 2)
        return f"warning: {parts[2] if len(parts) == 3 else text}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except RecDenoiserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `recdenoiser ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
