"""How popular and how varied are a run's full-ranking top-10 lists?

For each run directory: the mean popularity percentile of the recommended items (0 = the item
with the most interactions in the dataset), the share drawn from the 1% most popular items, and
the number of distinct items recommended to a fixed random sample of users (the same users for
every run of a dataset).

    python experiments/popularity.py runs/denoiser2/beauty-sasrec-s1 \
        runs/denoiser2/beauty-denoiser-s1
"""

from __future__ import annotations

import argparse

import numpy as np

from recdenoiser.inference import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--users", type=int, default=3000, help="users sampled (seed 0)")
    args = parser.parse_args()
    print("| run | mean popularity percentile | share from top 1% | distinct items |")
    print("|---|---|---|---|")
    for run in args.runs:
        rec = Recommender.from_checkpoint(run)
        ds = rec.dataset
        counts = np.bincount(ds.items, minlength=len(ds.item_ids))[1:]
        rank = np.empty(len(counts), dtype=np.int64)
        rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
        percentile = np.concatenate([[np.nan], rank / len(counts)])  # index = internal item id
        rng = np.random.default_rng(0)
        users = rng.choice(len(ds.user_ids), min(args.users, len(ds.user_ids)), replace=False)
        recs = rec.recommend_users([str(ds.user_ids[u]) for u in users], k=10)
        items = np.array([ds.item_index(i) for r in recs for i in r.items])
        p = percentile[items]
        print(f"| {run} | {p.mean():.3f} | {np.mean(p < 0.01):.3f} | {len(set(items.tolist()))} |")


if __name__ == "__main__":
    main()
