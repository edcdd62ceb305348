"""The results database: round trip, claiming, stale cells of dead processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recdenoiser.experiments.db import ResultsDB, pid_alive, process_start


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultsDB(path) as db:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.save_grid({"name": "g", "axes": ["seed"]})
        db.add_cell("g", "abc", {"seed": "1"}, {"seed": 1}, {"seed": 1}, quick=True)
        db.add_cell("g", "abc", {"seed": "9"}, {"seed": 9}, None, quick=False)  # ignored
        assert db.claim("g", "abc") == (True, "claimed")
        metrics = {"test": {"sampled": {"hit@10": 0.5}}, "wall_seconds": 1.5}
        db.finish(
            "g",
            "abc",
            status="done",
            metrics=metrics,
            per_user_path="/x/per_user",
            run_dir="/x",
            wall_seconds=1.5,
            package_version="0.1.0",
            torch_version="2.x",
        )
    with ResultsDB(path) as db:  # a new connection reads what the first wrote
        row = db.get("g", "abc")
        assert row is not None
        assert row.status == "done" and row.quick and row.attempts == 1
        assert row.labels == {"seed": "1"} and row.overrides == {"seed": 1}
        assert row.metrics == metrics and row.config == {"seed": 1}
        assert row.per_user_path == "/x/per_user" and row.run_dir == "/x"
        assert row.wall_seconds == 1.5 and row.pid == os.getpid() and row.hostname
        assert row.package_version == "0.1.0" and row.torch_version == "2.x"
        assert row.started_at and row.finished_at and row.started_at <= row.finished_at
        assert db.grid_spec("g") == {"name": "g", "axes": ["seed"]}
        assert db.counts("g", True) == {"pending": 0, "running": 0, "done": 1, "failed": 0}
        assert db.claim("g", "abc") == (False, "done")  # finished cells are never re-run
        raw = db.conn.execute("SELECT metrics FROM cells").fetchone()[0]
        assert json.loads(raw) == metrics


def test_running_cell_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with ResultsDB(tmp_path / "r.sqlite") as db:
        db.add_cell("g", "c1", {}, {}, None, quick=False)
        assert db.claim("g", "c1")[0]
        start = process_start(os.getpid())
        assert pid_alive(os.getpid(), start)
        assert not pid_alive(os.getpid(), "not-the-start-time")  # a reused pid
        row = db.get("g", "c1")
        assert row is not None and not db.is_stale(row)
        # another live process holds it: not claimed
        db.conn.execute("UPDATE cells SET pid=?, pid_start=?", (os.getppid(), None))
        assert db.claim("g", "c1")[0] is False
        # a dead process holds it: stale, claimed again
        db.conn.execute("UPDATE cells SET pid=?, pid_start=NULL", (proc.pid,))
        row = db.get("g", "c1")
        assert row is not None and db.is_stale(row)
        assert db.claim("g", "c1") == (True, "claimed")
        row = db.get("g", "c1")
        assert row is not None and row.attempts == 2 and row.pid == os.getpid()
