"""Shared helpers of the benchmark scripts: machine header, timing, memory, data, subprocesses.

The scripts import this module as ``common`` (they are run as ``python benchmarks/NAME.py``, which
puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "RECDENOISER_DATA_DIR"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
RESULT_PREFIX = "BENCHMARK-RESULT "


# ----------------------------------------------------------------------------- arguments
def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--max-len``, ``--device``, ``--threads``, ``--data-dir``, ``--seed``."""
    parser.add_argument(
        "--dataset",
        default="games",
        help="registry name (games, ml-1m, beauty, toys, ...) or a file path (default: games)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=None,
        help="model input length (default: the registry's, 200 for ml-1m and 50 otherwise)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"data folder (default: ${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def setup_torch(threads: int | None, seed: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA device is available")
    return name


# ----------------------------------------------------------------------------- machine header
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_count() -> str:
    logical = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = logical
    if usable != logical:
        return f"{usable} usable of {logical} logical"
    return f"{logical} logical"


def recdenoiser_version() -> str:
    import recdenoiser

    return str(recdenoiser.__version__)


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recdenoiser": recdenoiser_version(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "platform": platform.platform(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    with contextlib.suppress(OSError):
        info["load_average"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return info


def command_line() -> str:
    """The command that was run, with the script path relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO_ROOT))
    except ValueError:
        shown = sys.argv[0]
    return "python " + shlex.join([shown, *sys.argv[1:]])


def print_header(title: str, device: str) -> dict[str, Any]:
    info = machine_info(device)
    print(f"## {title}\n")
    print("```")
    print(command_line())
    print("```\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()
    return info


# ----------------------------------------------------------------------------- timing, memory
class Timer:
    """Wall-clock seconds of a block; on CUDA, the device is synchronised at both ends."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.seconds = 0.0

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def __enter__(self) -> Timer:
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_cuda_mb(device: str) -> float | None:
    if device != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / (1024 * 1024)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ----------------------------------------------------------------------------- data
def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_DIR


def dataset_max_len(name: str, max_len: int | None) -> int:
    if max_len is not None:
        return max_len
    from recdenoiser.training.runner import dataset_defaults

    return dataset_defaults(name)[0]


def load_split(name: str, data_dir_arg: str | None) -> Any:
    """The leave-one-out split of a registry dataset (or a file path), via the project's cache."""
    from recdenoiser.data import LeaveOneOutSplit, load_dataset

    dataset = load_dataset(name, data_dir=data_dir(data_dir_arg))
    return LeaveOneOutSplit.from_dataset(dataset)


def describe_split(split: Any) -> str:
    return (
        f"{split.n_users:,} users, {split.n_items:,} items, "
        f"{len(split.train_items):,} training interactions"
    )


# ----------------------------------------------------------------------------- subprocesses
def emit_result(result: dict[str, Any]) -> None:
    """Child side: print the result as one machine-readable line on stdout."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(argv: list[str]) -> dict[str, Any]:
    """Run ``python argv...`` in a fresh process; return its result (or an ``error`` entry).

    The child's stderr (logs, tracebacks) goes straight to ours; its stdout is scanned for the
    result line.
    """
    proc = subprocess.run(
        [sys.executable, *argv], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, check=False
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    return {"error": f"exit status {proc.returncode}, no result (see the log above)"}


def child_arguments(args: argparse.Namespace, skip: Sequence[str] = ("cases", "json")) -> list[str]:
    """Re-encode the parsed options (except ``skip``) as command-line arguments for a child."""
    out: list[str] = []
    for key, value in vars(args).items():
        if key in skip or key == "one" or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        else:
            out.extend([flag, str(value)])
    return out


# ----------------------------------------------------------------------------- output
def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nresults written to {path}")
