"""Summarise finished runs as the Markdown tables of docs/results.md.

Usage:
    python experiments/summarize.py foundation RUNS_DIR      # one row per run
    python experiments/summarize.py denoiser RUNS_DIR        # SASRec vs +Denoiser over seeds
    python experiments/summarize.py table2 RUNS_DIR [RUNS_DIR ...]  # every model, both protocols
    python experiments/summarize.py check RUNS_DIR           # best validation only (no test)

Run names follow experiments/denoiser.sh (``DATASET-VARIANT-sSEED``) and experiments/table2.sh
(``DATASET-MODEL[-denoiser]-sSEED``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recdenoiser.evaluation import paired_test

METRICS = ("hit@10", "ndcg@10")


def load_runs(root: Path) -> dict[str, dict]:
    runs = {}
    for path in sorted(root.glob("*/results.json")):
        runs[path.parent.name] = json.loads(path.read_text())
    return runs


def foundation_table(root: Path) -> str:
    lines = [
        "| run | loss | best epoch | sampled Hit@10 | sampled NDCG@10 | full HR@10 | "
        "full NDCG@10 | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in load_runs(root).items():
        config = (root / name / "config.yaml").read_text()
        loss = re.search(r"^  loss: (\S+)", config, re.M)
        s, f = res["test"]["sampled"], res["test"]["full"]
        lines.append(
            f"| {name} | {loss.group(1) if loss else '?'} | {res['best_epoch']} | "
            f"{s['hit@10']:.4f} | {s['ndcg@10']:.4f} | {f['hit@10']:.4f} | {f['ndcg@10']:.4f} | "
            f"{res['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def mask_density(run_dir: Path) -> tuple[float, float]:
    """(mean keep probability during the last epoch, fraction of positional entries kept)."""
    train_density = math.nan
    with (run_dir / "metrics.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row.get("train/mask_density"):
                train_density = float(row["train/mask_density"])
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["state_dict"]
    phi = state.get("mask_provider.phi")
    kept = math.nan
    if phi is not None:
        n = phi.shape[-1]
        usable = torch.ones(n, n).tril().bool()
        kept = float((torch.sigmoid(phi)[:, usable] > 0.5).float().mean())
    return train_density, kept


def denoiser_table(root: Path, protocol: str) -> str:
    runs = load_runs(root)
    groups: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for name, res in runs.items():
        m = re.fullmatch(r"(.+)-(sasrec|denoiser|denoiser-input|denoiser-tuned)-s(\d+)", name)
        if m:
            groups[(m.group(1), m.group(2))][int(m.group(3))] = res
    lines = [
        "| dataset | model | seeds | Hit@10 | NDCG@10 | ΔHit@10 | ΔNDCG@10 | p (NDCG@10) | "
        "mask density (train / kept) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted({d for d, _ in groups}):
        base = groups.get((dataset, "sasrec"), {})
        for variant, label in (
            ("sasrec", "SASRec"),
            ("denoiser", "+Denoiser (positional)"),
            ("denoiser-input", "+Denoiser (input-dependent)"),
            ("denoiser-tuned", "+Denoiser (β = 1e-3, J − I)"),
        ):
            seeds = groups.get((dataset, variant), {})
            if not seeds:
                continue
            vals = {k: np.array([r["test"][protocol][k] for r in seeds.values()]) for k in METRICS}
            cells = [
                f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"
                for v in vals.values()
            ]
            delta, p_value, density = ["", ""], "", ""
            if variant != "sasrec" and base:
                for i, k in enumerate(METRICS):
                    b = np.mean([r["test"][protocol][k] for r in base.values()])
                    delta[i] = f"{(vals[k].mean() / b - 1) * 100:+.1f}%"
                common = sorted(set(seeds) & set(base))
                if common:
                    a = per_user_mean(root, dataset, variant, common, protocol)
                    bb = per_user_mean(root, dataset, "sasrec", common, protocol)
                    p = paired_test(a, bb, "ndcg@10")["p_value"]
                    p_value = f"{p:.2g}" if p > 0 else "< 1e-300"  # below float64's range
                dens = [mask_density(root / f"{dataset}-{variant}-s{s}") for s in seeds]
                train_d, kept = np.nanmean([d[0] for d in dens]), np.nanmean([d[1] for d in dens])
                density = f"{train_d:.3f} / {kept:.3f}"
            lines.append(
                f"| {dataset} | {label} | {len(seeds)} | {cells[0]} | {cells[1]} | {delta[0]} | "
                f"{delta[1]} | {p_value} | {density} |"
            )
    return "\n".join(lines)


def check_table(root: Path) -> str:
    """Best validation NDCG@10 / Hit@10 per run (the test split is not read)."""
    lines = [
        "| run | best epoch | valid Hit@10 | valid NDCG@10 | mask density (train / kept) |",
        "|---|---|---|---|---|",
    ]
    for path in sorted(root.glob("*/validation.csv")):
        frame = pd.read_csv(path)
        best = frame.loc[frame["ndcg@10"].idxmax()]
        train_d, kept = mask_density(path.parent)
        density = "" if math.isnan(train_d) else f"{train_d:.3f} / {kept:.3f}"
        lines.append(
            f"| {path.parent.name} | {int(best['epoch'])} | {best['hit@10']:.4f} | "
            f"{best['ndcg@10']:.4f} | {density} |"
        )
    return "\n".join(lines)


TABLE2_ORDER = ("fpmc", "gru4rec", "caser", "sasrec", "bert4rec", "tisasrec", "ssept")
TABLE2_NAMES = {
    "fpmc": "FPMC",
    "gru4rec": "GRU4Rec",
    "caser": "Caser",
    "sasrec": "SASRec",
    "bert4rec": "BERT4Rec",
    "tisasrec": "TiSASRec",
    "ssept": "SSE-PT",
}


# Rec-Denoiser paper, Table 2 (sampled Hit@10, NDCG@10); its Beauty and Games were filtered
# differently from ours, so only its ML-1M row is on the same file
PAPER_TABLE2 = {
    "fpmc": {"ml-1m": (0.7478, 0.4889), "beauty": (0.2810, 0.1792), "games": (0.5231, 0.3410)},
    "gru4rec": {"ml-1m": (0.5582, 0.3383), "beauty": (0.2123, 0.1205), "games": (0.2943, 0.1939)},
    "caser": {"ml-1m": (0.7213, 0.4672), "beauty": (0.2670, 0.1531), "games": (0.4315, 0.2652)},
    "sasrec": {"ml-1m": (0.7434, 0.5012), "beauty": (0.4345, 0.2765), "games": (0.6748, 0.4622)},
    "sasrec+d": {"ml-1m": (0.7980, 0.5610), "beauty": (0.4783, 0.3025), "games": (0.7391, 0.5439)},
    "bert4rec": {"ml-1m": (0.7549, 0.5245), "beauty": (0.4528, 0.3013), "games": (0.6812, 0.4815)},
    "bert4rec+d": {
        "ml-1m": (0.8045, 0.5814),
        "beauty": (0.4883, 0.3348),
        "games": (0.7415, 0.5310),
    },
    "tisasrec": {"ml-1m": (0.7365, 0.5164), "beauty": (0.4532, 0.2911), "games": (0.6613, 0.4517)},
    "tisasrec+d": {
        "ml-1m": (0.7954, 0.5582),
        "beauty": (0.4962, 0.3312),
        "games": (0.7331, 0.4984),
    },
    "ssept": {"ml-1m": (0.7413, 0.5041), "beauty": (0.4326, 0.2731), "games": (0.6810, 0.4713)},
    "ssept+d": {"ml-1m": (0.8010, 0.5712), "beauty": (0.4952, 0.3265), "games": (0.7396, 0.5152)},
}


def table2(roots: list[Path]) -> str:
    """Mean over seeds per (dataset, model, variant): sampled and full Hit@10 / NDCG@10."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    pattern = re.compile(r"(ml-1m|beauty-time|beauty|games)-(.+?)-s(\d+)")
    for root in roots:
        for name, res in load_runs(root).items():
            m = pattern.fullmatch(name)
            if not m:
                continue
            dataset, rest = ("beauty" if m.group(1) == "beauty-time" else m.group(1)), m.group(2)
            if rest in ("denoiser", "denoiser-input", "denoiser-tuned"):  # denoiser.sh names
                rest = "sasrec-" + rest
            if rest.endswith(("-denoiser-input", "-denoiser-tuned")):  # Table 2: paper settings
                continue
            model, variant = (
                (rest[: -len("-denoiser")], "denoiser")
                if rest.endswith("-denoiser")
                else (rest, "backbone")
            )
            groups[(dataset, model, variant)].append(res)
    lines = [
        "| dataset | model | seeds | sampled Hit@10 | sampled NDCG@10 | full HR@10 | "
        "full NDCG@10 | Δ sampled NDCG@10 | Δ full NDCG@10 | paper (sampled) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def mean(runs: list[dict], protocol: str, metric: str) -> float:
        return float(np.mean([r["test"][protocol][metric] for r in runs]))

    for dataset in ("ml-1m", "beauty", "games"):
        for model in TABLE2_ORDER:
            for variant in ("backbone", "denoiser"):
                runs = groups.get((dataset, model, variant))
                if not runs:
                    continue
                label = TABLE2_NAMES[model] + ("+Denoiser" if variant == "denoiser" else "")
                cells = [f"{mean(runs, p, k):.4f}" for p in ("sampled", "full") for k in METRICS]
                delta = ["", ""]
                base = groups.get((dataset, model, "backbone"))
                if variant == "denoiser" and base:
                    delta = [
                        f"{(mean(runs, p, 'ndcg@10') / mean(base, p, 'ndcg@10') - 1) * 100:+.1f}%"
                        for p in ("sampled", "full")
                    ]
                key = model + ("+d" if variant == "denoiser" else "")
                paper = PAPER_TABLE2.get(key, {}).get(dataset)
                ref = f"{paper[0]:.4f} / {paper[1]:.4f}" if paper else ""
                lines.append(
                    f"| {dataset} | {label} | {len(runs)} | {' | '.join(cells)} | "
                    f"{delta[0]} | {delta[1]} | {ref} |"
                )
    return "\n".join(lines)


def per_user_mean(
    root: Path, dataset: str, variant: str, seeds: list[int], protocol: str
) -> pd.DataFrame:
    frames = [
        pd.read_csv(root / f"{dataset}-{variant}-s{s}" / "per_user" / f"test_{protocol}.csv")
        for s in seeds
    ]
    stacked = pd.concat(frames)
    return stacked.groupby("user", as_index=False)[list(METRICS)].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["foundation", "denoiser", "table2", "check"])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--protocol", choices=["sampled", "full"], default="sampled")
    args = parser.parse_args()
    if args.kind == "foundation":
        print(foundation_table(args.runs[0]))
    elif args.kind == "denoiser":
        print(denoiser_table(args.runs[0], args.protocol))
    elif args.kind == "check":
        print(check_table(args.runs[0]))
    else:
        print(table2(args.runs))


if __name__ == "__main__":
    main()
