"""Running grids: failures recorded per cell, resume after kill -9, parallel workers, the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def test_a_changed_grid_reports_and_counts_only_its_current_cells(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old cells stay stored but leave the counts and the report; a fixed failure is gone."""
    from recdenoiser.experiments.report import build_report

    spec = {
        "name": "evolving",
        "base": tiny_base(small_data),
        "axes": {"seed": [1, 2], "model.dropout": [0.1, -0.5]},  # -0.5 fails at build time
    }
    grid_file = write_grid(tmp_path / "g.yaml", spec)
    db = tmp_path / "r.sqlite"
    first = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert first.counts == {"pending": 0, "running": 0, "done": 2, "failed": 2}
    # drop the bad value and change a setting of every cell: four new cells, none reused
    spec["axes"] = {"seed": [1, 2], "model.dropout": [0.2]}
    write_grid(grid_file, spec)
    second = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert second.counts == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert len(second.ran) == 2
    assert main(["-q", "experiment", "run", str(grid_file), "--db", str(db)]) == 0
    with ResultsDB(db) as conn:
        assert len(conn.rows("evolving")) == 6  # nothing stored was deleted
        assert conn.outdated("evolving", False) == 4
    capsys.readouterr()
    for source, kwargs in ((db, {}), (grid_file, {"db_path": db})):
        files = build_report(source, tmp_path / f"rep-{source.suffix}", figures=False, **kwargs)
        text = files.markdown.read_text()
        assert "2 done, 0 failed, 0 pending or running" in text
        assert "4 stored cells of an earlier version" in text
        assert "Failed cells" not in text


def test_quick_and_full_grids_share_a_cell_with_the_same_overrides(
    tmp_path: Path, small_data: Path
) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml",
        {
            "name": "shared",
            "base": tiny_base(small_data),
            "axes": {"seed": [1, 2]},
            "quick": {"axes": {"seed": [1]}},
        },
    )
    db = tmp_path / "r.sqlite"
    quick = run_grid(load_grid(grid_file), db, quick=True, echo=lambda _: None)
    assert quick.counts["done"] == 1
    full = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert len(full.ran) == 1  # seed 1 is the quick run, reused
    assert full.counts == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    with ResultsDB(db) as conn:
        assert [r.labels["seed"] for r in conn.current_rows("shared", False)] == ["1", "2"]
        assert [r.labels["seed"] for r in conn.current_rows("shared", True)] == ["1"]
    lines = status_lines(load_grid(grid_file), db)
    assert lines[0] == "grid shared: 2 cells: pending 0, running 0, done 2, failed 0"
    assert lines[1] == "grid shared [quick]: 1 cells: pending 0, running 0, done 1, failed 0"


def test_database_errors_are_one_line(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml", {"name": "g", "base": tiny_base(small_data), "axes": {"seed": [1]}}
    )
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n" * 50)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    cases = [
        (["report", str(text_file)], "not a usable results database"),
        (["experiment", "status", str(grid_file), "--db", str(text_file)], "not a usable"),
        (["experiment", "run", str(grid_file), "--db", str(tmp_path)], "is a folder"),
        (["report", str(empty)], "not a recdenoiser results database"),
        (["report", str(tmp_path / "missing.sqlite")], "results database not found"),
        (["experiment", "run", str(grid_file), "--workers", "0"], "at least 1"),
    ]
    for argv, fragment in cases:
        with pytest.raises(SystemExit) if "--workers" in argv else _nullcontext():
            code = main(["-q", *argv])
            assert code == 2, argv
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err, (argv, err)
    assert empty.read_bytes() == b""  # the report did not write a schema into it
    assert not (tmp_path / "missing.sqlite").exists()


def _nullcontext() -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def test_only_runs_a_slice_and_keeps_the_whole_grid_registered(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid_file = write_grid(
        tmp_path / "g.yaml",
        {
            "name": "slice",
            "base": tiny_base(small_data),
            "axes": {
                "variant": {"a": {"model.dropout": 0.1}, "b": {"model.dropout": 0.2}},
                "seed": [1, 2],
            },
        },
    )
    db = tmp_path / "r.sqlite"
    grid = load_grid(grid_file)
    summary = run_grid(grid, db, only=["seed=2", "variant=a"], echo=lambda _: None)
    assert len(summary.ran) == 1 and summary.selected == {"done": 1}
    assert summary.counts == {"pending": 3, "running": 0, "done": 1, "failed": 0}
    with ResultsDB(db) as conn:
        done = [r.labels for r in conn.rows() if r.status == "done"]
    assert done == [{"variant": "a", "seed": "2"}]
    # alternatives on one axis, comma-separated; the finished cell is not run again
    code = main(
        ["-q", "experiment", "run", str(grid_file), "--db", str(db), "--only", "seed=1,2",
         "--only", "variant=a"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "2 selected by --only seed=1,2 variant=a, 1 finished" in out
    assert (
        status_lines(grid, db)[0] == "grid slice: 4 cells: pending 2, running 0, done 2, failed 0"
    )
    # a typo in an axis or a label is one line naming the valid ones, and runs nothing
    for only, fragment in (
        ("seeds=1", "no axis 'seeds'; axes: variant, seed"),
        ("variant=c", "axis 'variant' has no value 'c'; values: a, b"),
        ("seed", "expected AXIS=LABEL"),
    ):
        code = main(["-q", "experiment", "run", str(grid_file), "--db", str(db), "--only", only])
        err = capsys.readouterr().err
        assert code == 2 and fragment in err and "Traceback" not in err, (only, err)
    assert (
        status_lines(grid, db)[0] == "grid slice: 4 cells: pending 2, running 0, done 2, failed 0"
    )


def _killed_attempt(tmp_path: Path, small_data: Path, epochs_done: int) -> tuple[Path, Path, Any]:
    """A 3-epoch cell whose attempt died after ``epochs_done`` epochs, as kill -9 leaves it:
    the row still ``running`` under a dead pid, the run directory without results.json."""
    from recdenoiser.experiments.runner import register, run_dir_for
    from recdenoiser.training.runner import train

    grid_file = write_grid(
        tmp_path / "g.yaml",
        {"name": "cont", "base": tiny_base(small_data, epochs=3), "axes": {"seed": [1]}},
    )
    grid = load_grid(grid_file)
    db = tmp_path / "results.sqlite"
    with ResultsDB(db) as conn:
        (cell,) = register(grid, conn, False)
        assert conn.claim("cont", cell.cell_id)[0]
        conn.conn.execute("UPDATE cells SET pid=?, pid_start='gone'", (2**22 + 7,))
        conn.conn.commit()
    run_dir = run_dir_for(grid, cell, tmp_path, False)
    partial = cell.config.model_copy(deep=True)
    partial.train.epochs = epochs_done
    partial.output_dir, partial.name = str(run_dir.parent), run_dir.name
    train(partial)
    (run_dir / "results.json").unlink()
    return grid_file, db, cell


def test_a_killed_cell_continues_from_its_last_epoch(
    tmp_path: Path, small_data: Path, epoch_spy: list[int]
) -> None:
    grid_file, db, cell = _killed_attempt(tmp_path, small_data, epochs_done=2)
    epoch_spy.clear()  # the epochs of the killed attempt
    assert "stale, will be re-run" in "\n".join(status_lines(load_grid(grid_file), db))
    summary = run_grid(load_grid(grid_file), db, runs_root=tmp_path, echo=lambda _: None)
    assert summary.ran == {cell.cell_id: "done"}
    assert epoch_spy == [2]  # only the third epoch ran: epochs 1-2 came from last.ckpt
    with ResultsDB(db) as conn:
        row = conn.get("cont", cell.cell_id)
    assert row is not None and row.status == "done" and row.attempts == 2
    assert row.metrics is not None and row.metrics["epochs_run"] == 3


def test_a_failed_cell_starts_again_from_scratch(
    tmp_path: Path, small_data: Path, epoch_spy: list[int]
) -> None:
    grid_file, db, cell = _killed_attempt(tmp_path, small_data, epochs_done=2)
    epoch_spy.clear()  # the epochs of the killed attempt
    with ResultsDB(db) as conn:
        conn.finish("cont", cell.cell_id, status="failed", error="ValueError: boom")
    summary = run_grid(load_grid(grid_file), db, runs_root=tmp_path, echo=lambda _: None)
    assert summary.ran == {cell.cell_id: "done"} and epoch_spy == [0, 1, 2]


def test_a_cell_whose_worker_was_killed_continues_even_with_skip_failed(
    tmp_path: Path, small_data: Path, epoch_spy: list[int]
) -> None:
    grid_file, db, cell = _killed_attempt(tmp_path, small_data, epochs_done=2)
    epoch_spy.clear()  # the epochs of the killed attempt
    with ResultsDB(db) as conn:  # what run --workers N records for a worker killed by a signal
        conn.finish(
            "cont", cell.cell_id, status="failed", error="killed by signal 9: worker exited ..."
        )
    line = next(x for x in status_lines(load_grid(grid_file), db) if cell.cell_id in x)
    assert line.startswith("  CUT SHORT") and "continues it from its last saved epoch" in line
    summary = run_grid(
        load_grid(grid_file), db, runs_root=tmp_path, retry_failed=False, echo=lambda _: None
    )
    assert summary.ran == {cell.cell_id: "done"} and epoch_spy == [2]


def test_a_killed_cell_whose_data_changed_starts_again(
    tmp_path: Path, small_data: Path, epoch_spy: list[int]
) -> None:
    data = tmp_path / "data.txt"
    data.write_text(small_data.read_text())
    grid_file, db, cell = _killed_attempt(tmp_path, data, epochs_done=2)
    epoch_spy.clear()  # the epochs of the killed attempt
    with data.open("a") as fh:  # a new item: the saved weights no longer fit
        fh.write("".join(f"{u} 999\n" for u in range(1, 6)))
    summary = run_grid(load_grid(grid_file), db, runs_root=tmp_path, echo=lambda _: None)
    assert summary.ran == {cell.cell_id: "done"} and epoch_spy == [0, 1, 2]
    with ResultsDB(db) as conn:
        row = conn.get("cont", cell.cell_id)
    assert row is not None and row.error is None and row.metrics is not None
    assert row.metrics["epochs_run"] == 3
