"""The results database: one SQLite file (WAL mode), one row per grid cell.

Every state change is one short transaction, so a process killed at any moment (``kill -9``
included) loses at most the cell it was running; finished rows are never rewritten by a later
run. A row left ``running`` by a process that no longer exists is taken over by the next runner:
the row records the host, the pid and the process start time, and liveness is checked on the
same host (a different host's running cell is left alone unless ``steal_running`` is asked).

Table ``members`` lists the cells of each grid (full or quick) as last registered. When a grid
file changes (another ``set``, fewer values), its old cells stay in ``cells`` (no result is ever
deleted) but leave the grid's current set: counts and reports cover the current cells only. A
quick and a full cell with the same overrides are one row, listed in both sets. Databases
written before ``members`` existed fall back to the rows' ``quick`` column.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from recdenoiser.errors import RecDenoiserError

STATUSES = ("pending", "running", "done", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS grids (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    grid TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    labels TEXT NOT NULL,
    overrides TEXT NOT NULL,
    config TEXT,
    quick INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    metrics TEXT,
    per_user_path TEXT,
    run_dir TEXT,
    error TEXT,
    wall_seconds REAL,
    package_version TEXT,
    torch_version TEXT,
    hostname TEXT,
    pid INTEGER,
    pid_start TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (grid, cell_id)
);
CREATE TABLE IF NOT EXISTS members (
    grid TEXT NOT NULL,
    quick INTEGER NOT NULL,
    cell_id TEXT NOT NULL,
    PRIMARY KEY (grid, quick, cell_id)
);
"""


def now() -> str:
    return datetime.now().isoformat(timespec="milliseconds")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (state, ppid, ...), or None (no such process/Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a live pid from a reused one."""
    fields = _proc_stat(pid)
    return None if fields is None else fields[19]  # field 22 of stat


def pid_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is the same running process (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    fields = _proc_stat(pid)
    if fields is None:
        return not Path("/proc/self/stat").exists()  # no /proc: trust os.kill
    if fields[0] in ("Z", "X"):  # killed, not reaped yet
        return False
    return start is None or fields[19] == start


#: how the error of an attempt that was interrupted or killed from outside begins
CUT_SHORT = ("interrupted", "killed")


@dataclass
class CellRow:
    grid: str
    cell_id: str
    labels: dict[str, str]
    overrides: dict[str, Any]
    config: dict[str, Any] | None
    quick: bool
    status: str
    metrics: dict[str, Any] | None
    per_user_path: str | None
    run_dir: str | None
    error: str | None
    wall_seconds: float | None
    package_version: str | None
    torch_version: str | None
    hostname: str | None
    pid: int | None
    attempts: int
    started_at: str | None
    finished_at: str | None

    @property
    def cut_short(self) -> bool:
        """A failed attempt that did not fail by itself: interrupted (Ctrl-C) or killed by a
        signal. Such a cell continues from its last epoch, even with ``--skip-failed``."""
        return self.status == "failed" and (self.error or "").startswith(CUT_SHORT)

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> CellRow:
        def js(v: str | None) -> Any:
            return None if v is None else json.loads(v)

        return cls(
            grid=row["grid"],
            cell_id=row["cell_id"],
            labels=js(row["labels"]) or {},
            overrides=js(row["overrides"]) or {},
            config=js(row["config"]),
            quick=bool(row["quick"]),
            status=row["status"],
            metrics=js(row["metrics"]),
            per_user_path=row["per_user_path"],
            run_dir=row["run_dir"],
            error=row["error"],
            wall_seconds=row["wall_seconds"],
            package_version=row["package_version"],
            torch_version=row["torch_version"],
            hostname=row["hostname"],
            pid=row["pid"],
            attempts=row["attempts"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )


class ResultsDB:
    """A connection to the results database (create it if needed)."""

    def __init__(self, path: str | Path, *, create: bool = True):
        """Open (``create``: or create) the database at ``path``.

        Raises:
            RecDenoiserError: ``path`` is a folder or not a SQLite file, or (``create=False``)
                does not exist or holds no results tables.
        """
        self.path = Path(path)
        if self.path.is_dir():
            raise RecDenoiserError(f"{self.path} is a folder, not a results database file")
        if not create and not self.path.is_file():
            raise RecDenoiserError(f"results database not found: {self.path}")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if not create:
                tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
                if "cells" not in tables:
                    self.conn.close()
                    raise RecDenoiserError(
                        f"{self.path} is not a recdenoiser results database (no cells table)"
                    )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=60000")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RecDenoiserError(
                f"{self.path} is not a usable results database (SQLite: {exc})"
            ) from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------------- grids
    def save_grid(self, spec: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO grids(name, spec, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) "
                "DO UPDATE SET spec=excluded.spec, updated_at=excluded.updated_at",
                (spec["name"], json.dumps(spec), now()),
            )

    def grid_spec(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT spec FROM grids WHERE name=?", (name,)).fetchone()
        return None if row is None else json.loads(row["spec"])

    def grid_names(self) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT grid FROM cells ORDER BY grid").fetchall()
        return [r["grid"] for r in rows]

    # ------------------------------------------------------------------------- cells
    def add_cell(
        self,
        grid: str,
        cell_id: str,
        labels: dict[str, str],
        overrides: dict[str, Any],
        config: dict[str, Any] | None,
        quick: bool,
    ) -> None:
        """Insert a pending row; an existing row (any status) is left as it is."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO cells(grid, cell_id, labels, overrides, config, quick) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    grid,
                    cell_id,
                    json.dumps(labels),
                    json.dumps(overrides),
                    None if config is None else json.dumps(config),
                    int(quick),
                ),
            )

    def get(self, grid: str, cell_id: str) -> CellRow | None:
        row = self.conn.execute(
            "SELECT * FROM cells WHERE grid=? AND cell_id=?", (grid, cell_id)
        ).fetchone()
        return None if row is None else CellRow.from_sql(row)

    def set_members(self, grid: str, quick: bool, cell_ids: list[str]) -> None:
        """Make ``cell_ids`` the grid's current cells (full or quick); rows are kept."""
        with self.transaction() as c:
            c.execute("DELETE FROM members WHERE grid=? AND quick=?", (grid, int(quick)))
            c.executemany(
                "INSERT OR IGNORE INTO members(grid, quick, cell_id) VALUES (?, ?, ?)",
                [(grid, int(quick), cell_id) for cell_id in cell_ids],
            )

    def has_members(self, grid: str, quick: bool) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM members WHERE grid=? AND quick=? LIMIT 1", (grid, int(quick))
        ).fetchone()
        return row is not None

    def current_rows(self, grid: str, quick: bool) -> list[CellRow]:
        """The rows of the grid's current cells (see the module docstring), registration order."""
        if not self.has_members(grid, quick):
            return self.rows(grid, quick)  # a database from before ``members``
        raw = self.conn.execute(
            "SELECT cells.* FROM cells JOIN members ON members.grid = cells.grid "
            "AND members.cell_id = cells.cell_id WHERE members.grid=? AND members.quick=? "
            "ORDER BY cells.rowid",
            (grid, int(quick)),
        ).fetchall()
        out = [CellRow.from_sql(r) for r in raw]
        for row in out:
            row.quick = quick  # a cell shared by the quick and the full grid
        return out

    def outdated(self, grid: str, quick: bool) -> int:
        """Stored rows of the grid that are no longer among its current cells."""
        if not self.has_members(grid, quick):
            return 0
        row = self.conn.execute(
            "SELECT COUNT(*) FROM cells WHERE grid=? AND quick=? AND cell_id NOT IN "
            "(SELECT cell_id FROM members WHERE grid=? AND quick=?)",
            (grid, int(quick), grid, int(quick)),
        ).fetchone()
        return int(row[0])

    def rows(self, grid: str | None = None, quick: bool | None = None) -> list[CellRow]:
        """Every stored row (filtered by grid and the ``quick`` flag it was registered with)."""
        sql = "SELECT * FROM cells WHERE 1=1"
        args: list[Any] = []
        if grid is not None:
            sql += " AND grid=?"
            args.append(grid)
        if quick is not None:
            sql += " AND quick=?"
            args.append(int(quick))
        sql += " ORDER BY grid, rowid"
        return [CellRow.from_sql(r) for r in self.conn.execute(sql, args).fetchall()]

    def counts(self, grid: str, quick: bool) -> dict[str, int]:
        """Rows per status among the grid's current cells."""
        out = dict.fromkeys(STATUSES, 0)
        for row in self.current_rows(grid, quick):
            out[row.status] = out.get(row.status, 0) + 1
        return out

    def is_stale(self, row: CellRow) -> bool:
        """A ``running`` row whose process is gone (on this host)."""
        if row.status != "running":
            return False
        if row.hostname != socket.gethostname() or row.pid is None:
            return False
        start = self.conn.execute(
            "SELECT pid_start FROM cells WHERE grid=? AND cell_id=?", (row.grid, row.cell_id)
        ).fetchone()["pid_start"]
        return not pid_alive(row.pid, start)

    def claim(
        self,
        grid: str,
        cell_id: str,
        *,
        retry_failed: bool = True,
        steal_running: bool = False,
        force: bool = False,
    ) -> tuple[bool, str]:
        """Mark the cell running for this process; ``(False, reason)`` when it must not run."""
        pid = os.getpid()
        with self.transaction() as c:
            raw = c.execute(
                "SELECT * FROM cells WHERE grid=? AND cell_id=?", (grid, cell_id)
            ).fetchone()
            if raw is None:
                return False, "unknown cell"
            row = CellRow.from_sql(raw)
            if not force:
                if row.status == "done":
                    return False, "done"
                if row.status == "failed" and not retry_failed and not row.cut_short:
                    return False, "failed"
                if row.status == "running" and not steal_running:
                    alive = row.hostname != socket.gethostname() or (
                        row.pid is not None and pid_alive(row.pid, raw["pid_start"])
                    )
                    if alive and row.pid != pid:
                        return False, f"running (pid {row.pid} on {row.hostname})"
            c.execute(
                "UPDATE cells SET status='running', hostname=?, pid=?, pid_start=?, "
                "attempts=attempts+1, started_at=?, finished_at=NULL, error=NULL "
                "WHERE grid=? AND cell_id=?",
                (socket.gethostname(), pid, process_start(pid), now(), grid, cell_id),
            )
        return True, "claimed"

    def finish(
        self,
        grid: str,
        cell_id: str,
        *,
        status: str,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        per_user_path: str | None = None,
        run_dir: str | None = None,
        error: str | None = None,
        wall_seconds: float | None = None,
        package_version: str | None = None,
        torch_version: str | None = None,
    ) -> None:
        if status not in ("done", "failed"):
            raise ValueError(f"finish() takes done or failed, not {status!r}")
        with self.transaction() as c:
            c.execute(
                "UPDATE cells SET status=?, config=COALESCE(?, config), metrics=?, "
                "per_user_path=?, run_dir=?, error=?, wall_seconds=?, package_version=?, "
                "torch_version=?, finished_at=? WHERE grid=? AND cell_id=?",
                (
                    status,
                    None if config is None else json.dumps(config),
                    None if metrics is None else json.dumps(metrics),
                    per_user_path,
                    run_dir,
                    error,
                    wall_seconds,
                    package_version,
                    torch_version,
                    now(),
                    grid,
                    cell_id,
                ),
            )
