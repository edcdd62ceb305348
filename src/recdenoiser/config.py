"""Typed run configuration: one pydantic model per component, unknown keys rejected.

A run is described by :class:`RunConfig` (YAML file plus ``--set section.key=value`` overrides).
Values written ``"auto"`` are filled in from the dataset registry by :func:`resolve`, so the
resolved configuration saved with every run holds only concrete values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from recdenoiser.errors import ConfigError


class _Section(BaseModel):
    # non-finite numbers are never meaningful settings (beta=inf would turn the masks into NaN)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Which interactions to load and how to preprocess them."""

    dataset: str = Field("ml-1m", description="registry name (ml-1m, games, beauty, ...) or a path")
    data_dir: str | None = Field(None, description="folder with dataset files; else env/./data")
    format: str | None = Field(None, description="reader format when `dataset` is a path")
    min_rating: float | None = None
    k_core: Annotated[StrictInt, Field(ge=0)] | Literal["auto"] = "auto"
    max_len: Annotated[StrictInt, Field(gt=0)] | Literal["auto"] = "auto"
    columns: dict[str, str | None] | None = Field(
        None, description="table format: {user: COL, item: COL, timestamp: COL, rating: COL}"
    )
    sep: str | None = Field(None, description="field separator override for text formats")
    noise_ratio: float = Field(
        0.0, ge=0.0, le=0.5, description="fraction of training items replaced"
    )
    noise_seed: StrictInt = 0
    skip_bad_lines: bool = False
    drop_duplicates: bool = False
    download: bool = False

    @field_validator("columns")
    @classmethod
    def _column_mapping(cls, columns: dict[str, str | None] | None) -> Any:
        """Unknown or missing keys of ``columns``, in one line, before any data is read."""
        if columns is not None:
            from recdenoiser.data.readers import column_mapping_problem

            problem = column_mapping_problem(columns)
            if problem is not None:
                raise ValueError(problem)
        return columns


class ModelConfig(_Section):
    """Backbone architecture and its training loss."""

    name: str = "sasrec"
    hidden_size: StrictInt = Field(50, gt=0)
    num_blocks: StrictInt = Field(2, gt=0)
    num_heads: StrictInt = Field(1, gt=0)
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] | Literal["auto"] = "auto"
    norm: Literal["pre", "post", "sasrec"] = Field(
        "pre", description="pre-/post-norm blocks, or 'sasrec': the reference code's block"
    )
    activation: Literal["relu", "gelu"] = "relu"
    loss: Literal["bce", "sampled_softmax", "softmax", "bpr", "top1"] = "bce"
    num_negatives: StrictInt = Field(
        1, gt=0, description="negatives per position (bce, sampled_softmax, bpr, top1)"
    )
    init_std: float | None = Field(
        None, gt=0.0, description="normal init std; None keeps PyTorch defaults"
    )
    fused_attention: bool = Field(True, description="use scaled_dot_product_attention when no mask")
    attention: Literal["softmax", "entmax15", "sparse_fixed"] = Field(
        "softmax",
        description="softmax; entmax15: 1.5-entmax weights; sparse_fixed: softmax over a fixed "
        "local + strided pattern (the paper's sparse-attention baselines)",
    )
    sparse_window: StrictInt = Field(
        8,
        ge=1,
        le=4096,
        description="sparse_fixed: local window, query i sees key j if |i - j| < k",
    )
    sparse_stride: StrictInt = Field(
        8, ge=1, le=4096, description="sparse_fixed: every k-th position from the newest is seen"
    )
    # backbone-specific settings; each is ignored by the models that do not use it
    mask_prob: float = Field(
        0.2, gt=0.0, le=1.0, description="bert4rec: fraction of training items masked (Cloze)"
    )
    time_span: StrictInt = Field(256, gt=0, description="tisasrec: largest time interval (clipped)")
    user_hidden_size: StrictInt | None = Field(
        None, gt=0, description="ssept: user part of hidden_size; None = half of hidden_size"
    )
    sse_prob_user: float = Field(
        0.92, ge=0.0, le=1.0, description="ssept: probability of replacing the user (training)"
    )
    sse_prob_item: float = Field(
        0.1, ge=0.0, le=1.0, description="ssept: probability of replacing an input item"
    )
    # fpmc / gru4rec / caser
    caser_window: StrictInt = Field(
        5,
        gt=0,
        description="caser: L, the number of most recent items each position convolves "
        "(at most data.max_len)",
    )
    caser_h_filters: StrictInt = Field(
        16, gt=0, description="caser: horizontal filters of each height 1..caser_window"
    )
    caser_v_filters: StrictInt = Field(4, gt=0, description="caser: vertical filters")


class DenoiserConfig(_Section):
    """Rec-Denoiser: trainable binary attention masks and Jacobian regularization."""

    enabled: bool = False
    masks: bool = Field(True, description="learn binary attention masks (ablation switch)")
    jacobian: bool = Field(True, description="Jacobian regularization (ablation switch)")
    mask_kind: Literal["positional", "input_dependent"] = "positional"
    estimator: Literal["arm", "ar"] = "arm"
    beta: float = Field(0.01, ge=0.0, description="weight of the L0 (expected mask density) term")
    gamma: float = Field(0.001, ge=0.0, description="weight of the Jacobian term")
    jacobian_projections: StrictInt = Field(1, gt=0)
    jacobian_target: Literal["block", "residual"] = Field(
        "block",
        description="penalise ||J||^2 of each block (paper) or ||J - I||^2 (what the block adds "
        "to its skip connections)",
    )
    jacobian_sample: float = Field(1.0, gt=0.0, le=1.0, description="fraction of batch used")
    jacobian_every: StrictInt = Field(
        1, ge=1, description="estimate R_J every k-th step, weighted by k (k=1: every step)"
    )
    inference_mask: Literal["soft", "binary", "expected"] = Field(
        "soft",
        description="evaluation mask: sigmoid(phi) > 0.5 kept at sigmoid(phi) (soft) or 1 "
        "(binary), the rest 0; or sigmoid(phi) everywhere (expected)",
    )
    init_keep_prob: float = Field(0.9, gt=0.0, lt=1.0)
    mask_sampling: Literal["batch", "sequence"] = Field(
        "batch", description="one mask per layer per batch (paper) or one per sequence"
    )
    rank: StrictInt = Field(8, gt=0, description="rank of the input-dependent bilinear score")
    mask_lr: float | None = Field(
        None, gt=0.0, description="learning rate of mask logits; None = train.lr"
    )


class TrainConfig(_Section):
    epochs: StrictInt = Field(200, gt=0)
    batch_size: StrictInt = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0.0)
    betas: tuple[
        Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]
    ] = (
        0.9,
        0.98,
    )
    weight_decay: float = Field(0.0, ge=0.0)
    eval_every: StrictInt = Field(10, gt=0, description="validate every k epochs")
    patience: StrictInt | None = Field(
        5, ge=1, description="validations without improvement; None = off"
    )
    monitor: str = "ndcg@10"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["32", "bf16"] = "32"
    num_threads: StrictInt | None = Field(None, ge=1, description="torch threads; None = all cores")
    progress: bool = True
    tensorboard: bool = False
    grad_clip: float | None = Field(None, gt=0.0)
    bucket_by_length: bool = Field(
        True, description="batch sequences of similar length together (much less padding work)"
    )


class EvalConfig(_Section):
    protocol: Literal["sampled", "full"] = Field("sampled", description="protocol for validation")
    num_negatives: StrictInt = Field(100, gt=0)
    ks: list[StrictInt] = Field(default_factory=lambda: [1, 5, 10, 20])
    max_users: StrictInt | None = Field(None, ge=1)
    seed: StrictInt = 2022
    exclude_history: bool = True
    batch_size: StrictInt = Field(1024, gt=0)

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if not ks or any(k <= 0 for k in ks):
            raise ValueError("ks must be a non-empty list of positive integers")
        return sorted(set(ks))


class RunConfig(_Section):
    """A whole run; ``train.monitor`` must name a metric that evaluation produces."""

    seed: StrictInt = 42
    output_dir: str = "runs"
    name: str | None = Field(None, description="run folder name; default model-dataset-time")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    denoiser: DenoiserConfig = Field(default_factory=DenoiserConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _monitor_is_a_metric(self) -> RunConfig:
        metrics = [f"{m}@{k}" for m in ("hit", "ndcg") for k in self.eval.ks] + ["mrr"]
        if self.train.monitor not in metrics:
            raise ValueError(
                f"train.monitor {self.train.monitor!r} is not a metric; choose one of "
                f"{', '.join(metrics)}"
            )
        return self


# --------------------------------------------------------------------------------- loading
def _format_validation_error(
    err: ValidationError, source: str, overridden: frozenset[str] = frozenset()
) -> str:
    lines = []
    from_set = 0
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if loc in overridden:
            from_set += 1
            loc = f"--set {loc}"
        if e["type"] == "extra_forbidden":
            section = _section_for(e["loc"][:-1])
            valid = ", ".join(section.model_fields) if section is not None else "?"
            lines.append(f"unknown key {loc!r} (valid keys here: {valid})")
        else:
            msg = e["msg"].removeprefix("Value error, ")  # a validator's own one-line message
            lines.append(f"{loc}: {msg} (got {e.get('input')!r})")
    if from_set == len(lines):  # every problem came from the command line, not the file
        return "invalid configuration: " + "; ".join(lines)
    return f"invalid configuration in {source}: " + "; ".join(lines)


def _section_for(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in path:
        field = model.model_fields.get(str(part))
        ann = None if field is None else field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _check_mapping(raw: Any, source: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )


def config_from_dict(
    raw: dict[str, Any], source: str = "configuration", overridden: frozenset[str] = frozenset()
) -> RunConfig:
    """Validate ``raw``; errors name ``source``, or ``--set`` for the keys in ``overridden``."""
    _check_mapping(raw, source)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source, overridden)) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings; values are parsed as YAML scalars/lists."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        section = _section_for(tuple(parts[:-1]))
        if section is None or parts[-1] not in section.model_fields:
            depth = len(parts) - 1
            while depth > 0 and _section_for(tuple(parts[:depth])) is None:
                depth -= 1
            known = _section_for(tuple(parts[:depth]))
            where = ".".join(parts[:depth]) or "top level"
            valid = ", ".join(known.model_fields) if known is not None else ""
            raise ConfigError(f"unknown configuration key {key!r} (valid keys in {where}: {valid})")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {item!r}: {p!r} in the config file is not a section "
                    f"(it holds {type(node).__name__} {node!r})"
                )
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"override {item!r}: cannot parse the value as YAML ({problem})"
            ) from None
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error.

    Plain PyYAML keeps the last value, so a duplicated ``model:`` section or axis would silently
    drop the first one. Keys are compared as written (tag and text), when the mapping is
    composed: merge keys (``<<: *anchor``) are expanded later and may still be overridden.
    """

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = (key_node.tag, key_node.value)
            first = seen.setdefault(key, key_node.start_mark)
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key_node.value!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
        return node


MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (see :class:`_UniqueKeyLoader`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed YAML document at ``path`` (``{}`` when empty); one-line ConfigError otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} on line {line})"
        ) from None
    try:
        return parse_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without PyYAML's multi-line source excerpt."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: {context + ', ' if context else ''}{problem}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    raw: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        source = str(path)
        raw = read_yaml(path)
        _check_mapping(raw, source)
    raw = apply_overrides(raw, overrides or [])
    overridden = frozenset(
        ".".join(p for p in item.split("=", 1)[0].strip().split(".") if p)
        for item in overrides or []
    )
    return config_from_dict(raw, source, overridden)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# ------------------------------------------------------------------------------ resolution
def resolve(
    config: RunConfig, *, dataset_max_len: int, dataset_dropout: float, dataset_k_core: int = 0
) -> RunConfig:
    """Replace ``"auto"`` values by the dataset's defaults (as in the SASRec paper).

    Checks that depend on the model (``hidden_size`` divisible by ``num_heads`` for
    self-attentive models, ``caser_window`` at most ``max_len``, ...) are the models' own:
    :func:`recdenoiser.training.build.check_model`.
    """
    out = config.model_copy(deep=True)
    if out.data.k_core == "auto":
        out.data.k_core = dataset_k_core
    if out.data.max_len == "auto":
        out.data.max_len = dataset_max_len
    if out.model.dropout == "auto":
        out.model.dropout = dataset_dropout
    if out.model.loss == "bce" and out.model.num_negatives < 1:
        raise ConfigError("model.num_negatives must be >= 1 for the bce loss")
    return out
