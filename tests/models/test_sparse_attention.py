"""The sparse-attention baselines: 1.5-entmax and the fixed local + strided pattern.

The function-level tests check :func:`entmax15` against a bisection reference and its gradients
with ``gradcheck``; the model-level tests run every self-attentive backbone with
``model.attention`` set to each baseline through the contract's checks (padding invariance,
causality, last-position fast path, denoiser plug-in).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recdenoiser.config import DenoiserConfig, ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.denoiser import attach_denoiser
from recdenoiser.errors import ConfigError
from recdenoiser.models import MODELS, Batch, SelfAttentiveRecommender, build_model
from recdenoiser.models.attention import MultiHeadSelfAttention, attention_allowed
from recdenoiser.models.sparse_attention import entmax15, sparse_fixed_pattern
from tests.helpers import left_padded
from tests.models.test_contract import (
    MAX_LEN,
    N_ITEMS,
    assert_all_ones_mask_is_backbone,
    assert_causal,
    assert_denoiser_trains,
    assert_padding_invariant,
    eval_batch,
    make_model,
    trainer_batch,
)

SELF_ATTENTIVE = [n for n in MODELS.names() if issubclass(MODELS.get(n), SelfAttentiveRecommender)]
CAUSAL = [n for n in SELF_ATTENTIVE if MODELS.get(n).causal]
BASELINES = ["entmax15", "sparse_fixed"]
# a window and stride small enough that both parts of the pattern matter at MAX_LEN = 12
SPARSE = {"sparse_window": 3, "sparse_stride": 4}


def reference_entmax15(scores: torch.Tensor) -> torch.Tensor:
    """``max(0, z/2 - tau)^2`` along the last dim, ``tau`` found by bisection (float64)."""
    x = scores.double() / 2
    hi = x.max(dim=-1, keepdim=True).values  # sum = 0 < 1
    lo = hi - 1.0  # the largest entry alone gives sum >= 1
    for _ in range(200):
        mid = (lo + hi) / 2
        total = (x - mid).clamp_min(0).pow(2).sum(dim=-1, keepdim=True)
        lo, hi = torch.where(total > 1, mid, lo), torch.where(total > 1, hi, mid)
    return (x - (lo + hi) / 2).clamp_min(0).pow(2)


def baseline_model(name: str, attention: str, **overrides: object) -> SelfAttentiveRecommender:
    extra = SPARSE if attention == "sparse_fixed" else {}
    model = make_model(name, attention=attention, **extra, **overrides)
    assert isinstance(model, SelfAttentiveRecommender)
    return model


# ------------------------------------------------------------------------------ entmax15
def test_entmax15_known_values() -> None:
    # two keys: z = (1, 0) -> x = (0.5, 0); (0.5 - tau)^2 + tau^2 = 1 -> tau = (1 - sqrt(7)) / 4
    tau = (1 - 7**0.5) / 4
    expected = torch.tensor([(0.5 - tau) ** 2, tau**2], dtype=torch.float64)
    torch.testing.assert_close(entmax15(torch.tensor([1.0, 0.0], dtype=torch.float64)), expected)
    # equal scores: uniform; a gap of 2 or more: one-hot
    torch.testing.assert_close(entmax15(torch.zeros(4)), torch.full((4,), 0.25))
    assert entmax15(torch.tensor([2.0, 0.0, -1.0])).tolist() == [1.0, 0.0, 0.0]
    # invariant to adding a constant
    z = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(entmax15(z + 100.0), entmax15(z))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 50.0])
def test_entmax15_matches_bisection_and_sums_to_one(dtype: torch.dtype, scale: float) -> None:
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(4, 3, 17, generator=g, dtype=torch.float64) * scale).to(dtype)
    p = entmax15(z)
    assert p.dtype == dtype and (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(4, 3, dtype=dtype))
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(p.double(), reference_entmax15(z), atol=atol, rtol=0)
    # any dimension
    torch.testing.assert_close(entmax15(z.transpose(1, 2), dim=1), p.transpose(1, 2))


def test_entmax15_is_sparse_on_peaked_scores() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 20, generator=g) * 4
    p = entmax15(z)
    assert (p == 0).sum(-1).min() > 0  # every row has exactly-zero weights
    assert (p.softmax(-1) > 0).all()  # (the softmax never does)
    peaked = torch.tensor([6.0, 1.0, 0.5, 0.0])
    assert entmax15(peaked).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_entmax15_mask_and_fully_masked_rows() -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]).bool()
    p = entmax15(z, mask=mask)
    assert (p[~mask] == 0).all()
    assert p[1].tolist() == [0.0] * 6  # nothing allowed: zeros, not NaN
    assert p[2].tolist() == [0.0] * 5 + [1.0]
    torch.testing.assert_close(p[0, mask[0]], reference_entmax15(z[0, mask[0]]))
    # the masked values do not matter
    z_other = z.detach().masked_fill(~mask, 1e6)
    assert torch.equal(entmax15(z_other, mask=mask), p.detach())
    # -inf scores are excluded as well
    torch.testing.assert_close(entmax15(z.detach().masked_fill(~mask, float("-inf")))[0], p[0])
    (p * torch.arange(6.0)).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert (z.grad[~mask] == 0).all() and (z.grad[1] == 0).all()


def test_entmax15_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(2, 3, 7, generator=g, dtype=torch.float64) * 2).requires_grad_()
    mask = torch.rand(2, 1, 7, generator=g) > 0.3  # broadcast over the middle dim
    mask[1, 0] = False  # an all-masked row

    def fn(t: torch.Tensor) -> torch.Tensor:
        return entmax15(t, dim=-1, mask=mask)

    assert torch.autograd.gradcheck(fn, (z,))
    assert torch.autograd.gradgradcheck(fn, (z,))  # Jacobian regularization needs it
    assert torch.autograd.gradcheck(lambda t: entmax15(t, dim=1), (z,))


def test_entmax15_nan_and_inf_scores() -> None:
    """A diverging run's scores: NaN propagates to its row (as with the softmax), the +inf
    entries of a row share its weight (the limit as they grow together); never an index error.
    """
    nan, inf = float("nan"), float("inf")
    z = torch.tensor(
        [
            [1.0, nan, 0.0, 2.0],  # NaN: the whole row is NaN, like softmax
            [nan, nan, nan, nan],
            [inf, 1.0, inf, -3.0],  # two +inf: 1/2 each
            [inf, inf, inf, inf],
            [0.0, inf, nan, 5.0],  # NaN wins over +inf
            [-inf, 0.0, -inf, 0.0],  # -inf: no weight, as a masked key
            [-inf, -inf, -inf, -inf],  # nothing left: zeros, as a fully masked row
            [1e30, -1e30, 3.0, 0.0],  # huge but finite
        ],
        requires_grad=True,
    )
    p = entmax15(z)
    assert torch.isnan(p[[0, 1, 4]]).all()
    assert torch.isnan(z[[0, 1, 4]].detach().softmax(-1)).all()  # (the softmax agrees)
    torch.testing.assert_close(p[2], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    torch.testing.assert_close(p[3], torch.full((4,), 0.25))
    torch.testing.assert_close(p[5], torch.tensor([0.0, 0.5, 0.0, 0.5]))
    assert (p[[2, 5]] == 0).sum() == 4  # exactly zero outside the +inf / finite keys
    assert p[6].tolist() == [0.0] * 4
    assert p[7].tolist() == [1.0, 0.0, 0.0, 0.0]
    # a NaN or +inf under the mask is a disallowed key: it does not matter
    mask = torch.tensor([True, False, True, True])
    torch.testing.assert_close(
        entmax15(z.detach()[0], mask=mask), entmax15(torch.tensor([1.0, 0.0, 0.0, 2.0]), mask=mask)
    )
    assert entmax15(torch.tensor([inf, 1.0, 9.0]), mask=mask[1:]).tolist() == [0.0, 0.0, 1.0]
    # gradients: NaN where the weights are NaN, finite elsewhere
    (p[[2, 3, 5, 6, 7]] * torch.arange(4.0)).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad[[2, 3, 5, 6, 7]]).all()
    # batched attention-shaped input with the trainer's masks
    scores = torch.randn(2, 2, 5, 5)
    scores[0, 1, 3, 2] = nan
    scores[1, 0, 4, 1] = inf
    allowed = attention_allowed(torch.ones(2, 5, dtype=torch.bool), causal=True).unsqueeze(1)
    weights = entmax15(scores, mask=allowed)
    assert torch.isnan(weights[0, 1, 3]).all() and torch.isfinite(weights[0, 1, :3]).all()
    assert weights[1, 0, 4].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    finite = torch.ones(2, 2, 5, dtype=torch.bool)
    finite[0, 1, 3] = False
    torch.testing.assert_close(weights.sum(-1)[finite], torch.ones(int(finite.sum())))


def test_entmax15_half_precision_is_computed_in_float32() -> None:
    z = torch.randn(4, 9) * 3
    p = entmax15(z.bfloat16())
    assert p.dtype == torch.bfloat16
    torch.testing.assert_close(p.float(), entmax15(z.bfloat16().float()), atol=1e-2, rtol=0)


# ------------------------------------------------------------------------- fixed pattern
def test_sparse_fixed_pattern_entries() -> None:
    # L = 6, window 2, stride 3: the summary columns are the 3rd and 6th newest, j = 3 and 0
    causal = sparse_fixed_pattern(6, window=2, stride=3, causal=True)
    assert causal.int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 0, 1, 1, 0],
        [1, 0, 0, 1, 1, 1],
    ]
    both = sparse_fixed_pattern(6, window=2, stride=3, causal=False)
    assert both.int().tolist() == [
        [1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 0, 1, 1, 1, 0],
        [1, 0, 0, 1, 1, 1],
        [1, 0, 0, 1, 1, 1],
    ]
    # window 1 and no summary column in range: the diagonal only
    assert torch.equal(sparse_fixed_pattern(5, 1, 99, causal=True), torch.eye(5, dtype=torch.bool))
    # stride 1: every column is a summary column (full causal / full bidirectional attention)
    assert torch.equal(sparse_fixed_pattern(5, 1, 1, True), torch.ones(5, 5).tril().bool())
    assert sparse_fixed_pattern(5, 1, 1, False).all()
    # aligned to the end: the last rows/columns do not depend on L
    assert torch.equal(sparse_fixed_pattern(9, 2, 3, True)[-6:, -6:], causal)
    with pytest.raises(ValueError):
        sparse_fixed_pattern(4, 0, 2, True)


def test_sparse_settings_are_validated() -> None:
    assert ModelConfig().attention == "softmax"
    for bad in ({"attention": "sparsemax"}, {"sparse_window": 0}, {"sparse_stride": 0}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    from recdenoiser.config import load_config

    with pytest.raises(ConfigError, match="attention"):
        load_config(overrides=["model.attention=entmax"])


# ------------------------------------------------------------------------ attention module
def test_default_softmax_attention_is_the_reference_formula() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 2, dropout=0.0, fused=False).eval()
    assert attn.normalizer == "softmax"
    x = torch.randn(3, 5, 16)
    allowed = attention_allowed(left_padded([[1, 2, 3, 4, 5], [1, 2], [3]], 5) != PAD, True)
    keep = torch.rand(1, 5, 5)
    q, k, v = attn.qkv(x).view(3, 5, 3, 2, 8).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-2, -1) / 8**0.5).masked_fill(~allowed.unsqueeze(1), float("-inf"))
    weights = scores.softmax(dim=-1) * keep.unsqueeze(1)
    expected = attn.out((weights @ v).transpose(1, 2).reshape(3, 5, 16))
    assert torch.equal(attn(x, allowed, keep=keep), expected)


def test_entmax_attention_never_uses_the_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 2, 0.0, fused=True, normalizer="entmax15").eval()
    x = torch.randn(2, 6, 16)
    allowed = attention_allowed(torch.ones(2, 6, dtype=torch.bool), causal=True)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fused kernel is softmax-only")

    monkeypatch.setattr(F, "scaled_dot_product_attention", forbidden)
    out = attn(x, allowed)
    # keep = 0 removes every weight: only the output bias is left (the hook still works)
    zero = attn(x, allowed, keep=torch.zeros(1, 6, 6))
    torch.testing.assert_close(zero, attn.out.bias.expand_as(zero))
    torch.testing.assert_close(attn(x, allowed, keep=torch.ones(1, 6, 6)), out)


def test_models_use_the_configured_attention() -> None:
    default = make_model("sasrec")
    assert isinstance(default, SelfAttentiveRecommender)
    padding = eval_batch(MAX_LEN).padding_mask
    assert torch.equal(default.allowed_attention(padding), attention_allowed(padding, True))
    for name in SELF_ATTENTIVE:
        entmax = baseline_model(name, "entmax15")
        assert all(b.attention.normalizer == "entmax15" for b in entmax.encoder.blocks)
        sparse = baseline_model(name, "sparse_fixed")
        assert all(b.attention.normalizer == "softmax" for b in sparse.encoder.blocks)
        allowed = sparse.allowed_attention(padding)
        pattern = sparse_fixed_pattern(MAX_LEN, 3, 4, causal=sparse.causal)
        assert torch.equal(allowed, attention_allowed(padding, sparse.causal) & pattern)
        assert allowed.diagonal(dim1=1, dim2=2).all()


# ------------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("attention", BASELINES)
@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_padding_invariance(name: str, attention: str) -> None:
    assert_padding_invariant(baseline_model(name, attention))


@pytest.mark.parametrize("attention", BASELINES)
@pytest.mark.parametrize("name", CAUSAL)
def test_causality(name: str, attention: str) -> None:
    assert_causal(baseline_model(name, attention))


def test_sparse_pattern_hides_old_items() -> None:
    """One block, window 3, stride 4: the newest query sees only its window and summaries."""
    model = baseline_model("sasrec", "sparse_fixed", num_blocks=1)
    batch = Batch(torch.arange(1, MAX_LEN + 1).unsqueeze(0), torch.zeros(1, dtype=torch.long))
    # summary columns: 4th, 8th, 12th newest = j 8, 4, 0; window: j 9..11
    hidden = set(range(MAX_LEN)) - {0, 4, 8, 9, 10, 11}
    with torch.no_grad():
        base = model.encode(batch)[0, -1]
        for t in range(MAX_LEN):
            changed = batch.item_seq.clone()
            changed[0, t] = changed[0, t] % N_ITEMS + 1
            same = torch.equal(model.encode(Batch(changed, batch.users))[0, -1], base)
            assert same == (t in hidden), t


@pytest.mark.parametrize("attention", BASELINES)
@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_user_vector_matches_full_encoding(name: str, attention: str) -> None:
    model = baseline_model(name, attention)
    batch = eval_batch(MAX_LEN)
    with torch.no_grad():
        fast = model.user_vector(batch)
        full = model.encode(model.inference_input(batch))[:, -1]  # BERT4Rec: appended [mask]
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("denoised", [False, True])
@pytest.mark.parametrize("norm", ["pre", "post", "sasrec"])
@pytest.mark.parametrize("attention", ["softmax", *BASELINES])
def test_last_position_fast_path(attention: str, norm: str, denoised: bool) -> None:
    torch.manual_seed(0)
    extra = SPARSE if attention == "sparse_fixed" else {}
    config = ModelConfig(
        hidden_size=16,
        num_blocks=2,
        num_heads=2,
        dropout=0.1,
        norm=norm,
        attention=attention,
        **extra,
    )
    model = build_model(config, N_ITEMS, MAX_LEN)
    if denoised:
        attach_denoiser(model, DenoiserConfig(enabled=True))
        with torch.no_grad():
            model.mask_provider.phi.uniform_(-2, 2)  # type: ignore[union-attr]
    model.eval()
    seq = torch.randint(1, N_ITEMS + 1, (5, MAX_LEN))
    seq[:2, :4] = PAD
    batch = Batch(item_seq=seq, users=torch.arange(5))
    calls: list[bool] = []
    last = model.encoder.blocks[-1]
    handle = last.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(kwargs.get("last_only", False)), with_kwargs=True
    )
    with torch.no_grad():
        fast = model.user_vector(batch)
        full = model.encode(batch)[:, -1, :]
    handle.remove()
    assert calls == [True, False]  # the fast path was taken
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", BASELINES)
@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_training_and_denoiser_objective(name: str, attention: str) -> None:
    model = baseline_model(name, attention, dropout=0.1).train()
    losses = model.sequence_loss(trainer_batch(model))
    assert torch.isfinite(losses).all()
    losses.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad()
    # Rec-Denoiser on top: masks multiply the normalised weights; the Jacobian term needs
    # second derivatives through the normaliser
    assert_denoiser_trains(model)


@pytest.mark.parametrize("attention", BASELINES)
@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_all_ones_forced_mask_is_the_backbone(name: str, attention: str) -> None:
    assert_all_ones_mask_is_backbone(
        baseline_model(name, attention, fused_attention=False),
        baseline_model(name, attention, fused_attention=False),
    )
