"""How strongly does the loss pull on each attention-mask entry, next to the L0 penalty?

Takes a trained backbone (a run directory), attaches fresh positional masks (keep probability
``--init-keep``), and accumulates over ``--batches`` training batches the ARM (or AR) gradient of
the next-item loss with respect to every mask logit, with beta = gamma = 0. It prints, per layer,
for the most recent ``--corner`` positions (the entries every history uses) and for all usable
entries: the mean estimated gradient (the signal), its standard deviation over batches (the
noise), and the gradient the L0 term adds at several values of beta. Masks are pruned where the
L0 gradient exceeds the (negative) loss gradient, so comparing the two says which beta leaves the
masks free to follow the data.

Usage:
    python experiments/mask_gradient.py RUN_DIR [--batches 100] [--estimator arm]
The validation and test splits are not read.
"""

from __future__ import annotations

import argparse
import math

import torch

from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.denoiser import AttentionMasks, DenoiserObjective, attach_denoiser
from recdenoiser.denoiser.objective import usable_entries
from recdenoiser.models.base import SelfAttentiveRecommender
from recdenoiser.training.checkpoint import load_checkpoint
from recdenoiser.training.data import TrainingSequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory of a trained self-attentive backbone")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--estimator", choices=["arm", "ar"], default="arm")
    parser.add_argument("--mask-sampling", choices=["batch", "sequence"], default="batch")
    parser.add_argument("--init-keep", type=float, default=0.9)
    parser.add_argument("--corner", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    loaded = load_checkpoint(args.run)
    model, config = loaded.model, loaded.config
    if not isinstance(model, SelfAttentiveRecommender):
        raise SystemExit(f"{config.model.name} has no attention to mask")
    cfg = config.denoiser.model_copy(
        update={
            "enabled": True,
            "masks": True,
            "jacobian": False,
            "beta": 0.0,
            "gamma": 0.0,
            "estimator": args.estimator,
            "mask_sampling": args.mask_sampling,
            "mask_kind": "positional",
            "init_keep_prob": args.init_keep,
        }
    )
    model.mask_provider = None
    attach_denoiser(model, cfg)
    masks = model.mask_provider
    assert isinstance(masks, AttentionMasks)
    objective = DenoiserObjective(cfg)
    split = LeaveOneOutSplit.from_dataset(loaded.dataset)
    max_len = int(config.data.max_len)  # type: ignore[arg-type]
    data = TrainingSequences.for_model(split, model, max_len, config.model.num_negatives)
    mean_targets = data.mean_targets_per_batch(config.train.batch_size)
    generator = torch.Generator().manual_seed(args.seed)
    model.train()

    layers, n = masks.phi.shape[0], masks.phi.shape[-1]
    total = torch.zeros(layers, n, n, dtype=torch.float64)
    square = torch.zeros_like(total)
    usage = torch.zeros(n, n, dtype=torch.float64)  # fraction of sequences using each entry
    for _ in range(args.batches):
        rows = torch.randperm(len(data), generator=generator)[: config.train.batch_size]
        batch = data.make_batch(rows, generator, mean_targets)
        model.zero_grad(set_to_none=True)
        loss, _ = objective(model, batch)
        loss.backward()
        assert masks.phi.grad is not None
        grad = masks.phi.grad.double()
        total += grad
        square += grad.pow(2)
        width = batch.item_seq.shape[1]
        used = usable_entries(model.allowed_attention(batch.padding_mask), batch.padding_mask)
        usage[-width:, -width:] += used.double().mean(0)
    k = args.batches
    mean = total / k
    std = (square / k - mean.pow(2)).clamp_min(0).sqrt()
    usage /= k
    prob = args.init_keep
    dsigma = prob * (1 - prob)  # d sigmoid(phi) / d phi at the initial keep probability
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    corner = torch.zeros(n, n, dtype=torch.bool)
    corner[-args.corner :, -args.corner :] = True
    corner &= causal
    print(
        f"{args.run}: {k} batches of {config.train.batch_size}, {args.estimator}, "
        f"{args.mask_sampling} draws, keep probability {prob}"
    )
    print(
        "layer | entries | mean loss grad | std over batches | "
        + " | ".join(f"L0 grad beta={b:g}" for b in (1e-2, 1e-3, 1e-4, 1e-5))
    )
    for layer in range(layers):
        for label, where in ((f"newest {args.corner}x{args.corner}", corner), ("all", causal)):
            where = where & (usage > 0)
            m, s, u = mean[layer][where], std[layer][where], usage[where]
            l0 = [b * dsigma * float(u.mean()) for b in (1e-2, 1e-3, 1e-4, 1e-5)]
            print(
                f"{layer} | {label} ({int(where.sum())}) | {float(m.mean()):+.2e} "
                f"(median |.| {float(m.abs().median()):.1e}) | {float(s.mean()):.1e} | "
                + " | ".join(f"{v:+.1e}" for v in l0)
            )
    snr = (mean.abs() / (std / math.sqrt(k)).clamp_min(1e-30))[:, causal & (usage > 0)]
    print(
        f"entries whose mean loss gradient is > 2 standard errors from 0: "
        f"{float((snr > 2).double().mean()):.1%}"
    )


if __name__ == "__main__":
    main()
