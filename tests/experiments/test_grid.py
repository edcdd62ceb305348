"""Grid files: cartesian products, unions of blocks, stable cell ids, quick variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recdenoiser.errors import ConfigError
from recdenoiser.experiments.grid import grid_from_dict, load_grid

ROOT = Path(__file__).resolve().parents[2]

BASE = {"data": {"dataset": "planted.txt", "format": "user-item", "max_len": 10}}


def test_cartesian_product_labels_and_overrides() -> None:
    grid = grid_from_dict(
        {
            "name": "g",
            "base": BASE,
            "set": {"train.epochs": 3},
            "axes": {
                "data.noise_ratio": [0.0, 0.1, 0.2],
                "variant": {
                    "sasrec": {"denoiser.enabled": False},
                    "arm": {"denoiser.enabled": True, "denoiser.estimator": "arm"},
                },
                "seed": [1, 2],
            },
        }
    )
    cells = grid.cells()
    assert len(cells) == 3 * 2 * 2
    assert len({c.cell_id for c in cells}) == 12
    first = cells[0]
    assert first.labels == {"data.noise_ratio": "0", "variant": "sasrec", "seed": "1"}
    assert first.overrides == {
        "train.epochs": 3,
        "data.noise_ratio": 0.0,
        "denoiser.enabled": False,
        "seed": 1,
    }
    assert first.config is not None and first.config.train.epochs == 3
    arm = next(c for c in cells if c.labels["variant"] == "arm")
    assert arm.config is not None and arm.config.denoiser.enabled
    assert arm.config.data.dataset == "planted.txt"  # the base is kept
    assert grid.axis_names == ["data.noise_ratio", "variant", "seed"]


def test_cell_ids_are_stable_and_independent_of_axis_order() -> None:
    a = grid_from_dict(
        {"base": "sasrec-ml-1m", "axes": {"seed": [1, 2], "denoiser.beta": [0.1, 0.01]}}
    )
    b = grid_from_dict(
        {"base": "sasrec-ml-1m", "axes": {"denoiser.beta": [0.01, 0.1], "seed": [2, 1]}}
    )
    assert {c.cell_id for c in a.cells()} == {c.cell_id for c in b.cells()}
    assert [c.cell_id for c in a.cells()] == [c.cell_id for c in a.cells()]
    # the id is a hash of base + overrides: pinned so that a change is noticed (it would orphan
    # every stored result)
    ids = {(c.labels["seed"], c.labels["denoiser.beta"]): c.cell_id for c in a.cells()}
    assert ids[("1", "0.1")] == _expected_id("sasrec-ml-1m", {"seed": 1, "denoiser.beta": 0.1})
    assert len(ids[("1", "0.1")]) == 12


def _expected_id(base: str, overrides: dict) -> str:
    import hashlib
    import json

    text = json.dumps(
        {"base": base, "overrides": dict(sorted(overrides.items()))},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def test_quick_overrides_and_axes() -> None:
    grid = grid_from_dict(
        {
            "base": BASE,
            "axes": {"data.max_len": [20, 40, 80], "seed": [1, 2, 3]},
            "quick": {"set": {"train.epochs": 2, "eval.max_users": 50}, "axes": {"seed": [1]}},
        }
    )
    full, quick = grid.cells(), grid.cells(quick=True)
    assert len(full) == 9 and len(quick) == 3
    for cell in quick:
        assert cell.config is not None
        assert cell.config.train.epochs == 2 and cell.config.eval.max_users == 50
        assert cell.config.seed == 1
    assert not {c.cell_id for c in full} & {c.cell_id for c in quick}
    with pytest.raises(ConfigError, match="quick cell needs --quick"):
        grid.cell(quick[0].cell_id)
    assert grid.cell(quick[0].cell_id, quick=True).cell_id == quick[0].cell_id


def test_union_of_blocks_shares_cells_and_merges_labels() -> None:
    grid = grid_from_dict(
        {
            "base": BASE,
            "set": {"denoiser.beta": 0.01, "denoiser.gamma": 0.01},
            "axes": [
                {"denoiser.beta": [0.1, 0.01]},
                {"denoiser.gamma": [0.1, 0.01]},
            ],
        }
    )
    cells = grid.cells()
    assert len(cells) == 3  # beta=gamma=0.01 is one run
    shared = [c for c in cells if c.labels == {"denoiser.beta": "0.01", "denoiser.gamma": "0.01"}]
    assert len(shared) == 1


def test_select_slices_and_refuses_filters_that_match_nothing() -> None:
    grid = grid_from_dict(
        {
            "base": BASE,
            "axes": [
                {"denoiser.beta": [0.1, 1.0e-3, 0.0010000001], "seed": [1, 2]},
                {"denoiser.gamma": [0.1], "variant": {" spaced ": {}, "a,b": {"seed": 3}}},
            ],
        }
    )
    cells = grid.cells()
    # a float label keeps every digit when the short form would merge two values
    assert {c.labels.get("denoiser.beta") for c in cells} >= {"0.001", "0.0010000001"}
    picked = grid.select(cells, ["denoiser.beta=0.001", "seed=1,2"])
    assert [c.labels["seed"] for c in picked] == ["1", "2"]
    assert all(c.overrides["denoiser.beta"] == 1.0e-3 for c in picked)
    # labels with spaces or commas are matched as written
    assert len(grid.select(cells, ["variant= spaced "])) == 1
    assert grid.select(cells, ["variant=a,b"])[0].overrides["seed"] == 3
    with pytest.raises(ConfigError, match=r"no cell of grid .* has all of these labels"):
        grid.select(cells, ["denoiser.beta=0.1", "denoiser.gamma=0.1"])  # different blocks


def test_two_values_with_one_label_are_refused() -> None:
    with pytest.raises(ConfigError, match="axis 'seed' has two values labelled '1'"):
        grid_from_dict({"base": BASE, "axes": {"seed": [1, "1"]}})


def test_errors_unknown_key_and_invalid_value() -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key 'model\.nope'"):
        grid_from_dict({"base": BASE, "axes": {"model.nope": [1]}})
    with pytest.raises(ConfigError, match="unknown grid key"):
        grid_from_dict({"base": BASE, "axis": {}})
    with pytest.raises(ConfigError, match="not an axis"):
        grid_from_dict({"base": BASE, "axes": {"seed": [1]}, "quick": {"axes": {"x": [1]}}})
    # an invalid value fails only its cell (recorded as failed when the grid runs)
    grid = grid_from_dict({"base": BASE, "axes": {"model.hidden_size": [8, -1]}})
    good, bad = grid.cells()
    assert good.config is not None and good.error is None
    assert bad.config is None and bad.error is not None and "hidden_size" in bad.error


@pytest.mark.parametrize(
    "path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.stem
)
def test_ready_grids_load(path: Path) -> None:
    grid = load_grid(path)
    full, quick = grid.cells(), grid.cells(quick=True)
    assert 0 < len(quick) < len(full)
    assert all(c.config is not None for c in full + quick), [c.error for c in full if c.error]
    for cell in quick:
        assert cell.config is not None and cell.config.eval.max_users is not None


# --------------------------------------------------------------- paths relative to the grid
def _grid_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project" / "grids"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "small.txt").write_text("1 1\n")
    return folder


def test_relative_dataset_is_relative_to_the_grid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _grid_dir(tmp_path)
    raw = {
        "name": "paths",
        "base": {"data": {"dataset": "data/small.txt", "format": "user-item", "max_len": 10}},
        "axes": {
            "dataset": {
                "base": {},
                "other": {"data.dataset": "../other.txt", "data.data_dir": "cache"},
                "named": {"data.dataset": "ml-1m"},
            }
        },
    }
    (folder / "paths.yaml").write_text(yaml.safe_dump(raw))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cells = {c.labels["dataset"]: c for c in load_grid("../project/grids/paths.yaml").cells()}
    data = {}
    for label, cell in cells.items():
        assert cell.config is not None, cell.error
        data[label] = cell.config.data
    assert data["base"].dataset == str(folder / "data" / "small.txt")
    assert data["other"].dataset == str(tmp_path / "project" / "other.txt")
    assert data["other"].data_dir == str(folder / "cache")
    assert data["named"].dataset == "ml-1m"  # a registry name stays a name
    # the cell ids hash the overrides as written: moving the project keeps them
    in_memory = grid_from_dict(raw).cells()
    assert {label: c.cell_id for label, c in cells.items()} == {
        c.labels["dataset"]: c.cell_id for c in in_memory
    }
    # without a file, paths stay as written (relative to the current directory)
    config = in_memory[0].config
    assert config is not None and config.data.dataset == "data/small.txt"


def test_relative_base_is_relative_to_the_grid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _grid_dir(tmp_path)
    (folder / "configs").mkdir()
    base = {"data": {"dataset": "../data/small.txt", "format": "user-item"}, "seed": 3}
    (folder / "configs" / "base.yaml").write_text(yaml.safe_dump(base))
    grid_file = folder / "g.yaml"
    grid_file.write_text(yaml.safe_dump({"base": "configs/base.yaml", "axes": {"seed": [1]}}))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "configs").mkdir(parents=True)
    (elsewhere / "configs" / "base.yaml").write_text(yaml.safe_dump({"seed": 99}))
    monkeypatch.chdir(elsewhere)
    config = load_grid(grid_file).cells()[0].config
    assert config is not None
    # the base file of the grid's folder, not the one of the current directory; a relative
    # path inside the base file is relative to the base file
    assert config.data.format == "user-item"
    assert config.data.dataset == str(folder / "data" / "small.txt")
    # a base that exists only relative to the current directory is an error that says so
    (folder / "configs" / "base.yaml").unlink()
    with pytest.raises(ConfigError, match=r"base 'configs/base\.yaml' .*relative to the grid"):
        load_grid(grid_file)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"axes": {"model.hiden_size": [8]}}, ["axis 'model.hiden_size'", "hidden_size"]),
        ({"axes": {"variant": {"a": {"model.nope": 1}}}}, ["axis 'variant', value 'a'", "nope"]),
        ({"axes": {"seed": [1]}, "quick": {"set": {"train.nope": 1}}}, ["quick.set", "nope"]),
        ({"set": {"train.nope": 1}}, [": set: ", "nope"]),
        ({"axes": {"seed": [1], "variant": {}}}, ["axis 'variant' has no values"]),
        ({"axes": []}, ["axes is an empty list"]),
    ],
)
def test_grid_mistakes_name_the_file_and_the_place(
    tmp_path: Path, spec: dict[str, Any], fragments: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "base": "sasrec-ml-1m", **spec}))
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_an_axis_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "base: sasrec-ml-1m\naxes:\n  seed: [1, 2]\n  model.num_blocks: [1]\n  seed: [3]\n"
    )
    with pytest.raises(
        ConfigError, match=r"line 5, column 3: duplicate key 'seed' \(first at line 3\)"
    ):
        load_grid(path)


def test_same_overrides_under_two_labels_are_one_cell_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = {"base": "sasrec-ml-1m", "axes": {"variant": {"a": {"seed": 1}, "b": {"seed": 1}}}}
    with caplog.at_level("WARNING"):
        grid = grid_from_dict(spec, name="dup")
    assert len(grid.cells()) == 1
    assert any("'a' and 'b' set the same overrides" in r.getMessage() for r in caplog.records)


def test_editing_a_base_file_makes_new_cells(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model": {"hidden_size": 8}}))
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "base": "base.yaml", "axes": {"seed": [1]}}))
    before = load_grid(path).cells()[0].cell_id
    assert load_grid(path).cells()[0].cell_id == before  # stable while the file is unchanged
    base.write_text(yaml.safe_dump({"model": {"hidden_size": 16}}))
    after = load_grid(path).cells()[0]
    assert after.cell_id != before
    assert after.config is not None and after.config.model.hidden_size == 16
