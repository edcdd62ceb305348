"""The ``recdenoiser experiment ...`` and ``recdenoiser report`` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from recdenoiser.experiments.runner import DEFAULT_DB


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("experiment", help="run a grid of training runs into a results database")
    esub = exp.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("grid", help="grid YAML file (see experiments/*.yaml)")
        p.add_argument("--db", default=str(DEFAULT_DB), help=f"results database ({DEFAULT_DB})")
        p.add_argument("--quick", action="store_true", help="the grid's quick variant")

    p = esub.add_parser("run", help="run every unfinished cell (resumable)")
    common(p)
    p.add_argument("--workers", type=_positive, default=1, help="cells in parallel (subprocesses)")
    p.add_argument("--runs-dir", help="where run directories go (default: the database's folder)")
    p.add_argument("--skip-failed", action="store_true", help="do not retry failed cells")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="AXIS=LABEL[,LABEL]",
        help="run only the cells with these labels (repeatable; e.g. --only dataset=beauty "
        "--only seed=1,2); the other cells stay in the grid for status and report",
    )
    p.set_defaults(func=cmd_run)

    p = esub.add_parser("run-cell", help="run one cell (for cluster schedulers)")
    common(p)
    p.add_argument("cell_id", help="cell id (see `experiment status --cells`)")
    p.add_argument("--runs-dir", help="where run directories go (default: the database's folder)")
    p.add_argument("--skip-failed", action="store_true", help="do not retry a failed cell")
    p.add_argument("--force", action="store_true", help="run even if done or running")
    p.set_defaults(func=cmd_run_cell)

    p = esub.add_parser("status", help="counts per status and failures")
    p.add_argument("grid", help="grid YAML file")
    p.add_argument("--db", default=str(DEFAULT_DB), help=f"results database ({DEFAULT_DB})")
    p.add_argument("--cells", action="store_true", help="list every cell id with its labels")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="tables, figures and an HTML page from experiment results")
    p.add_argument("source", help="results database, or a grid YAML file (with --db)")
    p.add_argument("--db", help=f"results database for a grid file (default {DEFAULT_DB})")
    p.add_argument("--out", help="output folder (default: DB_FOLDER/report)")
    p.add_argument("--protocol", choices=["sampled", "full"], default="sampled")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(func=cmd_report)


def cmd_run(args: argparse.Namespace) -> int:
    from recdenoiser.experiments.grid import load_grid
    from recdenoiser.experiments.runner import run_grid

    summary = run_grid(
        load_grid(args.grid),
        args.db,
        workers=args.workers,
        quick=args.quick,
        runs_root=args.runs_dir,
        retry_failed=not args.skip_failed,
        only=args.only,
    )
    return 1 if summary.selected.get("failed") else 0


def cmd_run_cell(args: argparse.Namespace) -> int:
    from recdenoiser.experiments.db import ResultsDB
    from recdenoiser.experiments.grid import load_grid
    from recdenoiser.experiments.runner import describe, execute_cell, register

    grid = load_grid(args.grid)
    cell = grid.cell(args.cell_id, quick=args.quick)
    root = Path(args.runs_dir) if args.runs_dir else Path(args.db).parent
    with ResultsDB(args.db) as db:
        register(grid, db, args.quick)
        outcome = execute_cell(
            grid,
            cell,
            db,
            quick=args.quick,
            runs_root=root,
            retry_failed=not args.skip_failed,
            force=args.force,
        )
    print(f"{cell.cell_id} ({describe(cell)}): {outcome}")
    return 1 if outcome == "failed" else 0


def cmd_status(args: argparse.Namespace) -> int:
    from recdenoiser.experiments.grid import load_grid
    from recdenoiser.experiments.runner import describe, status_lines

    grid = load_grid(args.grid)
    if Path(args.db).exists():
        lines = status_lines(grid, args.db)
    else:
        n = len(grid.cells())
        lines = [f"grid {grid.name}: {n} cells, none run yet (no database at {args.db})"]
    print("\n".join(lines))
    if args.cells:
        for quick in (False, True):
            for cell in grid.cells(quick):
                print(f"{'quick ' if quick else ''}{cell.cell_id}  {describe(cell)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from recdenoiser.experiments.report import build_report

    files = build_report(
        args.source,
        args.out,
        db_path=args.db,
        protocol=args.protocol,
        figures=not args.no_figures,
    )
    print(f"markdown: {files.markdown}")
    print(f"html:     {files.html}")
    print(f"tables:   {len(files.tables)} CSV files in {files.out / 'tables'}")
    print(f"figures:  {len(files.figures)} (PNG + SVG) in {files.out / 'figures'}")
    return 0
