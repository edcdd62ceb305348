"""Tables, figures and an HTML page from the results database.

For every grid in the database (full and quick results are reported separately, quick ones
labelled ``[quick]`` in headings, tables and figure titles):

* a summary table: mean ± std over seeds of the test metrics of every cell without its seed;
* the relative improvement of every +Denoiser configuration over its backbone, i.e. the cells
  whose resolved configuration is the same apart from the ``denoiser`` section (which is
  disabled in the backbone) and the seed; the significance test is
  :func:`recdenoiser.evaluation.paired_test` over users on each user's metric averaged over the
  seeds the two configurations have in common;
* figures in the layout of the paper's when the grid has the axis (Hit@10 vs noise ratio, vs the
  maximum length n, vs β and γ on a log scale; one panel per dataset, error bars = std over
  seeds), heat maps of the learned keep probabilities ``sigmoid(Φ)`` of each layer of one
  +Denoiser run, and one user's history coloured by keep score;
* ``report.md``, ``report.html`` (self-contained: tables inline, images embedded as base64
  PNG), CSV tables under ``tables/`` and PNG + SVG figures under ``figures/``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdenoiser.errors import RecDenoiserError
from recdenoiser.experiments.db import CellRow, ResultsDB
from recdenoiser.experiments.grid import SEED_AXIS

METRICS = ("hit@10", "ndcg@10")
SWEEPS: dict[str, tuple[str, bool]] = {  # config key -> (axis title, log scale)
    "data.noise_ratio": ("noise ratio", False),
    "data.max_len": ("n (maximum sequence length)", False),
    "denoiser.beta": ("β (L0 weight)", True),
    "denoiser.gamma": ("γ (Jacobian weight)", True),
}
DATASET_AXES = ("dataset", "data.dataset")
RUN_KEYS = ("seed", "name", "output_dir")  # differ between runs of one configuration


def lookup(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def backbone_key(config: dict[str, Any]) -> str:
    """The configuration without seed, run name and the denoiser section."""
    stripped = {k: v for k, v in config.items() if k not in (*RUN_KEYS, "denoiser")}
    data = dict(stripped.get("data") or {})
    data.pop("data_dir", None)
    stripped["data"] = data
    return json.dumps(stripped, sort_keys=True)


def fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


# ------------------------------------------------------------------------------- loading
@dataclass
class Unit:
    """The done cells of one grid, full or quick."""

    grid: str
    quick: bool
    axes: list[str]
    rows: list[CellRow]
    failed: list[CellRow] = field(default_factory=list)
    pending: int = 0
    outdated: int = 0  # stored cells of earlier versions of the grid, not reported

    @property
    def title(self) -> str:
        return f"{self.grid} [quick]" if self.quick else self.grid

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.grid) + ("-quick" if self.quick else "")

    @property
    def group_axes(self) -> list[str]:
        return [a for a in self.axes if a != SEED_AXIS]


def load_units(
    db: ResultsDB,
    grids: list[str] | None = None,
    current: dict[bool, set[str]] | None = None,
) -> list[Unit]:
    """One unit per grid and variant (full, quick) with results: its *current* cells.

    ``current`` (full/quick -> cell ids, from a grid file) overrides the cells the database
    last registered for the grid.
    """
    units = []
    for name in grids or db.grid_names():
        spec = db.grid_spec(name) or {}
        for quick in (False, True):
            if current is not None:
                ids = current.get(quick, set())
                rows = [r for r in db.rows(name) if r.cell_id in ids]
                outdated = sum(r.cell_id not in ids for r in db.rows(name, quick))
            else:
                rows = db.current_rows(name, quick)
                outdated = db.outdated(name, quick)
            if not rows:
                continue
            axes = list(spec.get("axes") or [])
            for r in rows:
                axes.extend(a for a in r.labels if a not in axes)
            units.append(
                Unit(
                    grid=name,
                    quick=quick,
                    axes=axes,
                    rows=[r for r in rows if r.status == "done" and r.metrics],
                    failed=[r for r in rows if r.status == "failed"],
                    pending=sum(r.status in ("pending", "running") for r in rows),
                    outdated=outdated,
                )
            )
    return units


def frame(unit: Unit, protocol: str) -> pd.DataFrame:
    """One row per done cell: axis labels, seed, config facts and test metrics."""
    records = []
    for r in unit.rows:
        config = r.config or {}
        metrics = (r.metrics or {}).get("test", {})
        rec: dict[str, Any] = {a: r.labels.get(a, "") for a in unit.group_axes}
        rec.update(
            cell_id=r.cell_id,
            seed=lookup(config, "seed"),
            dataset=lookup(config, "data.dataset"),
            model=lookup(config, "model.name"),
            denoiser=bool(lookup(config, "denoiser.enabled")),
            backbone_key=backbone_key(config),
            per_user=r.per_user_path,
            run_dir=r.run_dir,
            wall_seconds=r.wall_seconds,
        )
        for p in ("sampled", "full"):
            for m in METRICS:
                rec[f"{p} {m}"] = (metrics.get(p) or {}).get(m, float("nan"))
        rec["config"] = config
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    df.attrs["protocol"] = protocol
    return df


def group_columns(unit: Unit) -> list[str]:
    return unit.group_axes


# -------------------------------------------------------------------------------- tables
def summary_table(unit: Unit, df: pd.DataFrame) -> pd.DataFrame:
    keys = group_columns(unit)
    out = []
    for key, g in df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        rec: dict[str, Any] = dict(zip(keys, key, strict=True))
        rec["run"] = "quick" if unit.quick else "full"
        rec["model"] = g["model"].iloc[0]
        rec["denoiser"] = bool(g["denoiser"].iloc[0])
        rec["seeds"] = len(g)
        for p in ("sampled", "full"):
            for m in METRICS:
                values = g[f"{p} {m}"].astype(float)
                rec[f"{p} {m} mean"] = float(values.mean())
                rec[f"{p} {m} std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rec["wall seconds mean"] = float(g["wall_seconds"].astype(float).mean())
        out.append(rec)
    return pd.DataFrame.from_records(out)


def _per_user(path: str | None, protocol: str) -> pd.DataFrame | None:
    if not path:
        return None
    file = Path(path) / f"test_{protocol}.csv"
    if not file.exists():
        return None
    from recdenoiser.evaluation import load_per_user

    return load_per_user(file)


def _seed_averaged(rows: pd.DataFrame, seeds: list[Any], protocol: str, metric: str) -> Any:
    tables = []
    for seed in seeds:
        t = _per_user(rows.loc[rows["seed"] == seed, "per_user"].iloc[0], protocol)
        if t is None:
            return None
        tables.append(t[["user", metric]].set_index("user")[metric].rename(str(seed)))
    joined = pd.concat(tables, axis=1, join="inner")
    return pd.DataFrame({"user": joined.index, metric: joined.mean(axis=1).to_numpy()})


def improvement_table(unit: Unit, df: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Every +Denoiser configuration against its backbone (see the module docstring)."""
    from recdenoiser.evaluation import paired_test

    keys = group_columns(unit)
    groups: list[tuple[dict[str, Any], pd.DataFrame]] = []
    for key, g in df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        groups.append((dict(zip(keys, key, strict=True)), g))
    backbones: dict[str, tuple[dict[str, Any], pd.DataFrame]] = {}
    for labels, g in groups:
        if not g["denoiser"].iloc[0]:
            backbones.setdefault(g["backbone_key"].iloc[0], (labels, g))
    out = []
    for labels, g in groups:
        if not g["denoiser"].iloc[0]:
            continue
        match = backbones.get(g["backbone_key"].iloc[0])
        if match is None:
            continue
        b_labels, b = match
        rec: dict[str, Any] = dict(labels)
        rec["run"] = "quick" if unit.quick else "full"
        rec["vs backbone cell"] = ", ".join(f"{k}={v}" for k, v in b_labels.items() if v != "")
        common = sorted(set(g["seed"]) & set(b["seed"]), key=str)
        rec["common seeds"] = len(common)
        for m in METRICS:
            col = f"{protocol} {m}"
            mb, md = float(b[col].astype(float).mean()), float(g[col].astype(float).mean())
            rec[f"backbone {m}"] = mb
            rec[f"denoiser {m}"] = md
            rec[f"improvement {m} %"] = 100.0 * (md - mb) / mb if mb else math.nan
            test: dict[str, Any] = {}
            if common:
                ud = _seed_averaged(g, common, protocol, m)
                ub = _seed_averaged(b, common, protocol, m)
                if ud is not None and ub is not None:
                    test = paired_test(ud, ub, m)
            rec[f"users {m}"] = test.get("n", 0)
            rec[f"p-value {m} (t)"] = test.get("p_value", math.nan)
            rec[f"p-value {m} (wilcoxon)"] = test.get("wilcoxon_p", math.nan)
        out.append(rec)
    return pd.DataFrame.from_records(out)


def display_summary(unit: Unit, summary: pd.DataFrame, protocol: str) -> pd.DataFrame:
    if summary.empty:
        return summary
    keys = [*group_columns(unit), "run", "seeds"]
    shown = summary[keys].copy()
    for p in (protocol, *(x for x in ("sampled", "full") if x != protocol)):
        for m in METRICS:
            shown[f"{p} {m}"] = [
                fmt(a, b)
                for a, b in zip(summary[f"{p} {m} mean"], summary[f"{p} {m} std"], strict=True)
            ]
    shown["wall s"] = [f"{v:.1f}" for v in summary["wall seconds mean"]]
    return shown


def display_improvement(improvement: pd.DataFrame) -> pd.DataFrame:
    if improvement.empty:
        return improvement
    shown = improvement.copy()
    for col in shown.columns:
        if col.startswith(("backbone hit", "backbone ndcg", "denoiser hit", "denoiser ndcg")):
            shown[col] = [f"{v:.4f}" for v in shown[col]]
        elif col.startswith("improvement"):
            shown[col] = [("–" if math.isnan(v) else f"{v:+.2f}%") for v in shown[col]]
        elif col.startswith("p-value"):
            shown[col] = [("–" if math.isnan(v) else f"{v:.3g}") for v in shown[col]]
    return shown


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in df.columns) + " |",
        "|" + "|".join("---" for _ in df.columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- figures
@dataclass
class Figure:
    name: str
    title: str
    png: Path
    svg: Path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, name: str, title: str) -> Figure:
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight")
    _pyplot().close(fig)
    return Figure(name, title, png, svg)


def sweep_figures(unit: Unit, df: pd.DataFrame, protocol: str, out: Path) -> list[Figure]:
    figures = []
    tag = " [quick]" if unit.quick else ""
    for key, (xlabel, log) in SWEEPS.items():
        if key not in unit.axes or df.empty:
            continue
        sub = df[df[key] != ""] if key in df.columns else df.iloc[0:0]
        if sub.empty:
            continue
        sub = sub.assign(x=[float(lookup(c, key)) for c in sub["config"]])
        if sub["x"].nunique() < 2:
            continue
        plt = _pyplot()
        datasets = list(dict.fromkeys(sub["dataset"]))
        metric = "hit@10"
        fig, axes = plt.subplots(
            1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False
        )
        line_axes = [
            a
            for a in unit.group_axes
            if a not in (key, *DATASET_AXES, *SWEEPS) and a in sub.columns
        ]
        for ax, dataset in zip(axes[0], datasets, strict=True):
            d = sub[sub["dataset"] == dataset]
            plotted_backbone = False
            for line, g in d.groupby(line_axes, sort=False) if line_axes else [((), d)]:
                line = line if isinstance(line, tuple) else (line,)
                label = ", ".join(
                    f"{v}" for a, v in zip(line_axes, line, strict=True) if v != ""
                ) or ("+Denoiser" if g["denoiser"].iloc[0] else "backbone")
                stats = g.groupby("x")[f"{protocol} {metric}"].agg(["mean", "std"]).sort_index()
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"].fillna(0.0),
                    marker="o",
                    capsize=3,
                    label=label,
                )
                plotted_backbone |= not bool(g["denoiser"].iloc[0])
            if not plotted_backbone:  # a backbone outside the sweep: dashed reference line
                keys = set(d["backbone_key"])
                ref = df[(~df["denoiser"]) & df["backbone_key"].isin(keys)]
                if not ref.empty:
                    ax.axhline(
                        float(ref[f"{protocol} {metric}"].mean()),
                        linestyle="--",
                        color="gray",
                        label=f"{ref['model'].iloc[0]} (no denoiser)",
                    )
            if log:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"Hit@10 ({protocol})")
            ax.set_title(Path(str(dataset)).name)  # a file path: its name only
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        short = key.split(".")[-1]
        title = f"{unit.grid}: Hit@10 vs {xlabel}{tag}"
        fig.suptitle(title, y=1.03)
        figures.append(_save(fig, out, f"{unit.slug}_hit10_vs_{short}", title))
    return figures


def _pick_denoiser_run(unit: Unit) -> CellRow | None:
    candidates = []
    for r in unit.rows:
        c = r.config or {}
        if not (lookup(c, "denoiser.enabled") and lookup(c, "denoiser.masks")):
            continue
        if not r.run_dir or not (Path(r.run_dir) / "checkpoints" / "best.pt").exists():
            continue
        positional = lookup(c, "denoiser.mask_kind") == "positional"
        noise = float(lookup(c, "data.noise_ratio") or 0.0)
        candidates.append((not positional, -noise, r.cell_id, r))
    return min(candidates, key=lambda t: t[:3])[3] if candidates else None


def mask_figures(unit: Unit, out: Path) -> list[Figure]:
    """Per-layer keep probabilities and one user's masked history of a +Denoiser run."""
    import torch

    row = _pick_denoiser_run(unit)
    if row is None or row.run_dir is None:
        return []
    plt = _pyplot()
    tag = " [quick]" if unit.quick else ""
    label = ", ".join(f"{k}={v}" for k, v in row.labels.items())
    ckpt_path = Path(row.run_dir) / "checkpoints" / "best.pt"
    payload = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    phi = payload["state_dict"].get("mask_provider.phi")
    figures = []
    if phi is not None:
        keep = torch.sigmoid(phi.float()).numpy()
        n = keep.shape[-1]
        lower = np.tril(np.ones((n, n), dtype=bool))
        layers = keep.shape[0]
        fig, axes = plt.subplots(1, layers, figsize=(3.8 * layers, 3.4), squeeze=False)
        image = None
        for i, ax in enumerate(axes[0]):
            shown = np.where(lower, keep[i], np.nan)
            image = ax.imshow(shown, vmin=0.0, vmax=1.0, cmap="viridis", origin="upper")
            ax.set_title(f"layer {i + 1}")
            ax.set_xlabel("key position")
            ax.set_ylabel("query position")
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="keep probability σ(Φ)")
        title = f"{unit.grid}: learned mask keep probabilities ({label}){tag}"
        fig.suptitle(title, fontsize=9)
        figures.append(_save(fig, out, f"{unit.slug}_mask_keep", title))
    history = _history_figure(unit, row, out, label, tag)
    if history is not None:
        figures.append(history)
    return figures


def _history_figure(unit: Unit, row: CellRow, out: Path, label: str, tag: str) -> Figure | None:
    from recdenoiser.data import LeaveOneOutSplit, inject_noise
    from recdenoiser.denoiser.report import user_history_report
    from recdenoiser.models.base import SelfAttentiveRecommender
    from recdenoiser.training.checkpoint import load_checkpoint

    assert row.run_dir is not None
    ckpt = load_checkpoint(row.run_dir)
    if not isinstance(ckpt.model, SelfAttentiveRecommender):
        return None
    cfg = ckpt.config
    max_len = int(cfg.data.max_len)
    split = LeaveOneOutSplit.from_dataset(ckpt.dataset)
    injected = None
    if cfg.data.noise_ratio > 0:
        split, noise = inject_noise(split, cfg.data.noise_ratio, cfg.data.noise_seed)
        injected = noise.replaced
    users = split.eval_users if len(split.eval_users) else np.arange(ckpt.dataset.n_users)
    lengths = np.array([min(len(split.train_sequence(int(u))), max_len) for u in users])
    user = int(users[int(np.argmax(lengths))])  # the longest (capped) history, lowest id
    table = user_history_report(
        ckpt.model, split.train_sequence(user), ckpt.dataset.item_ids, max_len, user=user
    )
    shown = table.tail(50)
    flags = None
    if injected is not None:
        lo, hi = split.train_offsets[user], split.train_offsets[user + 1]
        flags = injected[lo:hi][-len(table) :][-len(shown) :]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.28 * len(shown) + 1.5), 2.2))
    image = ax.imshow(
        shown["keep"].to_numpy()[None, :], vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto"
    )
    ax.set_yticks([])
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels(shown["item"], rotation=90, fontsize=6)
    for i, pruned in enumerate(shown["pruned"]):
        if pruned:
            ax.text(i, 0, "×", ha="center", va="center", color="white", fontsize=8)
    if flags is not None:
        for tick, hit in zip(ax.get_xticklabels(), flags, strict=False):
            if hit:
                tick.set_color("red")
    fig.colorbar(image, ax=ax, label="keep score")
    raw_user = ckpt.dataset.user_ids[user]
    note = " (red ids: injected noise; × pruned)" if flags is not None else " (× pruned)"
    title = f"{unit.grid}: history of user {raw_user}, oldest → newest{note}{tag}"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(f"item ({label})", fontsize=7)
    return _save(fig, out, f"{unit.slug}_user_history", title)


# --------------------------------------------------------------------------------- report
@dataclass
class ReportFiles:
    out: Path
    markdown: Path
    html: Path
    tables: list[Path]
    figures: list[Figure]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1.5em 0; vertical-align: top; }
figcaption { font-size: 12px; color: #555; max-width: 900px; }
img { max-width: 100%; border: 1px solid #eee; }
.quick { color: #b35900; font-weight: bold; }
pre { background: #f8f8f8; padding: 0.5em; font-size: 12px; white-space: pre-wrap; }
"""


def build_report(
    source: str | Path,
    out: str | Path | None = None,
    *,
    db_path: str | Path | None = None,
    protocol: str = "sampled",
    figures: bool = True,
) -> ReportFiles:
    """Write the report for a results database, or for one grid file's results."""
    source = Path(source)
    grids: list[str] | None = None
    current: dict[bool, set[str]] | None = None
    if source.suffix in (".yaml", ".yml"):
        from recdenoiser.experiments.grid import load_grid
        from recdenoiser.experiments.runner import DEFAULT_DB

        grid = load_grid(source)
        grids = [grid.name]
        current = {q: {c.cell_id for c in grid.cells(q)} for q in (False, True)}
        db_file = Path(db_path) if db_path is not None else DEFAULT_DB
    else:
        db_file = source
    if protocol not in ("sampled", "full"):
        raise RecDenoiserError(f"protocol must be sampled or full, not {protocol!r}")
    with ResultsDB(db_file, create=False) as db:
        units = load_units(db, grids, current)
    if not units:
        raise RecDenoiserError(f"no results for {', '.join(grids or ['any grid'])} in {db_file}")
    out_dir = Path(out) if out is not None else db_file.parent / "report"
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    md = [
        "# Experiment report",
        "",
        f"Results database `{db_file}`, generated {generated}. Test metrics, "
        f"{protocol} protocol first; mean ± std over seeds. Quick runs (shortened schedules, "
        "fewer seeds, subsampled evaluation) are marked **[quick]**: do not compare them with "
        "the paper.",
        "",
    ]
    body: list[str] = []
    tables: list[Path] = []
    all_figures: list[Figure] = []
    for unit in units:
        quick_html = ' <span class="quick">[quick]</span>' if unit.quick else ""
        md += [f"## {unit.title}", ""]
        body.append(f"<h2>{html.escape(unit.grid)}{quick_html}</h2>")
        counts = (
            f"{len(unit.rows)} done, {len(unit.failed)} failed, {unit.pending} pending or running"
        )
        if unit.outdated:
            counts += (
                f" ({unit.outdated} stored cells of an earlier version of this grid are kept "
                "in the database but not reported)"
            )
        md += [counts, ""]
        body.append(f"<p>{html.escape(counts)}</p>")
        if unit.rows:
            df = frame(unit, protocol)
            summary = summary_table(unit, df)
            improvement = improvement_table(unit, df, protocol)
            for name, table in (("summary", summary), ("improvement", improvement)):
                path = out_dir / "tables" / f"{unit.slug}_{name}.csv"
                table.to_csv(path, index=False)
                tables.append(path)
            shown = display_summary(unit, summary, protocol)
            md += ["### Mean ± std over seeds", "", markdown_table(shown)]
            body += [
                "<h3>Mean ± std over seeds</h3>",
                shown.to_html(index=False, border=0, classes="summary"),
            ]
            if not improvement.empty:
                imp = display_improvement(improvement)
                caption = (
                    f"Relative improvement of +Denoiser over its backbone ({protocol} protocol); "
                    "p-values of paired tests over users (metric averaged over common seeds)"
                )
                md += [f"### {caption}", "", markdown_table(imp)]
                body += [
                    f"<h3>{html.escape(caption)}</h3>",
                    imp.to_html(index=False, border=0, classes="improvement"),
                ]
            if figures:
                figs = sweep_figures(unit, df, protocol, fig_dir) + mask_figures(unit, fig_dir)
                all_figures += figs
                if figs:
                    md += ["### Figures", ""]
                    body.append("<h3>Figures</h3>")
                for f in figs:
                    rel_png = f.png.relative_to(out_dir).as_posix()
                    rel_svg = f.svg.relative_to(out_dir).as_posix()
                    md += [f"![{f.title}]({rel_png}) ([SVG]({rel_svg}))", ""]
                    body.append(
                        f'<figure><img src="data:image/png;base64,{_b64(f.png)}" '
                        f'alt="{html.escape(f.title)}" data-name="{html.escape(f.name)}">'
                        f"<figcaption>{html.escape(f.title)}</figcaption></figure>"
                    )
        if unit.failed:
            md += ["### Failed cells", ""]
            failed = pd.DataFrame(
                {
                    "cell": [r.cell_id for r in unit.failed],
                    "labels": [
                        ", ".join(f"{k}={v}" for k, v in r.labels.items()) for r in unit.failed
                    ],
                    "error": [
                        ((r.error or "").strip().splitlines() or ["?"])[-1] for r in unit.failed
                    ],
                }
            )
            md.append(markdown_table(failed))
            body += ["<h3>Failed cells</h3>", failed.to_html(index=False, border=0)]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))
    html_path = out_dir / "report.html"
    html_path.write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>recdenoiser experiment report</title>"
        f"<style>{HTML_STYLE}</style></head><body>"
        "<h1>Experiment report</h1>"
        f"<p>Results database <code>{html.escape(str(db_file))}</code>, generated "
        f"{generated}. Test metrics, {protocol} protocol first; mean ± std over seeds. "
        'Quick runs are marked <span class="quick">[quick]</span>.</p>'
        + "\n".join(body)
        + "</body></html>\n"
    )
    return ReportFiles(out_dir, md_path, html_path, tables, all_figures)
