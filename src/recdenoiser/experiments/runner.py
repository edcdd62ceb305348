"""Run the cells of a grid through :func:`recdenoiser.training.runner.train`, resumably.

Each cell's run directory is ``RUNS/GRID[-quick]/CELL_ID`` where ``RUNS`` defaults to the
folder of the results database. A cell is claimed in the database before it starts and finished
(done with its metrics, or failed with its error) in one transaction after it ends, so a grid
killed at any moment resumes where it stopped: finished cells are skipped and a cell left
``running`` by a dead process continues from the last epoch it finished (its run directory's
``checkpoints/last.ckpt``, written after every epoch; a run directory without a usable one is
removed and the cell starts again), unless its run directory already holds complete results
(killed between the end of training and the database update), which are then recorded as they
are. A cell interrupted by Ctrl-C, or whose worker process was killed by a signal, continues the
same way (also with ``--skip-failed``); a cell that *failed* starts again from scratch, and so
does one whose data changed since it was cut short.

With ``workers > 1`` every cell runs in its own process (``recdenoiser experiment run-cell``),
``workers`` at a time, each limited to ``cpu_count // workers`` threads unless the cell's
``train.num_threads`` says otherwise; ``run-cell`` is also what a cluster scheduler calls.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdenoiser import __version__
from recdenoiser.config import load_config
from recdenoiser.errors import ConfigError, RecDenoiserError
from recdenoiser.experiments.db import ResultsDB
from recdenoiser.experiments.grid import Cell, Grid

logger = logging.getLogger(__name__)

DEFAULT_DB = Path("runs") / "experiments" / "results.sqlite"


def grid_label(grid: Grid, quick: bool) -> str:
    return f"{grid.name}-quick" if quick else grid.name


def run_dir_for(grid: Grid, cell: Cell, runs_root: Path, quick: bool) -> Path:
    return runs_root / grid_label(grid, quick) / cell.cell_id


def register(grid: Grid, db: ResultsDB, quick: bool) -> list[Cell]:
    """Write the grid's spec and a pending row for each new cell; return the cells."""
    db.save_grid(grid.spec())
    cells = grid.cells(quick)
    for cell in cells:
        config = None if cell.config is None else cell.config.model_dump(mode="json")
        db.add_cell(grid.name, cell.cell_id, cell.labels, cell.overrides, config, quick)
    db.set_members(grid.name, quick, [cell.cell_id for cell in cells])
    return cells


def describe(cell: Cell) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.labels.items()) or cell.cell_id


def execute_cell(
    grid: Grid,
    cell: Cell,
    db: ResultsDB,
    *,
    quick: bool,
    runs_root: Path,
    retry_failed: bool = True,
    force: bool = False,
) -> str:
    """Run one cell in this process; returns ``done``, ``failed`` or why it was skipped."""
    from recdenoiser.training.runner import train

    before = db.get(grid.name, cell.cell_id)
    claimed, reason = db.claim(grid.name, cell.cell_id, retry_failed=retry_failed, force=force)
    if not claimed:
        return f"skipped: {reason}"
    run_dir = run_dir_for(grid, cell, runs_root, quick)
    started = time.perf_counter()
    if not force and _adopt_finished_run(grid, cell, db, run_dir):
        return "done"
    try:
        if cell.config is None:
            raise ConfigError(cell.error or "invalid configuration")
        config = cell.config.model_copy(deep=True)
        config.output_dir = str(run_dir.parent)
        config.name = run_dir.name
        resume = None
        if run_dir.exists():  # left by an attempt that did not finish
            # continued only when its process died ("running") or was interrupted or killed
            killed = before is not None and (before.status == "running" or before.cut_short)
            resume = _resumable(run_dir) if killed and not force else None
            if resume is None:
                shutil.rmtree(run_dir)
        try:
            result = train(config, resume=resume)
        except RecDenoiserError as exc:
            if resume is None or not str(exc).startswith("--resume:"):
                raise
            logger.info("not resuming %s (%s): starting again", run_dir, exc)
            shutil.rmtree(run_dir)  # other settings or data, or an unreadable checkpoint
            result = train(config)
    except KeyboardInterrupt:
        db.finish(
            grid.name,
            cell.cell_id,
            status="failed",
            error="interrupted (KeyboardInterrupt)",
            wall_seconds=time.perf_counter() - started,
            package_version=__version__,
            torch_version=_torch_version(),
        )
        raise
    except Exception as exc:
        if isinstance(exc, RecDenoiserError):
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = "".join(traceback.format_exception(exc)).strip()
        db.finish(
            grid.name,
            cell.cell_id,
            status="failed",
            error=error,
            run_dir=str(run_dir) if run_dir.exists() else None,
            wall_seconds=time.perf_counter() - started,
            package_version=__version__,
            torch_version=_torch_version(),
        )
        logger.warning("cell %s (%s) failed: %s", cell.cell_id, describe(cell), error)
        return "failed"
    results: dict[str, Any] = result.results
    db.finish(
        grid.name,
        cell.cell_id,
        status="done",
        config=result.config.model_dump(mode="json"),
        metrics=results,
        per_user_path=str(result.run_dir / "per_user"),
        run_dir=str(result.run_dir),
        wall_seconds=float(results.get("wall_seconds", time.perf_counter() - started)),
        package_version=__version__,
        torch_version=_torch_version(),
    )
    return "done"


def _resumable(run_dir: Path) -> Path | None:
    """``last.ckpt`` of a killed attempt, if it left one.

    Only an attempt that was killed (its row left ``running``) or interrupted by Ctrl-C is
    continued: a failed attempt starts again from scratch, since continuing it would likely fail
    the same way. Whether the checkpoint can be continued (same settings, same data, readable)
    is :func:`~recdenoiser.training.runner.check_resume`'s to say, inside ``train``; a
    ``--resume:`` error there makes the cell start again.
    """
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    logger.info("continuing the killed attempt in %s from %s", run_dir, last)
    return last


def _adopt_finished_run(grid: Grid, cell: Cell, db: ResultsDB, run_dir: Path) -> bool:
    """Record a run that finished training but was killed before the database said so."""
    results_file = run_dir / "results.json"
    per_user = run_dir / "per_user"
    if not (results_file.exists() and (run_dir / "config.yaml").exists()):
        return False
    try:
        results = json.loads(results_file.read_text())
        config = load_config(run_dir / "config.yaml")
    except (OSError, ValueError, RecDenoiserError):
        return False  # written only in part: run the cell again
    if not isinstance(results, dict) or "test" not in results:
        return False
    if not all((per_user / f"test_{p}.csv").exists() for p in results["test"]):
        return False
    env = results.get("environment") or {}
    db.finish(
        grid.name,
        cell.cell_id,
        status="done",
        config=config.model_dump(mode="json"),
        metrics=results,
        per_user_path=str(per_user),
        run_dir=str(run_dir),
        wall_seconds=results.get("wall_seconds"),
        package_version=env.get("recdenoiser", __version__),
        torch_version=env.get("torch") or _torch_version(),
    )
    logger.info("cell %s: recorded the finished run found in %s", cell.cell_id, run_dir)
    return True


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


@dataclass
class GridSummary:
    total: int
    counts: dict[str, int]
    ran: dict[str, str] = field(default_factory=dict)  # cell id -> outcome of this call
    #: counts per status of the cells selected by ``only`` (all cells without it)
    selected: dict[str, int] = field(default_factory=dict)


def run_grid(
    grid: Grid,
    db_path: str | Path = DEFAULT_DB,
    *,
    workers: int = 1,
    quick: bool = False,
    runs_root: str | Path | None = None,
    retry_failed: bool = True,
    only: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> GridSummary:
    """Run every cell that is not finished yet (see the module docstring).

    ``only`` restricts the run to a slice of the grid (see :meth:`Grid.select`); every cell is
    still registered, so ``status`` and the counts keep showing the whole grid.
    """
    db_path = Path(db_path)
    root = Path(runs_root) if runs_root is not None else db_path.parent
    all_cells = grid.cells(quick)
    selected = grid.select(all_cells, only) if only else all_cells
    with ResultsDB(db_path) as db:
        cells = register(grid, db, quick)
        chosen = {c.cell_id for c in selected}
        todo = []
        for cell in cells:
            if cell.cell_id not in chosen:
                continue
            row = db.get(grid.name, cell.cell_id)
            assert row is not None
            if row.status == "done" or (
                row.status == "failed" and not retry_failed and not row.cut_short
            ):
                continue
            if row.status == "running" and not db.is_stale(row):
                echo(f"cell {cell.cell_id} is running elsewhere (pid {row.pid} on {row.hostname})")
                continue
            todo.append(cell)
        tag = " [quick]" if quick else ""
        scope = f"{len(cells)} cells"
        if only:
            scope += f", {len(chosen)} selected by --only {' '.join(only)}"
        echo(
            f"grid {grid.name}{tag}: {scope}, {len(chosen) - len(todo)} finished or "
            f"running elsewhere, {len(todo)} to run (workers={workers}, db={db_path})"
        )
        ran: dict[str, str] = {}
        if workers <= 1:
            for i, cell in enumerate(todo, 1):
                echo(f"[{i}/{len(todo)}] {cell.cell_id} ({describe(cell)}) ...")
                outcome = execute_cell(
                    grid, cell, db, quick=quick, runs_root=root, retry_failed=retry_failed
                )
                ran[cell.cell_id] = outcome
                echo(f"[{i}/{len(todo)}] {cell.cell_id}: {_outcome_line(db, grid, cell, outcome)}")
        else:
            ran = _run_parallel(grid, todo, db, db_path, root, workers, quick, retry_failed, echo)
        counts = db.counts(grid.name, quick)
        selected_counts = dict(counts)
        if only:
            selected_counts = {}
            for cell_id in chosen:
                row = db.get(grid.name, cell_id)
                status = row.status if row is not None else "pending"
                selected_counts[status] = selected_counts.get(status, 0) + 1
    echo(f"grid {grid.name}{tag}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if only:
        echo("selected cells: " + ", ".join(f"{k} {v}" for k, v in selected_counts.items()))
    return GridSummary(total=len(cells), counts=counts, ran=ran, selected=selected_counts)


def _outcome_line(db: ResultsDB, grid: Grid, cell: Cell, outcome: str) -> str:
    row = db.get(grid.name, cell.cell_id)
    if outcome == "done" and row is not None and row.metrics:
        test = row.metrics.get("test", {}).get("sampled", {})
        shown = "  ".join(f"{k}={test[k]:.4f}" for k in ("hit@10", "ndcg@10") if k in test)
        return f"done in {row.wall_seconds or 0:.1f} s  {shown}"
    if outcome == "failed" and row is not None and row.error:
        how = "CUT SHORT" if row.cut_short else "FAILED"
        return f"{how}: " + row.error.strip().splitlines()[-1]
    return outcome


def _run_parallel(
    grid: Grid,
    todo: list[Cell],
    db: ResultsDB,
    db_path: Path,
    root: Path,
    workers: int,
    quick: bool,
    retry_failed: bool,
    echo: Callable[[str], None],
) -> dict[str, str]:
    if grid.path is None:
        raise RecDenoiserError("--workers > 1 needs a grid file (cells run as subprocesses)")
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("MKL_NUM_THREADS", str(threads))
    logs = root / grid_label(grid, quick) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = list(todo)
    running: dict[str, tuple[subprocess.Popen[bytes], Cell, Any]] = {}
    ran: dict[str, str] = {}
    done_count = 0
    while queue or running:
        while queue and len(running) < workers:
            cell = queue.pop(0)
            cmd = [
                sys.executable,
                "-m",
                "recdenoiser.cli",
                "-q",
                "experiment",
                "run-cell",
                str(grid.path),
                cell.cell_id,
                "--db",
                str(db_path),
                "--runs-dir",
                str(root),
            ]
            if quick:
                cmd.append("--quick")
            if not retry_failed:
                cmd.append("--skip-failed")
            log = (logs / f"{cell.cell_id}.log").open("ab")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[cell.cell_id] = (proc, cell, log)
            echo(f"started {cell.cell_id} ({describe(cell)}) as pid {proc.pid}")
        time.sleep(0.2)
        for cell_id, (proc, cell, log) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            log.close()
            del running[cell_id]
            done_count += 1
            row = db.get(grid.name, cell_id)
            if row is not None and row.status == "running" and row.pid == proc.pid:
                # a worker killed by a signal (e.g. the out-of-memory killer) is "killed": the
                # next run continues the cell; any other exit is a failure
                how = f"killed by signal {-code}" if code < 0 else "failed"
                db.finish(
                    grid.name,
                    cell_id,
                    status="failed",
                    error=f"{how}: worker exited with status {code}; see "
                    f"{logs / (cell_id + '.log')}",
                )
            row = db.get(grid.name, cell_id)
            outcome = row.status if row is not None else "unknown"
            ran[cell_id] = outcome
            echo(f"[{done_count}/{len(todo)}] {cell_id}: {_outcome_line(db, grid, cell, outcome)}")
    return ran


def status_lines(grid: Grid, db_path: str | Path, quick: bool | None = None) -> list[str]:
    """Counts per status and the failures (for ``recdenoiser experiment status``)."""
    lines: list[str] = []
    with ResultsDB(db_path, create=False) as db:
        for q in (False, True) if quick is None else (quick,):
            expected = {c.cell_id for c in grid.cells(q)}
            rows = [r for r in db.rows(grid.name) if r.cell_id in expected]
            if q and not rows and quick is None:
                continue
            counts = {s: 0 for s in ("pending", "running", "done", "failed")}
            counts["pending"] += len(expected) - len(rows)  # not registered yet
            for r in rows:
                status = r.status
                if status == "running" and db.is_stale(r):
                    status = "pending"  # its process died; the next run takes it over
                counts[status] += 1
            tag = " [quick]" if q else ""
            lines.append(
                f"grid {grid.name}{tag}: {len(expected)} cells: "
                + ", ".join(f"{k} {v}" for k, v in counts.items())
            )
            for r in rows:
                label = ", ".join(f"{k}={v}" for k, v in r.labels.items())
                if r.status == "failed":
                    last = (r.error or "").strip().splitlines()[-1:] or ["?"]
                    if r.cut_short:
                        lines.append(
                            f"  CUT SHORT {r.cell_id} ({label}): {last[0]} "
                            "(the next run continues it from its last saved epoch)"
                        )
                    else:
                        lines.append(f"  FAILED  {r.cell_id} ({label}): {last[0]}")
                elif r.status == "running":
                    state = "stale, will be re-run" if db.is_stale(r) else "alive"
                    lines.append(
                        f"  running {r.cell_id} ({label}): pid {r.pid} on {r.hostname} ({state})"
                    )
    return lines
