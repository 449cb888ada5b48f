"""reports/index.html of a run without training, opened from disk in a real headless Chromium:
screenshots, figures and players that load, column sorting, and no network request."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from deepfx.pipeline import trained_models


pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def open_report(page, root: Path) -> list[str]:
    """Open the report from disk with every lazy image loaded; returns the URLs requested."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((root / "reports/index.html").as_uri())
    page.evaluate("document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function(
        "Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)")
    return requests


def assert_screenshot(path: Path, min_size: tuple[int, int]) -> None:
    """``path`` is a PNG of at least ``min_size`` pixels with real, varied content."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.width >= min_size[0] and image.height >= min_size[1]
        grey = image.convert("L")
        lo, hi = grey.getextrema()
        assert hi - lo > 150  # dark text on a light page, not a blank canvas
        assert len(grey.getcolors(maxcolors=256 * 256) or range(257)) > 64  # figures, shading, text


def test_overview_screenshot(page, fake_report, tmp_path):
    root, params = fake_report
    requests = open_report(page, root)
    shot = tmp_path / "overview.png"
    page.screenshot(path=str(shot))
    assert_screenshot(shot, (1400, 1000))
    full = tmp_path / "report.png"
    page.screenshot(path=str(full), full_page=True)
    assert_screenshot(full, (1400, 3000))
    assert all(url.startswith("file://") for url in requests), "the report must work offline"

    rows = page.locator("#overview-table tbody tr")
    assert rows.count() == len(trained_models(params))
    for effect in params["effects"]:
        assert page.locator(f"#fx-{effect} h2").inner_text().startswith(effect)


def test_every_figure_and_player_loads(page, fake_report):
    root, _ = fake_report
    open_report(page, root)
    sizes = page.evaluate("Array.from(document.images).map(img => [img.naturalWidth, img.naturalHeight])")
    assert sizes and all(w >= 500 and h >= 300 for w, h in sizes)
    durations = page.evaluate("""() => Promise.all(Array.from(document.querySelectorAll('audio'))
        .map(audio => new Promise((resolve, reject) => {
            audio.addEventListener('error', () => reject(new Error(audio.src)));
            audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
            audio.preload = 'auto';
            audio.load();
        })))""")
    assert durations and all(d > 0 for d in durations)


def test_clicking_a_heading_sorts_the_overview(page, fake_report):
    root, _ = fake_report
    open_report(page, root)
    table = pd.read_csv(root / "reports/metrics.csv")

    def shown() -> list[tuple[str, str]]:
        cells = page.eval_on_selector_all(
            "#overview-table tbody tr",
            "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent.replace('★', '').trim()])")
        return [tuple(c) for c in cells]

    page.click("#overview-table th:nth-child(3)")  # ESR, ascending
    by_esr = table.sort_values("esr")
    assert shown() == list(zip(by_esr["effect"], by_esr["arch"]))
    page.click("#overview-table th:nth-child(3)")  # again: descending
    assert shown() == list(zip(by_esr["effect"], by_esr["arch"]))[::-1]
    assert page.get_attribute("#overview-table th:nth-child(3)", "aria-sort") == "descending"
