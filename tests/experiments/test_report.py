"""The report: Markdown, CSV, PNG, SVG and HTML files, checked on disk and in Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from recdenoiser.cli.main import main
from recdenoiser.experiments.report import build_report

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture(scope="module")
def report(report_grid: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(report_grid["db"], out)
    return out


def test_report_files(report: Path) -> None:
    md = (report / "report.md").read_text()
    assert "## tinynoise" in md and "8 done, 0 failed" in md
    assert "| 0.2 | denoiser | full | 2 |" in md  # noise 0.2, +Denoiser, two seeds
    assert "Relative improvement of +Denoiser" in md
    summary = pd.read_csv(report / "tables" / "tinynoise_summary.csv")
    assert len(summary) == 4 and set(summary["seeds"]) == {2}
    assert {"sampled hit@10 mean", "sampled hit@10 std", "full ndcg@10 mean"} <= set(summary)
    improvement = pd.read_csv(report / "tables" / "tinynoise_improvement.csv")
    assert len(improvement) == 2  # one +Denoiser row per noise ratio, against SASRec
    assert set(improvement["common seeds"]) == {2}
    assert (improvement["users hit@10"] > 0).all()
    assert improvement["p-value hit@10 (t)"].between(0, 1).all()
    for name in ("hit10_vs_noise_ratio", "mask_keep", "user_history"):
        png = report / "figures" / f"tinynoise_{name}.png"
        svg = report / "figures" / f"tinynoise_{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert "<svg" in svg.read_text()[:2000], name
        assert f"figures/tinynoise_{name}.png" in md
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "<table" in html and "denoiser" in html


def test_report_cli_for_a_grid_file_and_quick_label(
    report_grid: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = tmp_path / "copy.sqlite"
    src = sqlite3.connect(report_grid["db"])
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.execute("UPDATE cells SET quick=1")  # pretend these were quick runs
    dst.commit()
    dst.close()
    out = tmp_path / "rep"
    argv = ["-q", "report", str(report_grid["grid"]), "--db", str(db), "--out", str(out)]
    assert main([*argv, "--no-figures"]) == 0
    assert "report.html" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "## tinynoise [quick]" in md and "| quick | 2 |" in md
    assert "[quick]" in (out / "report.html").read_text()
    assert (out / "tables" / "tinynoise-quick_summary.csv").exists()
    assert main(["-q", "report", str(tmp_path / "missing.sqlite")]) == 2


CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  var p = document.createElement("pre");
  p.id = "img-check";
  p.textContent = "rendered " + ok + " of " + imgs.length;
  document.body.appendChild(p);
});
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium) - HTML not checked in a browser",
)
def test_html_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    page = report / "report-check.html"  # a copy with a script that reports image sizes
    page.write_text(
        (report / "report.html").read_text().replace("</body>", CHECK_IMAGES + "</body>")
    )
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert '<pre id="img-check">rendered 3 of 3</pre>' in dom, dom[-500:]
    assert "<td>denoiser</td>" in dom and "<td>sasrec</td>" in dom
    assert "Relative improvement of +Denoiser" in dom
