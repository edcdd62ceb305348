"""Run configuration: defaults, unknown keys, bad values, YAML round trip, resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recdenoiser.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    config_from_dict,
    dump_config,
    load_config,
    read_yaml,
    resolve,
)
from recdenoiser.errors import ConfigError


def write_yaml(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults() -> None:
    cfg = RunConfig()
    assert cfg.model.name == "sasrec"
    assert (cfg.model.hidden_size, cfg.model.num_blocks, cfg.model.num_heads) == (50, 2, 1)
    assert cfg.model.loss == "bce" and cfg.model.num_negatives == 1
    assert cfg.model.dropout == "auto" and cfg.data.max_len == "auto"
    assert cfg.denoiser.enabled is False
    assert cfg.train.monitor == "ndcg@10"
    assert cfg.eval.protocol == "sampled" and cfg.eval.num_negatives == 100
    assert cfg.eval.ks == [1, 5, 10, 20]
    assert load_config() == cfg


def test_overrides_parse_yaml_scalars(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"model": {"hidden_size": 32}, "train": {"epochs": 3}})
    cfg = load_config(
        path,
        [
            "model.num_blocks=1",
            "train.betas=[0.8, 0.9]",
            "train.patience=",
            "denoiser.enabled=true",
            "eval.ks=[10, 5, 5]",
            "name=abc",
        ],
    )
    assert cfg.model.hidden_size == 32 and cfg.train.epochs == 3
    assert cfg.model.num_blocks == 1
    assert cfg.train.betas == (0.8, 0.9)
    assert cfg.train.patience is None
    assert cfg.denoiser.enabled is True
    assert cfg.eval.ks == [5, 10]
    assert cfg.name == "abc"


def test_unknown_key_in_yaml_lists_valid_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"model": {"hiden_size": 16}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "model.hiden_size" in msg
    assert str(path) in msg
    for key in ModelConfig.model_fields:
        assert key in msg


def test_unknown_section_in_yaml_lists_valid_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"modle": {"hidden_size": 16}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "modle" in msg
    for key in RunConfig.model_fields:
        assert key in msg


def test_unknown_key_in_override_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.maxlen=5"])
    msg = str(info.value)
    assert "data.maxlen" in msg
    for key in DataConfig.model_fields:
        assert key in msg


def test_unknown_top_level_key_in_override_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["sead=3"])
    for key in RunConfig.model_fields:
        assert key in str(info.value)


def test_unknown_section_in_override_lists_valid_keys() -> None:
    """``--set modle.hidden_size=16``: the misspelt section should be named with the choices.

    A misspelt section in YAML lists the valid top-level keys; the same mistake on the command
    line gives no hint at all (config.apply_overrides only lists keys when the parent section
    exists).
    """
    with pytest.raises(ConfigError) as info:
        load_config(None, ["modle.hidden_size=16"])
    msg = str(info.value)
    assert "modle" in msg
    for key in ("data", "model", "denoiser", "train", "eval"):
        assert key in msg, msg


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=0", "train.epochs"),
        ("model.norm=middle", "model.norm"),
        ("model.dropout=lots", "model.dropout"),
        ("data.noise_ratio=0.9", "data.noise_ratio"),
        ("eval.ks=[0, 5]", "eval.ks"),
        ("model.hidden_size=[1, 2]", "model.hidden_size"),
        ("denoiser.estimator=reinforce", "denoiser.estimator"),
    ],
)
def test_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_malformed_overrides() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config(None, ["model.hidden_size"])
    with pytest.raises(ConfigError, match="empty key"):
        load_config(None, ["=3"])
    with pytest.raises(ConfigError, match="cannot parse") as err:
        load_config(None, ["model.name=[unclosed"])
    with pytest.raises(ConfigError, match="cannot parse") as err:
        load_config(None, ["data.columns={user: uid"])
    assert "\n" not in str(err.value)  # one line, not PyYAML's multi-line report


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = write_yaml(tmp_path, [1, 2], "list.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)
    with pytest.raises(ConfigError):
        config_from_dict({"model": 5})
    # with --set too: the file's shape is the error, not a crash inside the override
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("hello\n")
    for path in (listing, scalar):
        with pytest.raises(ConfigError, match=f"{path.name}: expected a mapping"):
            load_config(path, ["train.epochs=2"])
    # a key written twice is refused with both lines, not resolved silently to the last one
    twice = tmp_path / "twice.yaml"
    twice.write_text("model:\n  hidden_size: 50\ntrain:\n  epochs: 3\nmodel:\n  num_blocks: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(twice)
    assert str(info.value) == (
        f"{twice}: not valid YAML (line 5, column 1: duplicate key 'model' (first at line 1))"
    )
    inner = tmp_path / "inner.yaml"
    inner.write_text("train: {epochs: 3, lr: 0.1, epochs: 4}\n")
    with pytest.raises(ConfigError, match="line 1, column 29: duplicate key 'epochs'"):
        load_config(inner)
    # merge keys may override what they merge, also when the result is merged again
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        "common: &c {dropout: 0.2, num_blocks: 1}\nstrong: &s\n  <<: *c\n  dropout: 0.5\n"
        "model:\n  <<: *s\n  num_heads: 1\n"
    )
    assert read_yaml(merged)["model"] == {"dropout": 0.5, "num_blocks": 1, "num_heads": 1}
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b'seed: 1\ndata: {dataset: "\xff\xfe"}\n')
    with pytest.raises(ConfigError, match=r"not a UTF-8 text file \(byte 0xff on line 2\)"):
        load_config(binary)
    section = write_yaml(tmp_path, {"train": [1, 2]}, "section.yaml")
    with pytest.raises(ConfigError, match="'train' in the config file is not a section"):
        load_config(section, ["train.epochs=2"])


@pytest.mark.parametrize("value", ["inf", "-.inf", ".nan", "1e999"])
@pytest.mark.parametrize("key", ["denoiser.beta", "denoiser.gamma", "train.lr"])
def test_non_finite_numbers_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"--set {key.replace('.', '[.]')}: .*finite"):
        load_config(None, [f"{key}={value}"])


def test_errors_say_whether_the_file_or_set_holds_the_bad_value(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"train": {"epochs": 0}}, "run.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["denoiser.beta=-1"])
    message = str(info.value)
    assert f"in {path}" in message  # train.epochs is the file's
    assert "train.epochs: " in message and "--set denoiser.beta: " in message
    good = write_yaml(tmp_path, {"train": {"epochs": 3}}, "good.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(good, ["denoiser.beta=-1"])
    assert str(info.value).startswith("invalid configuration: --set denoiser.beta: ")
    assert str(good) not in str(info.value)


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            "seed=3",
            "data.max_len=20",
            "data.dataset=some/file.txt",
            "model.dropout=0.25",
            "model.loss=sampled_softmax",
            "model.num_negatives=8",
            "denoiser.enabled=true",
            "denoiser.mask_kind=input_dependent",
            "train.betas=[0.8, 0.99]",
            "train.grad_clip=1.5",
            "eval.ks=[3, 7]",
            "train.monitor=ndcg@7",
        ],
    )
    text = dump_config(cfg)
    path = tmp_path / "round.yaml"
    path.write_text(text)
    again = load_config(path)
    assert again == cfg
    assert dump_config(again) == text
    assert config_from_dict(cfg.model_dump(mode="json")) == cfg


def test_resolve_fills_auto_values() -> None:
    cfg = RunConfig()
    out = resolve(cfg, dataset_max_len=50, dataset_dropout=0.5)
    assert out.data.max_len == 50
    assert out.model.dropout == 0.5
    assert cfg.data.max_len == "auto"  # the input is not modified
    explicit = load_config(None, ["data.max_len=7", "model.dropout=0.1"])
    out = resolve(explicit, dataset_max_len=50, dataset_dropout=0.5)
    assert (out.data.max_len, out.model.dropout) == (7, 0.1)


def test_heads_not_dividing_hidden_are_refused_at_build_time() -> None:
    """Only self-attentive models have heads (see test_baselines for the others)."""
    from recdenoiser.training.build import check_model

    cfg = load_config(None, ["model.hidden_size=10", "model.num_heads=3"])
    out = resolve(cfg, dataset_max_len=50, dataset_dropout=0.5)
    with pytest.raises(ConfigError, match=r"hidden_size \(10\).*num_heads \(3\)"):
        check_model(out)
    check_model(
        load_config(None, ["model.name=gru4rec", "model.hidden_size=10", "model.num_heads=3"])
    )


def test_assignment_is_validated() -> None:
    cfg = RunConfig()
    with pytest.raises(ValueError):
        cfg.model.norm = "middle"  # type: ignore[assignment]
