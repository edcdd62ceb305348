"""The evaluator on tiny hand-made datasets with fake models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from recdenoiser.data.dataset import PAD, SequenceDataset
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.evaluation import (
    EvalResult,
    EvaluationError,
    evaluate,
    load_per_user,
    paired_test,
    sample_negatives,
    save_per_user,
)
from recdenoiser.models.batch import Batch


def make_split(
    sequences: list[list[int]], n_items: int, with_times: bool = False
) -> LeaveOneOutSplit:
    lengths = [len(s) for s in sequences]
    times = None
    if with_times:
        times = np.concatenate(
            [1000 * (u + 1) + np.arange(len(s)) for u, s in enumerate(sequences)]
        )
    ds = SequenceDataset(
        name="tiny",
        items=np.array([i for s in sequences for i in s], dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        user_ids=np.array([f"u{u}" for u in range(len(sequences))]),
        item_ids=np.array([""] + [f"i{i}" for i in range(1, n_items + 1)]),
        timestamps=times,
    )
    return LeaveOneOutSplit.from_dataset(ds)


def random_split(n_users: int = 40, n_items: int = 30, seed: int = 0) -> LeaveOneOutSplit:
    rng = np.random.default_rng(seed)
    seqs = [
        rng.integers(1, n_items + 1, size=int(rng.integers(3, 15))).tolist() for _ in range(n_users)
    ]
    return make_split(seqs, n_items)


class TableModel(nn.Module):
    """Scores from a fixed ``[n_users, n_items + 1]`` table; records what it was called with."""

    table: Tensor

    def __init__(self, table: Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table.float())
        self.calls: list[dict] = []

    def _record(self, batch: Batch) -> None:
        self.calls.append(
            {
                "training": self.training,
                "inference": torch.is_inference_mode_enabled(),
                "item_seq": batch.item_seq.clone(),
                "time_seq": None if batch.time_seq is None else batch.time_seq.clone(),
                "users": batch.users.clone(),
            }
        )

    def score_all(self, batch: Batch) -> Tensor:
        self._record(batch)
        return self.table[batch.users]

    def score_candidates(self, batch: Batch, candidates: Tensor) -> Tensor:
        self._record(batch)
        return torch.gather(self.table[batch.users], 1, candidates)


def item_model(n_users: int, item_scores: list[float] | Tensor) -> TableModel:
    """Every user gets the same item scores (index 0 = PAD)."""
    return TableModel(torch.as_tensor(item_scores, dtype=torch.float32).repeat(n_users, 1))


class SuccessorModel(nn.Module):
    """Scores the successor of the last input item highest: score(i) = -|i - (last + 1)|."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.lin = nn.Linear(1, 1)  # a parameter, so train/eval mode is meaningful

    def score_all(self, batch: Batch) -> Tensor:
        last = batch.item_seq[:, -1:].float()
        items = torch.arange(self.n_items + 1, dtype=torch.float32)[None, :]
        return -(items - (last + 1)).abs()

    def score_candidates(self, batch: Batch, candidates: Tensor) -> Tensor:
        return torch.gather(self.score_all(batch), 1, candidates)


# --------------------------------------------------------------------------- sampled protocol
def test_sampled_hand_computed() -> None:
    # test input [1, 2, 3], target 9; unseen items {4..8, 10}: 6 negatives = all of them.
    split = make_split([[1, 2, 3, 9]], 10)
    model = item_model(1, list(range(11)))  # score = item id
    res = evaluate(model, split, stage="test", protocol="sampled", max_len=5, num_negatives=6)
    assert res.per_user["rank"].tolist() == [1]  # only item 10 beats 9
    assert res.metrics["hit@1"] == 0.0 and res.metrics["hit@5"] == 1.0
    assert res.metrics["ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert res.metrics["mrr"] == pytest.approx(0.5)
    # valid stage: input [1, 2], target 3 -> all 6 negatives (>= 4) beat it
    res = evaluate(model, split, stage="valid", protocol="sampled", max_len=5, num_negatives=6)
    assert res.per_user["rank"].tolist() == [6]


def test_constant_model_ties_count_against_target() -> None:
    n_items = 150
    split = make_split([[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12]], n_items)
    model = item_model(3, torch.zeros(n_items + 1))
    res = evaluate(model, split, stage="test", protocol="sampled", max_len=4)
    assert res.per_user["rank"].tolist() == [100, 100, 100]
    assert res.metrics["hit@10"] == 0.0 and res.metrics["hit@20"] == 0.0
    res = evaluate(model, split, stage="test", protocol="full", max_len=4, exclude_history=False)
    assert res.per_user["rank"].tolist() == [n_items - 1] * 3


def test_sampled_uses_the_shared_negatives() -> None:
    split = random_split()
    table = torch.randn(
        split.n_users, split.n_items + 1, generator=torch.Generator().manual_seed(0)
    )
    model = TableModel(table)
    res = evaluate(model, split, stage="valid", protocol="sampled", max_len=8, num_negatives=5)
    users = res.per_user["user"].to_numpy().copy()
    neg = torch.from_numpy(sample_negatives(split, users, 5, seed=0))
    target = torch.from_numpy(split.valid_target[users])
    t_score = table[users, target]
    expected = (table[torch.from_numpy(users)[:, None], neg] >= t_score[:, None]).sum(1)
    np.testing.assert_array_equal(res.per_user["rank"].to_numpy(), expected.numpy())


# ------------------------------------------------------------------------------ full protocol
def test_full_exclude_history() -> None:
    # score = -item: low ids are best. User 0: test input [1, 2, 3], target 4.
    # User 1: sequence [1, 4, 2, 4]; test input [1, 4, 2] contains the test target 4.
    split = make_split([[1, 2, 3, 4], [1, 4, 2, 4]], 10)
    model = item_model(2, [0.0] + [-float(i) for i in range(1, 11)])
    excl = evaluate(model, split, stage="test", protocol="full", max_len=3)
    # user 0: items 1-3 excluded -> nothing beats 4; user 1: only item 3 (not in history) does,
    # and the target keeps its own score although it is in the history.
    assert excl.per_user["rank"].tolist() == [0, 1]
    incl = evaluate(model, split, stage="test", protocol="full", max_len=3, exclude_history=False)
    assert incl.per_user["rank"].tolist() == [3, 3]
    # the history used for exclusion is the whole input, not only the last max_len items
    short = evaluate(model, split, stage="test", protocol="full", max_len=1)
    assert short.per_user["rank"].tolist() == [0, 1]


def test_full_pad_column_never_competes() -> None:
    split = make_split([[1, 2, 3, 4]], 6)
    model = item_model(1, [100.0, 1, 1, 1, 5, 1, 1])  # PAD has the top score
    res = evaluate(model, split, stage="test", protocol="full", max_len=3)
    assert res.per_user["rank"].tolist() == [0]


def test_sampled_equals_full_when_candidates_are_all_unseen_items() -> None:
    # every user has 5 distinct items out of 12 -> 7 unseen items = all sampled negatives; in the
    # test stage the full protocol (history excluded) ranks against the same 7 items.
    rng = np.random.default_rng(1)
    seqs = [rng.choice(np.arange(1, 13), size=5, replace=False).tolist() for _ in range(30)]
    split = make_split(seqs, 12)
    table = torch.randint(0, 4, (30, 13), generator=torch.Generator().manual_seed(2))  # ties
    model = TableModel(table)
    sampled = evaluate(model, split, stage="test", protocol="sampled", max_len=5, num_negatives=7)
    full = evaluate(model, split, stage="test", protocol="full", max_len=5)
    pd.testing.assert_frame_equal(sampled.per_user, full.per_user)
    assert sampled.metrics == full.metrics


# --------------------------------------------------------------------------- batching, subsets
@pytest.mark.parametrize("protocol", ["sampled", "full"])
def test_chunked_equals_unchunked(protocol: str) -> None:
    split = random_split()
    table = torch.randn(
        split.n_users, split.n_items + 1, generator=torch.Generator().manual_seed(0)
    )
    model = TableModel(table)
    kw = dict(stage="test", protocol=protocol, max_len=6, num_negatives=10)
    one = evaluate(model, split, batch_size=1, **kw)  # type: ignore[arg-type]
    big = evaluate(model, split, batch_size=1000, **kw)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(one.per_user, big.per_user)
    assert one.metrics == big.metrics
    assert max(len(c["users"]) for c in model.calls[: len(split.eval_users)]) == 1


def test_max_users_subset_is_seeded() -> None:
    split = random_split(n_users=60)
    table = torch.randn(
        split.n_users, split.n_items + 1, generator=torch.Generator().manual_seed(0)
    )
    model = TableModel(table)
    kw = dict(stage="valid", protocol="sampled", max_len=6, num_negatives=10)
    everyone = evaluate(model, split, **kw)  # type: ignore[arg-type]
    a = evaluate(model, split, max_users=10, seed=0, **kw)  # type: ignore[arg-type]
    b = evaluate(model, split, max_users=10, seed=0, **kw)  # type: ignore[arg-type]
    c = evaluate(model, split, max_users=10, seed=1, **kw)  # type: ignore[arg-type]
    assert a.n_users == 10
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert set(a.per_user["user"]) != set(c.per_user["user"])
    assert set(a.per_user["user"]) <= set(split.eval_users.tolist())
    # per-user candidates do not depend on the subset, so the rows match the full run
    rows = everyone.per_user.set_index("user").loc[a.per_user["user"]].reset_index()
    pd.testing.assert_frame_equal(rows, a.per_user)
    assert evaluate(model, split, max_users=10_000, **kw).n_users == len(split.eval_users)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ inputs given to model
def test_successor_model_and_inputs() -> None:
    seqs = [[1, 2, 3, 4, 5, 6, 7], [3, 4, 5], [2, 3], [5, 6, 7, 8, 9]]  # user 2 is too short
    split = make_split(seqs, 12)
    model = SuccessorModel(12)
    res = evaluate(model, split, stage="test", protocol="full", max_len=4)
    assert res.per_user["user"].tolist() == [0, 1, 3]
    assert res.per_user["raw_user"].tolist() == ["u0", "u1", "u3"]
    assert res.per_user["target"].tolist() == [7, 5, 9]
    assert all(v == 1.0 for v in res.metrics.values())
    sampled = evaluate(model, split, stage="valid", protocol="sampled", max_len=4, num_negatives=3)
    assert sampled.metrics["hit@1"] == 1.0


def test_batch_fields_and_mode_restored() -> None:
    split = make_split([[1, 2, 3, 4, 5, 6, 7], [3, 4, 5]], 10, with_times=True)
    model = item_model(2, list(range(11)))
    model.train()
    evaluate(model, split, stage="test", protocol="sampled", max_len=4, num_negatives=3)
    assert model.training
    call = model.calls[-1]
    assert not call["training"] and call["inference"]
    assert call["users"].tolist() == [0, 1]
    assert call["item_seq"].tolist() == [[3, 4, 5, 6], [PAD, PAD, 3, 4]]
    assert call["time_seq"].tolist() == [[1002, 1003, 1004, 1005], [0, 0, 2000, 2001]]
    model.eval()
    evaluate(model, split, stage="valid", protocol="full", max_len=4)
    assert not model.training
    assert model.calls[-1]["item_seq"].tolist() == [[2, 3, 4, 5], [PAD, PAD, PAD, 3]]
    no_times = make_split([[1, 2, 3]], 10)
    evaluate(model, no_times, stage="test", protocol="full", max_len=4)
    assert model.calls[-1]["time_seq"] is None


def test_mode_restored_on_error_and_shape_check() -> None:
    class Broken(TableModel):
        def score_all(self, batch: Batch) -> Tensor:
            return torch.zeros(len(batch), 3)

    split = make_split([[1, 2, 3, 4]], 10)
    model = Broken(torch.zeros(1, 11))
    model.train()
    with pytest.raises(EvaluationError, match="score_all"):
        evaluate(model, split, stage="test", protocol="full", max_len=4)
    assert model.training


def test_nan_target_gets_worst_rank() -> None:
    split = make_split([[1, 2, 3, 4]], 10)
    scores = torch.zeros(11)
    scores[4] = float("nan")
    model = item_model(1, scores)
    res = evaluate(model, split, stage="test", protocol="sampled", max_len=4, num_negatives=5)
    assert res.per_user["rank"].tolist() == [5]
    res = evaluate(model, split, stage="test", protocol="full", max_len=4)
    assert res.per_user["rank"].tolist() == [9]


def test_no_evaluable_user_and_bad_arguments() -> None:
    split = make_split([[1, 2], [3]], 5)
    model = item_model(2, list(range(6)))
    with pytest.raises(EvaluationError):
        evaluate(model, split, stage="test", protocol="full", max_len=4)
    ok = make_split([[1, 2, 3]], 5)
    with pytest.raises(ValueError):
        evaluate(model, ok, stage="train", protocol="full", max_len=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        evaluate(model, ok, stage="test", protocol="popular", max_len=4)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ result objects
def test_result_dict_table_and_files(tmp_path: Path) -> None:
    split = random_split()
    model = TableModel(torch.randn(split.n_users, split.n_items + 1))
    res = evaluate(model, split, stage="test", protocol="sampled", max_len=6, num_negatives=10)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["stage"] == "test" and d["n_users"] == len(split.eval_users)
    assert set(d["metrics"]) == set(res.metrics)
    table = res.format_table()
    assert "hit" in table and "ndcg" in table and "@10" in table and "mrr" in table
    assert list(res.per_user.columns[:4]) == ["user", "raw_user", "target", "rank"]
    for name in ("out/per_user.csv", "per_user.parquet"):
        path = save_per_user(res, tmp_path / name)
        back = load_per_user(path)
        pd.testing.assert_frame_equal(back, res.per_user, check_dtype=False)
        assert paired_test(back, res, "ndcg@10")["mean_diff"] == 0.0


# -------------------------------------------------------------------------------- paired tests
def frame(users: list[int], values: list[float], metric: str = "m") -> pd.DataFrame:
    return pd.DataFrame({"user": users, metric: values})


def test_paired_t_test_known_values() -> None:
    # differences [1, 2, 3]: mean 2, sd 1, t = 2 * sqrt(3), df = 2; p = 1 - t / sqrt(2 + t^2)
    r = paired_test(frame([0, 1, 2], [1, 2, 3]), frame([0, 1, 2], [0, 0, 0]), "m")
    t = 2 * math.sqrt(3)
    assert r["n"] == 3 and r["df"] == 2 and r["mean_diff"] == 2.0 and r["std_diff"] == 1.0
    assert r["t"] == pytest.approx(t)
    assert r["p_value"] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    # df = 1 (Cauchy): p = 1 - 2 atan(|t|) / pi; differences [1, 3] -> t = 2
    r = paired_test(frame([0, 1], [1, 3]), frame([0, 1], [0, 0]), "m")
    assert r["t"] == pytest.approx(2.0)
    assert r["p_value"] == pytest.approx(1 - 2 * math.atan(2.0) / math.pi, rel=1e-10)


def test_t_distribution_tails() -> None:
    from recdenoiser.evaluation.evaluator import student_t_two_sided_p

    assert student_t_two_sided_p(2.228138851986, 10) == pytest.approx(0.05, abs=1e-9)
    assert student_t_two_sided_p(1.959963984540, 1e7) == pytest.approx(0.05, abs=1e-6)
    assert student_t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    assert student_t_two_sided_p(-3.0, 4) == student_t_two_sided_p(3.0, 4)


def test_paired_test_common_users_wilcoxon_and_degenerate() -> None:
    a = frame([0, 1, 2, 3, 4], [1.0, 2.0, 3.0, -4.0, 5.0])
    b = frame([4, 3, 2, 1, 0, 99], [0.0, 0.0, 0.0, 0.0, 0.0, 7.0])  # user 99 only in b
    r = paired_test(a, b, "m")
    assert r["n"] == 5 and r["mean_diff"] == pytest.approx(1.4)
    # |d| ranks 1..5, W+ = 1 + 2 + 3 + 5 = 11, mean 7.5, var 5*6*11/24 = 13.75
    z = 3.5 / math.sqrt(13.75)
    assert r["wilcoxon_w"] == 11.0 and r["wilcoxon_z"] == pytest.approx(z)
    assert r["wilcoxon_p"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    same = paired_test(a, a, "m")
    assert same["t"] == 0.0 and same["p_value"] == 1.0 and same["wilcoxon_p"] == 1.0
    shifted = paired_test(frame([0, 1], [1.0, 2.0]), frame([0, 1], [0.0, 1.0]), "m")
    assert shifted["t"] == math.inf and shifted["p_value"] == 0.0
    with pytest.raises(KeyError):
        paired_test(a, b, "ndcg@10")


def test_paired_test_on_results() -> None:
    split = random_split()
    g = torch.Generator().manual_seed(0)
    good = TableModel(torch.randn(split.n_users, split.n_items + 1, generator=g))
    res_a = evaluate(good, split, stage="test", protocol="full", max_len=6)
    res_b = evaluate(good, split, stage="test", protocol="full", max_len=6, max_users=10)
    assert isinstance(res_a, EvalResult)
    r = paired_test(res_a, res_b, "ndcg@10")
    assert r["n"] == 10 and r["mean_diff"] == 0.0
