"""Which source files each stage runs (deepfx.stage_code), and digests that change only with them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deepfx.stage_code import CODE_DIR, code_files, code_key, write_digests

from conftest import ROOT


def package(files: list[str]) -> set[str]:
    return {f.removeprefix("src/deepfx/") for f in files}


def test_each_architecture_brings_its_own_modules_and_what_they_import() -> None:
    assert {"train.py", "models/fir.py", "models/base.py"} <= package(code_files("train", "fir", ROOT))
    assert {"models/tcn.py", "models/fir.py", "models/tcn_fir.py"} <= package(code_files("train", "tcn_fir", ROOT))
    cnn = package(code_files("train", "cnn", ROOT))
    assert "models/cnn.py" in cnn and "models/fir.py" not in cnn and "models/tcn.py" not in cnn
    # the effect's own model runs the same code as a baseline of its arch
    assert code_files("evaluate_model", "rnn", ROOT) == code_files("evaluate", "rnn", ROOT)
    assert "evaluate.py" in package(code_files("evaluate", "rnn", ROOT))


def test_stages_without_an_arch_and_what_is_left_out() -> None:
    plots = package(code_files("plots", None, ROOT))
    assert "plots.py" in plots and "train.py" not in plots and not any(f.startswith("models/") for f in plots)
    report = package(code_files("report", None, ROOT))
    assert {"report.py", "plots.py", "templates/report.html"} <= report
    assert {"effects/lv2.py", "effects/pedalboard_fx.py"} <= package(code_files("process", None, ROOT))
    everything = set().union(*(package(code_files(s, "tcn_fir", ROOT)) for s in ("generate", "process", "train", "evaluate", "plots", "report")))
    assert "cli.py" not in everything and "__init__.py" not in everything
    assert all((ROOT / "src/deepfx" / f).is_file() for f in everything)
    assert code_key("plots_model") == "plots" and code_key("train_model", "fir") == "train-fir"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tmp_path


def digests(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (root / CODE_DIR).iterdir()}


def changed_after(root: Path, edited: str) -> set[str]:
    before = digests(root)
    with open(root / "src/deepfx" / edited, "a") as f:
        f.write("\n# an edit\n")
    write_digests(root)
    after = digests(root)
    assert set(after) == set(before)
    return {k for k in after if after[k] != before[k]}


def test_a_change_moves_only_the_digests_of_the_stages_that_run_it(project: Path) -> None:
    files = write_digests(project)
    assert {"generate", "process", "plots", "report", "train-fir", "evaluate-pitch_shifter"} <= {f.name for f in files}
    assert changed_after(project, "plots.py") == {"plots", "report"}
    assert changed_after(project, "models/fir.py") == {
        f"{stage}-{arch}" for stage in ("train", "evaluate") for arch in ("fir", "tcn_fir", "rnn")
    }
    assert changed_after(project, "cli.py") == set()


def test_an_unchanged_digest_is_not_rewritten_and_a_stale_one_goes(project: Path) -> None:
    write_digests(project)
    plots = project / CODE_DIR / "plots"
    stamp = plots.stat().st_mtime_ns
    (project / CODE_DIR / "train-gone").write_text("old\n")
    write_digests(project)
    assert plots.stat().st_mtime_ns == stamp
    assert not (project / CODE_DIR / "train-gone").exists()
