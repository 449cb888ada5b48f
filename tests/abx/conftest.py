"""ABX fixtures: a session over the run without training, and its server on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepfx.abx.server import AbxApp, AbxServer, create_app


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    """Where this test's answers go (absent at first)."""
    return tmp_path / "abx" / "results.csv"


@pytest.fixture
def app(fake_run: tuple[Path, dict], results_path: Path) -> AbxApp:
    """A session of every effect × arch of ``fake_run`` (2 trials each: tiny params)."""
    root, params = fake_run
    return create_app(params, results_path, clean_dir=root / "data/clean",
                      processed_root=root / "data/processed", reports_dir=root / "reports",
                      listener="tester", seed=1)


@pytest.fixture
def server(app: AbxApp) -> Iterator[AbxServer]:
    """``app`` served on 127.0.0.1 from a background thread."""
    with AbxServer(app) as srv:
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield srv
        srv.shutdown()
        thread.join(5)
