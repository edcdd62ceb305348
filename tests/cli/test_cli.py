"""The ``recdenoiser`` command, in process (``main([...])``) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recdenoiser.cli.main import main
from recdenoiser.config import RunConfig, dump_config
from recdenoiser.training.checkpoint import load_checkpoint
from recdenoiser.training.runner import RunResult

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    # counted data warnings ("warning: ...", one line each) may precede the error
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert lines == errors, f"more than the error line on stderr: {err!r}"
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture()
def config_file(tiny_config: RunConfig, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_config(tiny_config))
    return path


# ----------------------------------------------------------------------------- prepare
def test_prepare_prints_statistics(
    capsys: pytest.CaptureFixture[str], planted_file: Path, planted: list[list[int]]
) -> None:
    code, out, _ = run_cli(
        capsys, "prepare", str(planted_file), "--format", "user-item", "--k-core", "0"
    )
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert fields["users"] == "300"
    assert fields["items"] == "60"
    assert fields["interactions"] == f"{sum(len(s) for s in planted):,}"
    assert fields["timestamps"] == "no"
    assert fields["evaluated"].startswith("300 users")


def write_table(path: Path, sep: str) -> Path:
    rows = [sep.join(("uid", "iid", "ts"))]
    rows += [
        sep.join((f"u{u}", f"i{(u + k) % 7}", str(1000 + k))) for u in range(4) for k in range(5)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_prepare_table_with_columns_and_sep(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_table(tmp_path / "log.txt", ";")
    code, out, err = run_cli(
        capsys,
        "prepare",
        str(path),
        "--format",
        "table",
        "--columns",
        "{user: uid, item: iid, timestamp: ts}",
        "--sep",
        ";",
        "--k-core",
        "0",
    )
    assert code == 0, err
    fields = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert (fields["users"], fields["interactions"], fields["timestamps"]) == ("4", "20", "yes")
    # the format follows from --columns; '\t' on the command line is a tab
    tsv = write_table(tmp_path / "log.dat", "\t")
    code, out, err = run_cli(
        capsys,
        "prepare",
        str(tsv),
        "--columns",
        "{user: uid, item: iid}",
        "--sep",
        "\\t",
        "--k-core",
        "0",
    )
    assert code == 0, err
    assert "interactions  20" in out


def test_error_prepare_table_without_columns_speaks_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_table(tmp_path / "log.csv", ",")
    line = assert_user_error(capsys, ["prepare", str(path), "--format", "table"], "--columns")
    assert "ColumnMapping(" not in line


@pytest.mark.parametrize(
    ("columns", "fragments"),
    [
        ("{user: uid, item: iid, time: ts}", ["'time'", "timestamp"]),
        ("{user: uid, time: ts}", ["'time'", "'item'", "user, item, timestamp, rating"]),
        ("{user: uid, item: iid", ["not a YAML mapping"]),
        ("uid,iid", ["expected a mapping"]),
    ],
)
def test_error_bad_columns_one_line(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    tmp_path: Path,
    columns: str,
    fragments: list[str],
) -> None:
    path = write_table(tmp_path / "log.csv", ",")
    line = assert_user_error(
        capsys, ["prepare", str(path), "--format", "table", "--columns", columns], "--columns"
    )
    assert "pydantic" not in line
    for fragment in fragments:
        assert fragment in line, line
    if columns.endswith("}"):  # the same mistake in a train config names data.columns
        line = assert_user_error(
            capsys,
            [
                "-q",
                "train",
                str(config_file),
                "--set",
                f"data.dataset={path}",
                "--set",
                "data.format=table",
                "--set",
                f"data.columns={columns}",
            ],
            "data.columns",
            *fragments,
        )
        assert "pydantic" not in line


# ------------------------------------------------------------------------------- train
def test_train_with_overrides(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    code, out, _ = run_cli(
        capsys,
        "-q",
        "train",
        str(config_file),
        "--set",
        "train.epochs=1",
        "--set",
        "name=cli-run",
        "--set",
        "model.num_blocks=2",
    )
    assert code == 0
    run_dir = tmp_path / "runs" / "cli-run"
    assert f"run directory: {run_dir}" in out
    assert "test  sampled" in out and "hit@10=" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_run"] == 1
    ckpt = load_checkpoint(run_dir)
    assert ckpt.config.model.num_blocks == 2
    assert len(ckpt.model.encoder.blocks) == 2  # type: ignore[attr-defined]
    # the CLI lets INFO records through to the run's own log even with -q
    log = (run_dir / "run.log").read_text()
    assert "300 users, 60 items" in log and "results written to" in log


# ---------------------------------------------------------------------------- evaluate
def test_evaluate_table_and_json(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    run = str(trained_run.run_dir)
    code, out, _ = run_cli(capsys, "-q", "evaluate", run, "--protocol", "sampled")
    assert code == 0
    assert "test split, sampled protocol (300 users)" in out
    assert "hit" in out and "ndcg" in out and "mrr" in out
    code, out, _ = run_cli(capsys, "-q", "evaluate", run, "--json")
    assert code == 0
    metrics = json.loads(out)
    assert set(metrics) == {"sampled", "full"}
    for protocol in ("sampled", "full"):
        assert metrics[protocol] == pytest.approx(trained_run.results["test"][protocol])
    code, out, _ = run_cli(
        capsys, "-q", "evaluate", run, "--json", "--stage", "valid", "--max-users", "50"
    )
    assert code == 0
    assert set(json.loads(out)) == {"sampled", "full"}


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_error_evaluate_max_users(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult, bad: str
) -> None:
    assert_user_error(
        capsys, ["evaluate", str(trained_run.run_dir), "--max-users", bad], "--max-users", bad
    )


def test_error_evaluate_lightning_checkpoint(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    last = trained_run.run_dir / "checkpoints" / "last.ckpt"
    assert last.exists()
    line = assert_user_error(capsys, ["evaluate", str(last)], str(last), "Lightning", "best.pt")
    assert "format version" not in line


def train_denoiser_run(
    planted_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sections: Any
) -> Path:
    """A one-epoch SASRec+Denoiser run on the planted data (``sections`` update its config)."""
    from recdenoiser.data.cache import CACHE_DIR_ENV
    from recdenoiser.training.runner import train
    from tests.conftest import make_run_config

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    config = make_run_config(
        planted_file, tmp_path / "runs", train={"epochs": 1}, denoiser={"enabled": True}, **sections
    )
    return train(config).run_dir


def test_evaluate_inference_mask_override(
    capsys: pytest.CaptureFixture[str],
    planted_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recdenoiser.denoiser import AttentionMasks
    from recdenoiser.training.checkpoint import save_checkpoint

    run_dir = train_denoiser_run(planted_file, tmp_path, monkeypatch, name="den")
    # keep probabilities of 0.3 everywhere: the paper's rule removes every entry, "expected" none
    ckpt = load_checkpoint(run_dir)
    masks = ckpt.model.mask_provider  # type: ignore[attr-defined]
    assert isinstance(masks, AttentionMasks)
    masks.phi.data.fill_(-0.8473)
    save_checkpoint(run_dir / "checkpoints" / "best.pt", ckpt.model, ckpt.config, ckpt.dataset)
    results = {}
    for mode in ("soft", "binary", "expected"):
        code, out, _ = run_cli(
            capsys, "-q", "evaluate", str(run_dir), "--json", "--inference-mask", mode
        )
        assert code == 0
        results[mode] = json.loads(out)["sampled"]
    assert results["soft"] == results["binary"]  # nothing is above 0.5: both drop everything
    assert results["expected"] != results["soft"]


def test_noise_report_on_a_run_trained_with_noise(
    capsys: pytest.CaptureFixture[str],
    planted_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--user shows the corrupted history the model was trained on, flagging injected items."""
    from recdenoiser.data import LeaveOneOutSplit, inject_noise

    noisy_data = {"noise_ratio": 0.3, "noise_seed": 5}
    run_dir = train_denoiser_run(planted_file, tmp_path, monkeypatch, name="noisy", data=noisy_data)
    ckpt = load_checkpoint(run_dir)
    split = LeaveOneOutSplit.from_dataset(ckpt.dataset)
    noisy, noise = inject_noise(split, 0.3, 5)
    users = [u for u in range(ckpt.dataset.n_users) if len(split.train_sequence(u))]
    user = max(
        users,
        key=lambda u: int(
            noise.replaced[noisy.train_offsets[u] : noisy.train_offsets[u + 1]].sum()
        ),
    )
    raw = str(ckpt.dataset.user_ids[user])
    code, out, _ = run_cli(capsys, "noise-report", str(run_dir), "--user", raw, "--json")
    assert code == 0
    rows = json.loads(out)
    lo, hi = noisy.train_offsets[user], noisy.train_offsets[user + 1]
    assert [r["item"] for r in rows] == [
        str(ckpt.dataset.item_ids[i]) for i in noisy.train_items[lo:hi]
    ]
    assert [r["injected"] for r in rows] == noise.replaced[lo:hi].tolist()
    assert any(r["injected"] for r in rows)
    assert all(0.0 <= r["keep"] <= 1.0 for r in rows)
    code, out, _ = run_cli(capsys, "noise-report", str(run_dir), "--user", raw)
    assert code == 0 and "30% of training items replaced (seed 5)" in out.splitlines()[0]
    code, out, _ = run_cli(capsys, "noise-report", str(run_dir), "--json")
    summary = json.loads(out)
    assert summary["n_injected"] == int(noise.replaced.sum())  # max_len 20 covers every history
    assert 0.0 <= summary["roc_auc"] <= 1.0


def test_error_inference_mask_without_denoiser(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    assert_user_error(
        capsys,
        ["evaluate", str(trained_run.run_dir), "--inference-mask", "expected"],
        "no Rec-Denoiser attention masks",
    )


# --------------------------------------------------------------------------- recommend
def test_recommend_users(capsys: pytest.CaptureFixture[str], trained_run: RunResult) -> None:
    run = str(trained_run.run_dir)
    dataset = load_checkpoint(run).dataset
    code, out, _ = run_cli(capsys, "recommend", run, "--users", "1", "17", "-k", "5", "--json")
    assert code == 0
    recs = json.loads(out)
    assert [r["query"] for r in recs] == ["1", "17"]
    for rec in recs:
        seen = {dataset.item_ids[i] for i in dataset.sequence(dataset.user_index(rec["query"]))}
        assert len(rec["items"]) == 5
        assert not seen.intersection(rec["items"])
        assert rec["scores"] == sorted(rec["scores"], reverse=True)
    # all items: without --include-seen the history is left out, with it nothing is
    code, out, _ = run_cli(capsys, "recommend", run, "--users", "1", "-k", "60", "--json")
    seen = {dataset.item_ids[i] for i in dataset.sequence(dataset.user_index("1"))}
    assert set(json.loads(out)[0]["items"]) == set(dataset.item_ids[1:]) - seen
    code, out, _ = run_cli(
        capsys, "recommend", run, "--users", "1", "-k", "60", "--include-seen", "--json"
    )
    assert code == 0
    assert sorted(json.loads(out)[0]["items"]) == sorted(dataset.item_ids[1:])


def test_recommend_history_follows_planted_successor(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    run = str(trained_run.run_dir)
    code, out, _ = run_cli(capsys, "recommend", run, "--history", "5", "6", "7", "-k", "3")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "history [5 6 7]:"
    ranked = [line.split()[1] for line in lines[1:]]
    assert len(ranked) == 3
    assert ranked[0] == "8"  # the planted successor of 7
    assert not {"5", "6", "7"}.intersection(ranked)
    code, out, _ = run_cli(
        capsys, "recommend", run, "--history", "5", "6", "7", "-k", "60", "--include-seen"
    )
    assert code == 0
    ranked = [line.split()[1] for line in out.strip().splitlines()[1:]]
    assert len(ranked) == 60 and {"5", "6", "7"} <= set(ranked)


# ------------------------------------------------------------------------- user errors
def test_error_unknown_config_key(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    assert_user_error(
        capsys,
        ["train", str(config_file), "--set", "model.hiden_size=8"],
        "model.hiden_size",
        "hidden_size",
        "num_blocks",
    )


def test_error_unknown_key_in_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    assert_user_error(capsys, ["train", str(path)], "train.epoch", "epochs", str(path))


def test_error_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_user_error(capsys, ["train", str(tmp_path / "missing.yaml")], "missing.yaml")


def test_error_missing_data_file(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-data.txt"
    assert_user_error(
        capsys, ["train", str(config_file), "--set", f"data.dataset={missing}"], str(missing)
    )
    assert_user_error(capsys, ["prepare", str(missing), "--format", "user-item"], str(missing))


def test_error_malformed_data_line(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1\n1 2\n1 3\n2 one\n2 2\n")
    line = assert_user_error(
        capsys, ["train", str(config_file), "--set", f"data.dataset={bad}"], str(bad)
    )
    assert f"{bad}:4" in line
    line = assert_user_error(capsys, ["prepare", str(bad), "--format", "user-item"], str(bad))
    assert f"{bad}:4" in line


def test_error_unknown_ids(capsys: pytest.CaptureFixture[str], trained_run: RunResult) -> None:
    run = str(trained_run.run_dir)
    assert_user_error(capsys, ["recommend", run, "--users", "1", "nobody"], "'nobody'", "user")
    assert_user_error(capsys, ["recommend", run, "--history", "5", "999"], "'999'", "item")


def test_ids_follow_the_readers_spelling_rule(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    """'1.0' is how a float column spells user 1: the readers store '1', and the CLI finds it."""
    run = str(trained_run.run_dir)
    code, out, _ = run_cli(capsys, "recommend", run, "--users", "1.0", "-k", "3", "--json")
    _, same, _ = run_cli(capsys, "recommend", run, "--users", "1", "-k", "3", "--json")
    assert code == 0 and json.loads(out)[0]["items"] == json.loads(same)[0]["items"]
    code, out, _ = run_cli(capsys, "recommend", run, "--history", "5.0", "6", "7.00", "-k", "1")
    assert code == 0 and out.splitlines()[1].split()[1] == "8"
    assert_user_error(capsys, ["recommend", run, "--users", "1.5"], "'1.5'", "user")


def test_error_users_and_history(
    capsys: pytest.CaptureFixture[str], trained_run: RunResult
) -> None:
    run = str(trained_run.run_dir)
    both = ["recommend", run, "--users", "1", "--history", "5"]
    assert_user_error(capsys, both, "--users", "--history")
    assert_user_error(capsys, ["recommend", run], "--users", "--history")


def test_error_bad_k(capsys: pytest.CaptureFixture[str], trained_run: RunResult) -> None:
    assert_user_error(
        capsys, ["recommend", str(trained_run.run_dir), "--users", "1", "-k", "0"], "k"
    )


def test_error_checkpoint_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pt"
    assert_user_error(capsys, ["recommend", str(missing), "--users", "1"], str(missing))
    assert_user_error(capsys, ["evaluate", str(tmp_path / "no-run")], "no-run")


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04 definitely not a torch file", b"garbage", b""],
    ids=["zip-like", "text", "empty"],
)
def test_error_corrupt_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    """A corrupt checkpoint is a one-line user error.

    checkpoint.load_checkpoint puts torch's exception text into the message; for a plain-text
    file that text spans several lines (torch's WeightsUnpickler explanation), so the CLI prints
    an ``error:`` line followed by more lines.
    """
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(content)
    assert_user_error(capsys, ["evaluate", str(corrupt)], str(corrupt))
    assert_user_error(capsys, ["recommend", str(corrupt), "--history", "1"], str(corrupt))


# -------------------------------------------------------------------------- subprocess
def run_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "recdenoiser.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_recommend_and_error(trained_run: RunResult, tmp_path: Path) -> None:
    run = str(trained_run.run_dir)
    proc = run_subprocess("recommend", run, "--users", "3", "-k", "4", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recs = json.loads(proc.stdout)
    assert recs[0]["query"] == "3" and len(recs[0]["items"]) == 4
    proc = run_subprocess("recommend", str(tmp_path / "missing.pt"), "--users", "3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        line for line in proc.stderr.splitlines() if line.startswith("error:")
    ]
    assert proc.stderr.count("error:") == 1
    assert proc.stdout == ""


def test_error_resume_checks_before_writing_anything(
    capsys: pytest.CaptureFixture[str], config_file: Path, trained_run: RunResult, tmp_path: Path
) -> None:
    original = config_file.read_text()
    assert_user_error(
        capsys,
        ["-q", "train", str(config_file), "--resume", str(tmp_path / "typo.ckpt")],
        "no such checkpoint file",
    )
    assert config_file.read_text() == original
    assert not (tmp_path / "run.log").exists()
    best = trained_run.run_dir / "checkpoints" / "best.pt"
    assert_user_error(
        capsys,
        ["-q", "train", str(config_file), "--resume", str(best)],
        "training-state checkpoint",
    )
    last = trained_run.run_dir / "checkpoints" / "last.ckpt"
    stored = (trained_run.run_dir / "config.yaml").read_text()
    assert_user_error(
        capsys,
        [
            "-q",
            "train",
            str(trained_run.run_dir / "config.yaml"),
            "--resume",
            str(last),
            "--set",
            "model.hidden_size=32",
        ],
        "model.hidden_size",
    )
    assert (trained_run.run_dir / "config.yaml").read_text() == stored


def test_error_run_name_reused(
    capsys: pytest.CaptureFixture[str], config_file: Path, trained_run: RunResult
) -> None:
    assert_user_error(
        capsys,
        [
            "-q",
            "train",
            str(config_file),
            "--set",
            f"output_dir={trained_run.run_dir.parent}",
            "--set",
            f"name={trained_run.run_dir.name}",
        ],
        "already exists",
    )


def test_error_refused_model_settings_leave_no_run_directory(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for _ in range(2):  # the same name again: still the same error, not "already exists"
        assert_user_error(
            capsys,
            [
                "-q",
                "train",
                str(config_file),
                "--set",
                "model.name=caser",
                "--set",
                "denoiser.enabled=true",
                "--set",
                f"output_dir={out}",
                "--set",
                "name=refused",
            ],
            "denoiser.enabled needs a self-attentive model; 'caser' is not one",
        )
    assert not (out / "refused").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.max_len=0", "max_len"),
        ("model.dropout=1.5", "dropout"),
        ("train.betas=[2, 3]", "betas"),
        ("train.num_threads=-2", "num_threads"),
        ("model.hidden_size=true", "hidden_size"),
        ("denoiser.mask_lr=-1", "mask_lr"),
        ("eval.max_users=0", "max_users"),
        ("train.monitor=nope", "train.monitor"),
    ],
)
def test_error_config_values_checked_up_front(
    capsys: pytest.CaptureFixture[str], config_file: Path, override: str, key: str
) -> None:
    assert_user_error(capsys, ["-q", "train", str(config_file), "--set", override], key)


def test_error_data_path_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_user_error(
        capsys, ["-q", "prepare", str(tmp_path), "--format", "user-item"], "is a directory"
    )
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    assert_user_error(capsys, ["-q", "prepare", str(bad), "--format", "user-item"], "bad.gz")


def test_recommend_limits_k_per_user(trained_run: RunResult) -> None:
    from recdenoiser.errors import RecDenoiserError
    from recdenoiser.inference import Recommender

    rec = Recommender.from_checkpoint(trained_run.run_dir)
    users = [str(u) for u in rec.dataset.user_ids[:3]]
    results = rec.recommend_users(users, k=rec.dataset.n_items)
    for raw, result in zip(users, results, strict=True):
        seen = set(rec.dataset.sequence(rec.dataset.user_index(raw)).tolist())
        assert len(result.items) == rec.dataset.n_items - len(seen)
        assert not {rec.dataset.item_index(i) for i in result.items} & seen
    with pytest.raises(RecDenoiserError, match="as a list"):
        rec.recommend_users(users[0])  # type: ignore[arg-type]
    with pytest.raises(RecDenoiserError, match="positive integer"):
        rec.recommend_users(users, k=2.5)  # type: ignore[arg-type]


def test_ctrl_c_during_training_says_how_to_resume(config_file: Path, tmp_path: Path) -> None:
    """SIGINT mid-training: exit 130, one line naming the checkpoint to --resume from."""
    import signal
    import time

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["RECDENOISER_CACHE_DIR"] = str(tmp_path / "cache")
    args = ["train", str(config_file), "--set", "train.epochs=100000", "--set", "name=long"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recdenoiser.cli", "-q", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = Path(load_config_output_dir(config_file)) / "long" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted: training interrupted; continue with --resume {last}" in err


def load_config_output_dir(path: Path) -> str:
    from recdenoiser.config import load_config

    return load_config(path).output_dir
