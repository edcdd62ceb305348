"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Everything SASRec needs is the shared :class:`SelfAttentiveRecommender` with causal attention;
the paper's defaults (d=50, 2 blocks, 1 head, dropout 0.2 on ML-1M / 0.5 elsewhere, max length
200 on ML-1M / 50 elsewhere, BCE with one negative) live in the configuration.

Departure from the reference code: its attention lets queries see padded keys and its query
path alone is layer-normalised; here padding is excluded from attention and the block is a
standard pre-norm (or post-norm) Transformer block.
"""

from __future__ import annotations

from recdenoiser.models.base import MODELS, SelfAttentiveRecommender


@MODELS.register("sasrec")
class SASRec(SelfAttentiveRecommender):
    causal = True
