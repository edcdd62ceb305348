"""Transformer blocks and the encoder stack shared by the self-attentive backbones."""

from __future__ import annotations

from torch import Tensor, nn

from recdenoiser.models.attention import MultiHeadSelfAttention, Normalizer
from recdenoiser.models.dropout import Dropout


class FeedForward(nn.Module):
    """Point-wise two-layer feed-forward network (width ``d -> d -> d`` as in SASRec by default)."""

    def __init__(self, hidden_size: int, inner_size: int, dropout: float, activation: str):
        super().__init__()
        act: nn.Module = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner_size),
            act,
            Dropout(dropout),
            nn.Linear(inner_size, hidden_size),
            Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Self-attention + feed-forward with residuals and LayerNorm.

    ``norm="pre"``: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``.
    ``norm="post"``: ``LN(x + Attn(x))`` then ``LN(x + FFN(x))``.
    ``norm="sasrec"``: the reference SASRec block: ``q = LN(x)``, ``h = q + Attn(q; keys and
    values from x)``, ``h = LN(h)``, ``h + FFN(h)`` (followed by a final LayerNorm).
    Outputs at padding positions are zeroed so they cannot leak into anything downstream.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        dropout: float,
        norm: str = "pre",
        activation: str = "relu",
        inner_size: int | None = None,
        fused_attention: bool = True,
        attention_normalizer: Normalizer = "softmax",
    ):
        super().__init__()
        self.norm_kind = norm
        self.pre_norm = norm == "pre"
        self.attention = MultiHeadSelfAttention(
            hidden_size, num_heads, dropout, fused_attention, attention_normalizer
        )
        self.attn_dropout = Dropout(dropout)
        self.feed_forward = FeedForward(hidden_size, inner_size or hidden_size, dropout, activation)
        self.norm1 = nn.LayerNorm(hidden_size, eps=1e-8)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-8)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        valid: Tensor,
        keep: Tensor | None = None,
        explicit_attention: bool = False,
        last_only: bool = False,
    ) -> Tensor:
        """``[B, L, d]`` -> ``[B, L, d]``; ``valid`` is ``[B, L, 1]`` (1 = real item, 0 = PAD).

        With ``last_only`` only the last position is computed and ``[B, 1, d]`` is returned.
        """
        residual = x[:, -1:] if last_only else x
        extra = {}
        if last_only:  # only the standard attention supports it (see the encoder's caller)
            valid = valid[:, -1:]
            extra = {"last_only": True}
        if self.norm_kind == "sasrec":
            q = self.norm1(x)
            attn = self.attention(q, allowed, keep, explicit_attention, kv=x, **extra)
            x = self.norm2((q[:, -1:] if last_only else q) + self.attn_dropout(attn))
            x = x + self.feed_forward(x)
        elif self.pre_norm:
            attn = self.attention(self.norm1(x), allowed, keep, explicit_attention, **extra)
            x = residual + self.attn_dropout(attn)
            x = x + self.feed_forward(self.norm2(x))
        else:
            attn = self.attention(x, allowed, keep, explicit_attention, **extra)
            x = self.norm1(residual + self.attn_dropout(attn))
            x = self.norm2(x + self.feed_forward(x))
        return x * valid


class TransformerEncoder(nn.Module):
    """A stack of blocks; records each block's input and output when asked (for Jacobians)."""

    def __init__(self, blocks: list[TransformerBlock], hidden_size: int, final_norm: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.final_norm: nn.Module = (
            nn.LayerNorm(hidden_size, eps=1e-8) if final_norm else nn.Identity()
        )
        self.record_io = False
        self.block_io: list[tuple[Tensor, Tensor]] = []

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        valid: Tensor,
        keep: list[Tensor | None] | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """``[B, L, d]`` -> ``[B, L, d]`` (``[B, 1, d]``, the last position, with ``last_only``)."""
        self.block_io = []
        last = len(self.blocks) - 1
        for layer, block in enumerate(self.blocks):
            layer_keep = None if keep is None else keep[layer]
            out = block(
                x,
                allowed,
                valid,
                layer_keep,
                explicit_attention=self.record_io,
                last_only=last_only and layer == last,
            )
            if self.record_io:
                self.block_io.append((x, out))
            x = out
        return self.final_norm(x) * (valid[:, -1:] if last_only else valid)
