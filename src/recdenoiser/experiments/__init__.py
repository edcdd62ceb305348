"""Experiment grids: run many training runs resumably into a results database, then report.

* :mod:`~recdenoiser.experiments.grid`: grid files (base config, axes, quick overrides) and cells;
* :mod:`~recdenoiser.experiments.db`: the SQLite results database (one row per cell);
* :mod:`~recdenoiser.experiments.runner`: run a grid (in-process or parallel subprocesses), one
  cell (for cluster schedulers) and the status;
* :mod:`~recdenoiser.experiments.report`: Markdown/CSV tables, figures and an HTML page.
"""

from recdenoiser.experiments.db import CellRow, ResultsDB
from recdenoiser.experiments.grid import Cell, Grid, grid_from_dict, load_grid
from recdenoiser.experiments.runner import DEFAULT_DB, execute_cell, run_grid, status_lines

__all__ = [
    "DEFAULT_DB",
    "Cell",
    "CellRow",
    "Grid",
    "ResultsDB",
    "execute_cell",
    "grid_from_dict",
    "load_grid",
    "run_grid",
    "status_lines",
]
