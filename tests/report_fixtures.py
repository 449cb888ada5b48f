"""Fixtures of the report and ABX tests: a run without training, and a headless Chromium.

``fake_run``: the tiny configuration's real clean data (deepfx.generate) and real effects
(pedalboard), with each model's "predictions" a fixed blend of the effect's output and the
clean input instead of a trained model, plus the metrics.json and history.csv the pipeline
would write. ``fake_report``: its figures (deepfx.plots) and report (deepfx.report).
``page``: a page of Debian's chromium driven by Playwright; the tests using it skip, naming
what is missing, when chromium or Playwright is not installed. Import the fixtures you use.

Each test module or conftest that imports a fixture defines its own copy of it, so the costly
session-wide things (the run, the browser) live once in ``_SHARED`` and every copy uses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deepfx.audio import read_audio, write_audio
from deepfx.config import validate_params
from deepfx.effects import process_dataset
from deepfx.generate import generate_dataset
from deepfx.losses import esr, mrstft
from deepfx.plots import make_plots
from deepfx.report import build_report
from deepfx.pipeline import models_of, trained_models

from conftest import tiny_params

CHROMIUM = Path("/usr/bin/chromium")
#: Headless chromium as root without a network: no sandbox, no GPU, no background lookups.
#: (Playwright starts it with a fresh temporary profile, its --user-data-dir.)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Each arch's fake prediction: (share of the effect's output, the rest clean input; gain).
BLEND = {"cnn": (0.6, 1.6), "tcn": (0.95, 1.0), "fir": (0.97, 1.0)}
HISTORY = "epoch,train_loss,valid_loss,seconds\n1,0.9,0.8,2.0\n2,0.4,0.45,2.1\n3,0.2,0.3,2.0\n"

_SHARED: dict[str, object] = {}  # run, report, browser: made once per test session


def _fake_evaluation(root: Path, params: dict, effect: str, arch: str) -> None:
    """Predictions, metrics.json and history.csv of one effect × arch, as the pipeline lays them out."""
    rate = params["sample_rate"]
    out = root / "reports/effects" / effect / arch
    (out / "predictions").mkdir(parents=True)
    files, energy = [], []
    for clean_path in sorted((root / "data/clean/test").glob("*.wav")):
        clean = read_audio(clean_path, rate)
        target = read_audio(root / "data/processed" / effect / "test" / clean_path.name, rate)
        share, gain = BLEND[arch]
        model = (gain * (share * target + (1 - share) * clean)).astype(np.float32)
        write_audio(out / "predictions" / clean_path.name, model, rate)
        energy.append(float(np.sum(np.square(target, dtype=np.float64))))
        files.append({"name": clean_path.name, "esr": esr(model, target), "esr_clean": esr(clean, target),
                      "mrstft": mrstft(model, target), "mrstft_clean": mrstft(clean, target)})
    scores = {k: float(np.average([f[k] for f in files], weights=energy))
              for k in ("esr", "esr_clean", "mrstft", "mrstft_clean")}
    metrics = {
        "effect": effect, "arch": arch, **scores,
        "closer_than_clean": scores["esr"] < scores["esr_clean"],
        "closer_on_every_file": all(f["esr"] < f["esr_clean"] for f in files),
        "n_params": {"cnn": 12345, "tcn": 5201, "fir": 128}[arch], "receptive_field": 64,
        "train_seconds": {"cnn": 81.25, "tcn": 123.5, "fir": 3.5}[arch],
        "inference_rtf": {"cnn": 0.0125, "tcn": 0.004, "fir": 0.001}[arch], "files": files,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    history = root / "models" / effect / arch / "history.csv"
    history.parent.mkdir(parents=True)
    history.write_text(HISTORY)


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(project root, checked tiny params) of a run of every effect × arch without training."""
    if "run" not in _SHARED:
        root = tmp_path_factory.mktemp("fake_run")
        params = validate_params(tiny_params())
        generate_dataset(params, root / "data/clean")
        for effect, spec in params["effects"].items():
            process_dataset(effect, spec, root / "data/clean", root / "data/processed" / effect,
                            params["sample_rate"])
            for arch in models_of(params, effect):
                _fake_evaluation(root, params, effect, arch)
        _SHARED["run"] = (root, params)
    return _SHARED["run"]


@pytest.fixture(scope="session")
def fake_report(fake_run: tuple[Path, dict]) -> tuple[Path, dict]:
    """``fake_run`` with every effect × arch's figures and excerpts, and reports/index.html."""
    root, params = fake_run
    if "report" not in _SHARED:
        for effect, arch in trained_models(params):
            make_plots(effect, arch, params, root / "data/clean",
                       root / "data/processed" / effect,
                       root / "reports/effects" / effect / arch / "predictions",
                       root / "models" / effect / arch / "history.csv",
                       root / "reports/effects" / effect / arch)
        build_report(sorted((root / "reports/effects").glob("*/*/metrics.json")), root / "reports")
        _SHARED["report"] = True
    return root, params


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Debian's headless chromium, launched once per test session by Playwright and closed
    when the last copy of this fixture is torn down."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    if "browser" not in _SHARED:
        playwright = sync_api.sync_playwright().start()
        _SHARED.update(playwright=playwright, users=0, browser=playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS))
    _SHARED["users"] += 1
    yield _SHARED["browser"]
    _SHARED["users"] -= 1
    if not _SHARED["users"]:
        _SHARED.pop("browser").close()
        _SHARED.pop("playwright").stop()


@pytest.fixture
def page(chromium) -> Iterator[object]:
    """A fresh page (own context: no shared cache or storage) of 1400 × 1000 CSS pixels."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
