"""Open real reports in headless Chromium: the page loads, every plot decodes, the screenshot is not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frostline.runs import compare
from frostline.runs.config import RunConfig
from frostline.runs.training import train
from tests.conftest import make_text_file

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium (make test installs it where apt is available)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [BROWSER, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", *args,
           page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _check_page(page: Path, tmp: Path, headings: list[str], min_images: int) -> None:
    dom = _chromium(page, tmp, "--dump-dom").stdout
    assert 'data-ready="1"' in dom, "the page's load handler did not run"
    images = re.findall(r"<img[^>]*>", dom)
    assert len(images) >= min_images
    assert all('data-loaded="1"' in img for img in images), "an embedded plot failed to decode"
    found = re.findall(r"<h2>(.*?)</h2>", dom)
    for heading in headings:
        assert any(h.startswith(heading) for h in found), f"missing section {heading!r}: {found}"
    shot = tmp / f"{page.stem}.png"
    _chromium(page, tmp, f"--screenshot={shot}", "--window-size=1200,2400")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.02, "the screenshot is blank"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_hf_dir):
    tmp = tmp_path_factory.mktemp("reports")
    base = {"model": f"hf:{tiny_hf_dir}", "data": make_text_file(tmp / "d.tsv", n=100), "text_column": "1",
            "label_column": "0", "epochs": 2, "batch_size": 8, "lr": 1e-3, "optimize": "f1"}
    run = train(RunConfig(**base, strategy="gradual", out=str(tmp / "run")), echo=lambda _s: None)
    cmp = compare(RunConfig(**base, out=str(tmp / "cmp")), ["linear-probe", "full"], echo=lambda _s: None)
    return tmp, run.out / "report.html", cmp.out / "report.html"


def test_run_report_in_browser(runs):
    tmp, page, _ = runs
    _check_page(page, tmp, ["Findings", "Metrics", "Learning curves", "Confusion matrix",
                            "Precision-recall trade-off", "Freeze plan"], min_images=3)
    text = page.read_text()
    assert "verdict-" in text and "threshold" in text and "http" not in text.split("<body>")[1]  # self-contained


def test_compare_report_in_browser(runs):
    tmp, _, page = runs
    # bars, cost against score, learning curves, and each strategy's confusion matrix
    _check_page(page, tmp, ["Strategy comparison", "What the evidence supports", "Learning curves",
                            "Findings: linear-probe", "Findings: full"], min_images=5)
    text = page.read_text()
    assert "base model" in text and "F1 change vs base" in text and "recommended:" in text
    assert 'alt="cost against score"' in text and 'alt="confusion matrix of full"' in text
