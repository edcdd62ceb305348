"""Experiment grids: a base configuration and axes of overrides, expanded into cells.

A grid file (YAML)::

    name: noise                        # default: the file name without .yaml
    base: sasrec-ml-1m                 # packaged config name, a YAML path (relative to this
                                       # file) or an inline mapping
    set:                               # overrides applied to every cell
      train.progress: false
    axes:                              # a mapping of axes -> one cartesian product
      dataset:                         # a *bundle* axis: label -> overrides
        ml-1m: {data.dataset: ml-1m, data.max_len: 50}
        beauty: {data.dataset: beauty, data.max_len: 25}
      data.noise_ratio: [0.0, 0.1]     # a *key* axis: the axis name is the config key
      seed: [1, 2, 3]
    quick:                             # used with --quick
      set: {train.epochs: 5, eval.max_users: 500}
      axes: {seed: [1]}                # replaces those axes' values

``axes`` may instead be a list of such mappings: the grid is then the union of their products
(a cell reached from several blocks is kept once, with the labels of all of them), e.g. two
one-dimensional sweeps plus a baseline. Write floats in YAML with a dot (``1.0e-3``, not
``1e-3``, which YAML 1.1 reads as a string).

Every cell's overrides are applied in this order: ``base`` < ``set`` < ``quick.set`` < axes in
file order (a later axis wins over an earlier one for the same key). The cell id is a hash of
the base reference and the final ``key -> value`` overrides, so it does not depend on the axis
order, on labels or on later additions of defaults to :class:`~recdenoiser.config.RunConfig`.
A quick cell is a different cell from every full cell when ``quick.set`` changes its overrides;
with ``quick.axes`` alone, a quick cell *is* the full cell with the same values (one run, done
once, counted by both).

Relative paths are relative to the file that holds them, never to the current directory, so a
grid runs the same from any folder (and in the ``run-cell`` subprocesses):

* ``base: configs/sasrec.yaml`` is looked up in the grid file's folder (an absolute path, or
  a packaged config name such as ``sasrec-ml-1m``, works as written);
* ``data.dataset`` and ``data.data_dir`` written in the grid file (inline ``base``, ``set``,
  ``quick.set``, axes) are relative to the grid file's folder, and those written in a base
  YAML file to that file's folder. A registered dataset name (``ml-1m``, ``beauty``, ...) is
  always the dataset, never a path; ``~`` is expanded.

Cell ids hash the values as written, so moving the project does not orphan stored results. A
grid built by :func:`grid_from_dict` without a ``path`` has no folder: the paths of its own
mapping stay as written (relative to the current directory).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recdenoiser.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    parse_yaml,
    read_yaml,
)
from recdenoiser.errors import ConfigError

logger = logging.getLogger(__name__)

SEED_AXIS = "seed"
#: Configuration keys whose relative values are paths relative to the file that holds them.
PATH_KEYS = ("data.dataset", "data.data_dir")


@dataclass(frozen=True)
class AxisValue:
    label: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[AxisValue, ...]


@dataclass
class Cell:
    """One training run of a grid."""

    cell_id: str
    labels: dict[str, str]  # axis name -> label of this cell's value
    overrides: dict[str, Any]  # final section.key -> value
    config: RunConfig | None  # None when the overrides give an invalid configuration
    error: str | None = None  # why the configuration is invalid (the cell then fails)

    def overrides_list(self) -> list[str]:
        return [f"{k}={json.dumps(v)}" for k, v in self.overrides.items()]


@dataclass
class Grid:
    name: str
    base: str | dict[str, Any]
    base_raw: dict[str, Any]
    set: dict[str, Any]
    blocks: list[list[Axis]]
    quick_set: dict[str, Any] = field(default_factory=dict)
    quick_axes: dict[str, list[AxisValue]] = field(default_factory=dict)
    path: Path | None = None
    #: digest of a base YAML *file*'s contents (None for a packaged name or an inline mapping),
    #: part of every cell id so that editing the base file makes new cells
    base_digest: str | None = None

    @property
    def folder(self) -> Path | None:
        """The grid file's folder: what its relative paths are relative to."""
        return None if self.path is None else self.path.parent

    @property
    def axis_names(self) -> list[str]:
        names: list[str] = []
        for block in self.blocks:
            names.extend(a.name for a in block if a.name not in names)
        return names

    def cells(self, quick: bool = False) -> list[Cell]:
        """Every cell of the grid (full or quick), in a stable order, duplicates removed."""
        out: dict[str, Cell] = {}
        for block in self.blocks:
            axes = [
                Axis(a.name, tuple(self.quick_axes[a.name]))
                if quick and a.name in self.quick_axes
                else a
                for a in block
            ]
            for combo in itertools.product(*(a.values for a in axes)):
                overrides: dict[str, Any] = dict(self.set)
                if quick:
                    overrides.update(self.quick_set)
                labels: dict[str, str] = {}
                for axis, value in zip(axes, combo, strict=True):
                    labels[axis.name] = value.label
                    for key, val in value.overrides.items():
                        overrides.pop(key, None)  # keep "last writer" order for readability
                        overrides[key] = val
                cell_id = cell_hash(self.base, overrides, self.base_digest)
                if cell_id in out:  # the same run reached from another block: one cell
                    for name, label in labels.items():
                        out[cell_id].labels.setdefault(name, label)
                else:
                    config, error = self._config(overrides)
                    out[cell_id] = Cell(cell_id, labels, overrides, config, error)
        return list(out.values())

    def select(self, cells: list[Cell], only: list[str]) -> list[Cell]:
        """The cells whose labels match every ``AXIS=LABEL[,LABEL...]`` filter of ``only``.

        Filters on the same axis are alternatives (``variant=a --only variant=b`` is the same as
        ``variant=a,b``); filters on different axes must all hold. Unknown axes and labels are a
        :class:`ConfigError` that lists the valid ones, so a typo never selects nothing silently.
        """
        wanted: dict[str, set[str]] = {}
        for spec in only:
            axis, sep, raw = spec.partition("=")
            axis, value = axis.strip(), raw.strip()
            if not sep or not axis or not value:
                raise ConfigError(f"--only {spec!r}: expected AXIS=LABEL, e.g. seed=1")
            if axis not in self.axis_names:
                raise ConfigError(
                    f"--only {spec!r}: grid {self.name!r} has no axis {axis!r}; "
                    f"axes: {', '.join(self.axis_names)}"
                )
            known = {c.labels[axis] for c in cells if axis in c.labels}
            if raw in known or value in known:  # a label with spaces or commas, as written
                labels = [raw if raw in known else value]
            else:
                labels = [v.strip() for v in value.split(",")]
            unknown = [v for v in labels if v not in known]
            if unknown:
                raise ConfigError(
                    f"--only {spec!r}: axis {axis!r} has no value {unknown[0]!r}; "
                    f"values: {', '.join(sorted(known))}"
                )
            wanted.setdefault(axis, set()).update(labels)
        chosen = [
            c for c in cells if all(c.labels.get(axis) in labels for axis, labels in wanted.items())
        ]
        if not chosen:
            raise ConfigError(
                f"--only {' '.join(only)}: no cell of grid {self.name!r} has all of these labels "
                "(axes of different blocks of a union grid never meet in one cell)"
            )
        return chosen

    def cell(self, cell_id: str, quick: bool = False) -> Cell:
        for cell in self.cells(quick):
            if cell.cell_id == cell_id:
                return cell
        raise ConfigError(
            f"grid {self.name!r} has no {'quick ' if quick else ''}cell {cell_id!r}"
            + ("" if quick else " (a quick cell needs --quick)")
        )

    def _config(self, overrides: dict[str, Any]) -> tuple[RunConfig | None, str | None]:
        raw = copy.deepcopy(self.base_raw)
        for key, value in overrides.items():
            set_key(raw, key, value)  # an unknown key is an error of the whole grid
        if self.folder is not None:  # the base's own paths are already resolved
            overridden = [
                key
                for key in PATH_KEYS
                if any(key == k or key.startswith(k + ".") for k in overrides)
            ]
            _resolve_paths(raw, self.folder, overridden)
        try:
            return config_from_dict(raw, f"grid {self.name!r}"), None
        except ConfigError as exc:  # an invalid value fails only this cell
            return None, str(exc)

    def spec(self) -> dict[str, Any]:
        """What the results database keeps about the grid (enough for a report)."""
        return {
            "name": self.name,
            "path": None if self.path is None else str(self.path),
            "base": self.base,
            "axes": self.axis_names,
            "blocks": [[a.name for a in block] for block in self.blocks],
        }


def cell_hash(
    base: str | dict[str, Any], overrides: dict[str, Any], base_digest: str | None = None
) -> str:
    content: dict[str, Any] = {"base": base, "overrides": dict(sorted(overrides.items()))}
    if base_digest is not None:
        content["base_file"] = base_digest
    return _digest(content)


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``section.key`` in a raw config mapping (the key is checked like ``--set``)."""
    apply_overrides(raw, [f"{key}=null"])  # validates the key, creates the sections
    node = raw
    parts = [p for p in key.split(".") if p]
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        short = f"{value:g}"  # 0.001, 1e-05, 0 (six significant digits)...
        return short if float(short) == value else repr(value)  # ...unless that loses digits
    if isinstance(value, dict):
        return ",".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in value.items())
    return str(value)


def _axis(name: str, spec: Any, where: str) -> Axis:
    if isinstance(spec, dict):  # bundle axis: label -> overrides
        values = []
        for label, overrides in spec.items():
            if overrides is None:
                overrides = {}
            if not isinstance(overrides, dict):
                raise ConfigError(
                    f"{where}: axis {name!r}: value {label!r} must map to overrides "
                    f"(section.key: value), got {overrides!r}"
                )
            values.append(AxisValue(str(label), dict(overrides)))
        if not values:
            raise ConfigError(f"{where}: axis {name!r} has no values")
        return Axis(name, tuple(values))
    if isinstance(spec, list):
        values = []
        for item in spec:
            if isinstance(item, dict):
                values.append(AxisValue(_label(item), dict(item)))
            else:
                values.append(AxisValue(_label(item), {name: item}))
        if not values:
            raise ConfigError(f"{where}: axis {name!r} has no values")
        _check_labels(name, values, where)
        return Axis(name, tuple(values))
    raise ConfigError(
        f"{where}: axis {name!r} must be a list of values or a mapping label -> overrides"
    )


def _check_labels(name: str, values: list[AxisValue], where: str) -> None:
    """Two values of one axis with the same label (``1`` and ``"1"``) could not be told apart
    in ``status``, ``--only`` or the report."""
    seen: set[str] = set()
    for value in values:
        if value.label in seen:
            raise ConfigError(
                f"{where}: axis {name!r} has two values labelled {value.label!r}; "
                "give them distinct values or use a mapping label -> overrides"
            )
        seen.add(value.label)


def _mapping(value: Any, what: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {what} must be a mapping, got {type(value).__name__}")
    return value


def _resolve_path(value: Any, folder: Path, key: str) -> Any:
    """``value`` made absolute against ``folder`` when it is a relative path (see the module)."""
    if not isinstance(value, str) or not value.strip():
        return value  # not a path: left to the configuration's validation
    if key == "data.dataset":
        from recdenoiser.data.registry import DATASETS

        if value in DATASETS:
            return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (folder / path).resolve())


def _resolve_paths(raw: dict[str, Any], folder: Path, keys: tuple[str, ...] | list[str]) -> None:
    """Resolve the path ``keys`` of a raw config mapping in place (missing keys are skipped)."""
    for key in keys:
        *sections, last = key.split(".")
        node: Any = raw
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = _resolve_path(node[last], folder, key)


def _digest(raw: dict[str, Any]) -> str:
    """12 hex digits of the sha1 of ``raw`` as canonical JSON (cell ids, base file contents)."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _load_base(base: Any, folder: Path | None, where: str) -> tuple[dict[str, Any], str | None]:
    """The raw base config, its relative paths resolved against the file that holds them, and
    the digest of a base file's contents as written (None unless ``base`` is a file)."""
    if isinstance(base, dict):
        raw = copy.deepcopy(base)
        if folder is not None:
            _resolve_paths(raw, folder, PATH_KEYS)
        return raw, None
    if base is None:
        return {}, None
    if not isinstance(base, str):
        raise ConfigError(f"{where}: base must be a config name, a path or a mapping")
    written = Path(base).expanduser()
    path = folder / written if folder is not None and not written.is_absolute() else written
    if path.is_file():
        raw = _mapping(read_yaml(path), "the base config", str(path))
        digest = _digest(raw)
        _resolve_paths(raw, path.parent.resolve(), PATH_KEYS)
        return raw, digest
    from importlib import resources

    packaged = resources.files("recdenoiser") / "configs" / f"{base}.yaml"
    if packaged.is_file():
        return _mapping(parse_yaml(packaged.read_text()) or {}, "the base config", base), None
    if folder is None or written.is_absolute():
        raise ConfigError(f"{where}: base {base!r} is neither a file nor a packaged config name")
    hint = ""
    if written.is_file():
        hint = (
            f"; {written.resolve()} exists, but a relative base is not looked up in the "
            "current directory: write the path relative to the grid file, or an absolute one"
        )
    raise ConfigError(
        f"{where}: base {base!r} is neither a packaged config name nor a file relative to the "
        f"grid file's folder ({path} does not exist){hint}"
    )


def grid_from_dict(
    raw: dict[str, Any], *, name: str | None = None, path: Path | None = None
) -> Grid:
    path = None if path is None else Path(path).resolve()
    where = str(path) if path is not None else "grid"
    raw = _mapping(raw, "the grid", where)
    known = {"name", "base", "set", "axes", "quick", "description"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown grid key(s) {sorted(unknown)} (valid: {', '.join(sorted(known))})"
        )
    grid_name = str(raw.get("name") or name or (path.stem if path else "grid"))
    base = raw.get("base")
    base_raw, base_digest = _load_base(base, path.parent if path else None, where)
    axes_spec = raw.get("axes")
    blocks_spec = axes_spec if isinstance(axes_spec, list) else [axes_spec or {}]
    if not blocks_spec:
        raise ConfigError(f"{where}: axes is an empty list (leave it out for a single cell)")
    blocks: list[list[Axis]] = []
    for block in blocks_spec:
        block = _mapping(block, "each entry of axes", where)
        blocks.append([_axis(str(n), spec, where) for n, spec in block.items()])
    quick = _mapping(raw.get("quick"), "quick", where)
    unknown_quick = set(quick) - {"set", "axes"}
    if unknown_quick:
        raise ConfigError(f"{where}: unknown quick key(s) {sorted(unknown_quick)} (set, axes)")
    quick_axes = {
        str(n): list(_axis(str(n), spec, where).values)
        for n, spec in _mapping(quick.get("axes"), "quick.axes", where).items()
    }
    all_axes = {a.name for block in blocks for a in block}
    for n in quick_axes:
        if n not in all_axes:
            raise ConfigError(f"{where}: quick.axes names {n!r}, which is not an axis")
    grid = Grid(
        name=grid_name,
        base=base if isinstance(base, str | dict) else {},
        base_raw=base_raw,
        set=dict(_mapping(raw.get("set"), "set", where)),
        blocks=blocks,
        quick_set=dict(_mapping(quick.get("set"), "quick.set", where)),
        quick_axes=quick_axes,
        path=path,
        base_digest=base_digest,
    )
    # fail early, before anything runs, on unknown keys (saying where they are written)
    _check_keys(grid.set, f"{where}: set")
    _check_keys(grid.quick_set, f"{where}: quick.set")
    for block in blocks:
        for axis in block:
            for value in axis.values:
                _check_keys(value.overrides, f"{where}: axis {axis.name!r}, value {value.label!r}")
    grid.cells(quick=False)
    grid.cells(quick=True)
    _warn_merged_labels(grid, where)
    return grid


def _check_keys(overrides: dict[str, Any], where: str) -> None:
    for key in overrides:
        try:
            set_key({}, str(key), None)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _warn_merged_labels(grid: Grid, where: str) -> None:
    """Two values of one axis that give the same run are one cell: say so (not an error)."""
    axes = [(a.name, a.values) for block in grid.blocks for a in block]
    axes += [(f"quick.axes {name}", tuple(values)) for name, values in grid.quick_axes.items()]
    for name, values in axes:
        seen: dict[str, str] = {}
        for value in values:
            key = json.dumps(value.overrides, sort_keys=True, default=str)
            if key in seen:
                logger.warning(
                    "%s: axis %r: values %r and %r set the same overrides (%s); they are one "
                    "cell, labelled %r",
                    where,
                    name,
                    seen[key],
                    value.label,
                    key,
                    seen[key],
                )
            else:
                seen[key] = value.label


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    return grid_from_dict(read_yaml(path, "grid"), path=path.resolve())
