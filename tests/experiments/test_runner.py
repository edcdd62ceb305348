"""Running grids: failures recorded per cell, resume after kill -9, parallel workers, the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recdenoiser.cli.main import main
from recdenoiser.experiments import ResultsDB, load_grid, run_grid, status_lines
from tests.experiments.conftest import tiny_base, write_grid

ROOT = Path(__file__).resolve().parents[2]


def test_failing_cell_is_recorded_and_the_others_run(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml",
        {
            "name": "withfail",
            "base": tiny_base(small_data),
            # 8 is not divisible by 3 heads: ConfigError raised inside train(); -0.5 dropout
            # passes the config schema and fails when the model is built
            "axes": {"model.num_heads": [1, 3, 2], "model.dropout": [0.1, -0.5]},
        },
    )
    db = tmp_path / "r.sqlite"
    summary = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert summary.counts == {"pending": 0, "running": 0, "done": 2, "failed": 4}
    with ResultsDB(db) as conn:
        rows = {(r.labels["model.num_heads"], r.labels["model.dropout"]): r for r in conn.rows()}
    assert rows[("3", "0.1")].status == "failed"
    assert "divisible" in (rows[("3", "0.1")].error or "")
    assert rows[("1", "-0.5")].status == "failed" and rows[("1", "-0.5")].error
    for key in (("1", "0.1"), ("2", "0.1")):
        assert rows[key].status == "done" and rows[key].metrics and rows[key].error is None
        assert Path(rows[key].per_user_path or "", "test_sampled.csv").exists()
    # re-running retries the failed cells only; the done cells keep their single attempt
    again = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert set(again.ran.values()) == {"failed"} and len(again.ran) == 4
    with ResultsDB(db) as conn:
        done = [r for r in conn.rows() if r.status == "done"]
    assert [r.attempts for r in done] == [1, 1]
    # the status command lists the failures (exit 0); `experiment run` exits 1
    assert main(["-q", "experiment", "status", str(grid_file), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "done 2, failed 4" in out and "FAILED" in out and "divisible" in out


def _db_states(db: Path) -> dict[str, tuple[str, str | None]]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT cell_id, status, finished_at FROM cells").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return {}
    return {cell: (status, finished) for cell, status, finished in rows}


def test_resume_after_kill_9(tmp_path: Path, small_data: Path) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml",
        {"name": "killme", "base": tiny_base(small_data, epochs=3), "axes": {"seed": [1, 2, 3]}},
    )
    db = tmp_path / "db" / "results.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recdenoiser.cli",
            "-q",
            "experiment",
            "run",
            str(grid_file),
            "--db",
            str(db),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    killed_states: dict[str, tuple[str, str | None]] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            states = _db_states(db)
            statuses = [s for s, _ in states.values()]
            if "done" in statuses and "running" in statuses:
                os.kill(proc.pid, signal.SIGKILL)
                killed_states = states
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and not killed_states:
            proc.kill()
        proc.wait()
    assert killed_states, "the grid finished before it could be killed while a cell was running"
    assert proc.returncode == -signal.SIGKILL
    finished_before = {c: f for c, (s, f) in killed_states.items() if s == "done"}
    interrupted = [c for c, (s, _) in killed_states.items() if s == "running"]
    assert len(interrupted) == 1
    # the database still says running: the status command sees its process is gone
    lines = "\n".join(status_lines(load_grid(grid_file), db))
    assert "stale, will be re-run" in lines
    summary = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert summary.counts["done"] == 3 and summary.counts["failed"] == 0
    assert interrupted[0] in summary.ran
    assert not set(finished_before) & set(summary.ran)  # finished cells were not recomputed
    with ResultsDB(db) as conn:
        rows = {r.cell_id: r for r in conn.rows()}
    for cell, finished in finished_before.items():
        assert rows[cell].finished_at == finished and rows[cell].attempts == 1
    assert rows[interrupted[0]].attempts == 2
    assert all(r.status == "done" and r.metrics for r in rows.values())
    run_dirs = sorted(p.name for p in (db.parent / "killme").iterdir())
    assert run_dirs == sorted(rows)


def test_parallel_workers_and_run_cell(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml",
        {
            "name": "par",
            "base": tiny_base(small_data),
            "axes": {"seed": [1, 2]},
            "quick": {"set": {"eval.max_users": 30}, "axes": {"seed": [3]}},
        },
    )
    db = tmp_path / "r.sqlite"
    summary = run_grid(load_grid(grid_file), db, workers=2, echo=lambda _: None)
    assert summary.counts["done"] == 2
    with ResultsDB(db) as conn:
        pids = {r.pid for r in conn.rows()}
    assert os.getpid() not in pids and len(pids) == 2  # each cell ran in its own process
    # one quick cell through `run-cell`, as a scheduler would (in process here)
    quick_id = load_grid(grid_file).cells(quick=True)[0].cell_id
    argv = ["-q", "experiment", "run-cell", str(grid_file), quick_id, "--db", str(db), "--quick"]
    assert main(argv) == 0
    assert "done" in capsys.readouterr().out
    assert main(argv) == 0  # already done: skipped
    assert "skipped: done" in capsys.readouterr().out
    with ResultsDB(db) as conn:
        row = conn.get("par", quick_id)
    assert row is not None and row.quick and row.status == "done"
    assert row.metrics is not None and row.config is not None
    assert row.config["eval"]["max_users"] == 30
    assert (db.parent / "par-quick" / quick_id / "results.json").exists()


def test_run_finished_on_disk_but_not_in_the_database_is_adopted(
    tmp_path: Path, small_data: Path
) -> None:
    """Killed between the end of train() and the database update: nothing is recomputed."""
    grid_file = write_grid(
        tmp_path / "g.yaml", {"name": "adopt", "base": tiny_base(small_data), "axes": {"seed": [1]}}
    )
    db = tmp_path / "r.sqlite"
    run_grid(load_grid(grid_file), db, echo=lambda _: None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with ResultsDB(db) as conn:
        (row,) = conn.rows()
        conn.conn.execute(
            "UPDATE cells SET status='running', metrics=NULL, pid=?, pid_start=NULL", (dead.pid,)
        )
    results = Path(row.run_dir or "", "results.json")
    mtime = results.stat().st_mtime_ns
    summary = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert summary.ran == {row.cell_id: "done"}
    assert results.stat().st_mtime_ns == mtime  # not trained again
    with ResultsDB(db) as conn:
        again = conn.get("adopt", row.cell_id)
    assert again is not None and again.status == "done" and again.metrics == row.metrics
