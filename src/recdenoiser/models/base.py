"""Base classes shared by every sequential recommender.

A :class:`SequentialRecommender` maps a :class:`~recdenoiser.models.batch.Batch` to hidden
states, scores items against the shared item table, and returns per-sequence training losses.
:class:`SelfAttentiveRecommender` composes embedding + attention blocks + head; backbones such as
SASRec differ only in the parts they pass in. Rec-Denoiser attaches through
:attr:`SelfAttentiveRecommender.mask_provider` (attention masks) and
:attr:`TransformerEncoder.record_io` (block Jacobians), never by copying a model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.errors import ConfigError
from recdenoiser.models.attention import MultiHeadSelfAttention, Normalizer, attention_allowed
from recdenoiser.models.batch import Batch
from recdenoiser.models.blocks import TransformerBlock, TransformerEncoder
from recdenoiser.models.embedding import SequenceEmbedding, gather_rows
from recdenoiser.models.losses import LOSSES, NEEDS_NEGATIVES
from recdenoiser.models.sparse_attention import sparse_fixed_pattern
from recdenoiser.registry import Registry

#: ``model.*`` settings that only self-attentive models use (refused elsewhere unless default)
ATTENTION_SETTINGS = ("attention", "sparse_window", "sparse_stride")


class MaskProvider(Protocol):
    """Produces one multiplicative attention mask per layer (or None to leave a layer as is)."""

    def __call__(self, embedded: Tensor, allowed: Tensor) -> list[Tensor | None]: ...


class SequentialRecommender(nn.Module):
    """Interface of every model: encode a batch, score items, compute per-sequence losses."""

    #: whether sequences are read left-to-right only (causal) or in both directions
    causal: ClassVar[bool] = True
    #: what the trainer hands to :meth:`training_batch`: ``"shifted"`` next-item pairs (input
    #: ``s_1..s_{T-1}``, ``pos_items`` ``s_2..s_T``) or the ``"full"`` training sequence
    #: ``s_1..s_T`` as ``item_seq`` with ``pos_items=None`` (the model makes its own targets)
    training_input: ClassVar[Literal["shifted", "full"]] = "shifted"
    #: whether batches must carry ``time_seq`` (the dataset must have timestamps)
    needs_timestamps: ClassVar[bool] = False
    #: whether scores depend on the user id (a user embedding), not only on the history
    uses_user_ids: ClassVar[bool] = False

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        super().__init__()
        self.check_config(config, max_len)
        self.n_items = n_items
        self.max_len = max_len
        self.config = config
        self.n_users = n_users

    @classmethod
    def check_config(cls, config: ModelConfig, max_len: int | None = None) -> None:
        """Refuse settings this model cannot use (one-line :class:`ConfigError`).

        A class method, so the trainer runs it before it reads any data or writes anything;
        ``max_len`` is None while ``data.max_len`` is still ``"auto"``. Every model also runs it
        when built. Here: the attention settings, which only self-attentive models have.
        """
        changed = [
            f"model.{key}={getattr(config, key)!r}"
            for key in ATTENTION_SETTINGS
            if getattr(config, key) != ModelConfig.model_fields[key].default
        ]
        if changed:
            raise ConfigError(
                f"{', '.join(changed)} needs a self-attentive model; {config.name!r} is not one"
            )

    # subclasses implement these two
    def encode(self, batch: Batch) -> Tensor:
        """``[B, L, d]`` hidden state at every position."""
        raise NotImplementedError

    def item_table(self) -> Tensor:
        """``[n_items + 1, d]`` output item vectors (row PAD is unused)."""
        raise NotImplementedError

    # shared behaviour
    @property
    def needs_negatives(self) -> bool:
        return NEEDS_NEGATIVES[self.config.loss]

    def training_batch(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Turn a batch of training data into the batch the loss is computed on.

        Called by the trainer's data pipeline (on CPU, before negatives are sampled for the
        returned ``pos_items``) with the loader's seeded ``generator``; the identity here.
        Models that corrupt or mask their training input (Cloze, stochastic shared embeddings)
        override it, so every pass of a training step sees the same corrupted batch.
        """
        return batch

    def sequence_loss(self, batch: Batch) -> Tensor:
        """``[B]`` per-sequence losses summing to the batch's mean next-item loss."""
        if batch.pos_items is None:
            raise ValueError("training batches need pos_items")
        hidden = self.encode(batch)
        return LOSSES.get(self.config.loss)(
            hidden, self.item_table(), batch.pos_items, batch.neg_items
        )

    def user_vector(self, batch: Batch) -> Tensor:
        """``[B, d]`` representation used to score the next item (last position)."""
        return self.encode(batch)[:, -1, :]

    def score_candidates(self, batch: Batch, candidates: Tensor) -> Tensor:
        """``[B, C]`` scores of candidate items ``[B, C]``."""
        user = self.user_vector(batch)
        return (user.unsqueeze(1) * gather_rows(self.item_table(), candidates)).sum(-1)

    def score_all(self, batch: Batch) -> Tensor:
        """``[B, n_items + 1]`` scores of every item (column PAD is meaningless)."""
        return self.user_vector(batch) @ self.item_table().T


class SelfAttentiveRecommender(SequentialRecommender):
    """Embedding -> Transformer blocks -> dot product with the (shared) item embedding table."""

    #: rows of the input item table after item ``n_items`` (e.g. BERT4Rec's [mask] token);
    #: they are never scored (:meth:`item_table` stops at ``n_items``)
    extra_tokens: ClassVar[int] = 0
    #: feed-forward inner width as a multiple of ``hidden_size``
    ffn_multiplier: ClassVar[int] = 1
    #: tokens :meth:`inference_input` appends after the history (BERT4Rec's ``[mask]``: 1), so
    #: at most ``max_len - appended_at_inference`` history items are seen at inference
    appended_at_inference: ClassVar[int] = 0

    def inference_input(self, batch: Batch) -> Batch:
        """The batch this model encodes to score the item after each history (here: as is)."""
        return batch

    @classmethod
    def check_config(cls, config: ModelConfig, max_len: int | None = None) -> None:
        """Every attention setting applies; the heads must split ``hidden_size`` evenly."""
        if config.hidden_size % config.num_heads:
            raise ConfigError(
                f"model.hidden_size ({config.hidden_size}) must be divisible by "
                f"model.num_heads ({config.num_heads})"
            )

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        super().__init__(n_items, max_len, config, n_users)
        dropout = float(config.dropout)  # resolved from "auto" before models are built
        d = config.hidden_size
        self.embedding = self.build_embedding(dropout)
        blocks = [self.build_block(dropout) for _ in range(config.num_blocks)]
        self.encoder = TransformerEncoder(blocks, d, final_norm=config.norm != "post")
        self.mask_provider: MaskProvider | None = None
        self.reset_parameters()

    def build_embedding(self, dropout: float) -> SequenceEmbedding:
        return SequenceEmbedding(
            self.n_items + self.extra_tokens, self.config.hidden_size, self.max_len, dropout
        )

    def build_block(self, dropout: float) -> TransformerBlock:
        config = self.config
        return TransformerBlock(
            config.hidden_size,
            config.num_heads,
            dropout,
            norm=config.norm,
            activation=config.activation,
            inner_size=config.hidden_size * self.ffn_multiplier,
            fused_attention=config.fused_attention,
            attention_normalizer=self.attention_normalizer,
        )

    @property
    def attention_normalizer(self) -> Normalizer:
        """``"entmax15"`` for ``model.attention=entmax15``, else ``"softmax"``."""
        return "entmax15" if self.config.attention == "entmax15" else "softmax"

    def allowed_attention(self, padding_mask: Tensor) -> Tensor:
        """``[B, L, L]`` bool, True where a query may attend to a key.

        Causality (for causal models) and padding, plus, with ``model.attention=sparse_fixed``,
        the fixed local + strided pattern (:func:`sparse_fixed_pattern`). Mask providers receive
        this tensor, so learned masks only act on entries the backbone can use.
        """
        allowed = attention_allowed(padding_mask, causal=self.causal)
        if self.config.attention == "sparse_fixed":
            pattern = sparse_fixed_pattern(
                padding_mask.shape[1],
                self.config.sparse_window,
                self.config.sparse_stride,
                causal=self.causal,
                device=padding_mask.device,
            )
            allowed = allowed & pattern
        return allowed

    def reset_parameters(self) -> None:
        """Xavier-normal weights (as the reference SASRec code), zero biases, PAD rows zero."""
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                if self.config.init_std is None:
                    nn.init.xavier_normal_(param)
                else:
                    nn.init.normal_(param, std=self.config.init_std)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        self.embedding.reset_padding()

    def embed(self, batch: Batch) -> Tensor:
        return self.embedding(batch.item_seq, batch.padding_mask)

    def encode(self, batch: Batch) -> Tensor:
        padding_mask = batch.padding_mask
        allowed = self.allowed_attention(padding_mask)
        x = self.embed(batch)
        keep = None if self.mask_provider is None else self.mask_provider(x, allowed)
        valid = padding_mask.unsqueeze(-1).to(x.dtype)
        return self.encoder(x, allowed, valid, keep)

    def user_vector(self, batch: Batch) -> Tensor:
        """``[B, d]``; in evaluation the final block computes the last position only."""
        if self.training or type(self).encode is not SelfAttentiveRecommender.encode:
            return super().user_vector(batch)
        if any(
            type(block) is not TransformerBlock
            or type(block.attention) is not MultiHeadSelfAttention
            for block in self.encoder.blocks
        ):
            return super().user_vector(batch)
        padding_mask = batch.padding_mask
        allowed = self.allowed_attention(padding_mask)
        x = self.embed(batch)
        keep = None if self.mask_provider is None else self.mask_provider(x, allowed)
        valid = padding_mask.unsqueeze(-1).to(x.dtype)
        return self.encoder(x, allowed, valid, keep, last_only=True)[:, -1, :]

    def item_table(self) -> Tensor:
        return self.embedding.items.weight[: self.n_items + 1]


MODELS: Registry[type[SequentialRecommender]] = Registry("model")


def build_model(
    config: ModelConfig, n_items: int, max_len: int, **extra: Any
) -> SequentialRecommender:
    cls = MODELS.get(config.name)
    return cls(n_items, max_len, config, **extra)


__all__ = ["MODELS", "PAD", "MaskProvider", "SelfAttentiveRecommender", "SequentialRecommender"]
