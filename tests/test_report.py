"""The HTML report and metrics.csv built from metrics.json files: fabricated metrics for the
details, a run without training (report_fixtures.fake_report) and the real tiny pipeline for
the whole."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from deepfx.audio import write_audio
from deepfx.errors import DeepfxError
from deepfx.plots import EXCERPTS, FIGURES
from deepfx.report import COLUMNS, build_report, heat_colour
from deepfx.pipeline import trained_models

from conftest import Project

METRICS = [
    {"effect": "low_pass", "arch": "tcn", "esr": 0.3, "esr_clean": 0.2, "mrstft": 2.5,
     "mrstft_clean": 1.5, "closer_than_clean": False, "closer_on_every_file": False,
     "n_params": 5201, "train_seconds": 95.5, "inference_rtf": 0.21},
    {"effect": "distortion", "arch": "cnn", "esr": 0.0421378, "esr_clean": 0.8123456,
     "mrstft": 1.2345678, "mrstft_clean": 3.21, "closer_than_clean": True,
     "closer_on_every_file": True, "n_params": 12345, "train_seconds": 81.37,
     "inference_rtf": 0.0123},
    {"effect": "distortion", "arch": "tcn", "esr": 0.0123456789, "esr_clean": 0.8123456,
     "mrstft": 0.9, "mrstft_clean": 3.21, "closer_than_clean": True,
     "closer_on_every_file": False, "n_params": 5201, "train_seconds": 120, "inference_rtf": 0.2},
    {"effect": "low_pass", "arch": "cnn", "esr": 0.15, "esr_clean": 0.2, "mrstft": 1.1,
     "mrstft_clean": 1.5, "closer_than_clean": True, "closer_on_every_file": True,
     "n_params": 12345, "train_seconds": 80.25, "inference_rtf": 0.011},
]
#: (effect, arch) in report order: by effect, then ESR (best first).
ORDER = [("distortion", "tcn"), ("distortion", "cnn"), ("low_pass", "cnn"), ("low_pass", "tcn")]


def write_run(reports: Path, metrics: dict, figures: bool = True) -> Path:
    """Write one effect × arch's metrics.json (with per-file rows) and, optionally, its PNGs
    and excerpt wavs, in ``reports``/{effect}/{arch}."""
    folder = reports / metrics["effect"] / metrics["arch"]
    folder.mkdir(parents=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps({**metrics, "files": [{"file": "a.wav", "esr": metrics["esr"]}]}))
    if figures:
        for name in FIGURES:
            matplotlib.image.imsave(folder / name, np.random.default_rng(0).random((8, 8)))
        for name in EXCERPTS.values():
            (folder / name).parent.mkdir(exist_ok=True)
            write_audio(folder / name, np.zeros(100, dtype=np.float32), 16000)
    return path


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A reports folder with two effects × two archs in reports/effects/{effect}/{arch}."""
    root = tmp_path / "reports"
    return root, [write_run(root / "effects", m) for m in METRICS]


class Page(HTMLParser):
    """Collects the overview table rows, section ids, links and tag names of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.audio: list[str] = []
        self.scripts: list[dict] = []
        self.tags: set[str] = set()
        self._in_body = False
        self._cell: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.links += [attrs[k] for k in ("href", "src") if k in attrs]
        self.images += [attrs["src"]] if tag == "img" else []
        self.audio += [attrs["src"]] if tag == "audio" else []
        self.scripts += [attrs] if tag == "script" else []
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append({"class": attrs.get("class"), "cells": []})
        elif tag == "td" and self._in_body:
            self._cell = {"text": "", "title": attrs.get("title")}
            self.rows[-1]["cells"].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def test_csv_holds_every_run_with_the_json_values(reports):
    root, files = reports
    build_report(files, root)
    table = pd.read_csv(root / "metrics.csv")
    assert list(table.columns) == list(COLUMNS)
    assert list(zip(table["effect"], table["arch"])) == ORDER
    expected = {(m["effect"], m["arch"]): m for m in METRICS}
    for row in table.to_dict(orient="records"):
        metrics = expected[(row["effect"], row["arch"])]
        assert row == {column: metrics[column] for column in COLUMNS}


def arch_text(cell: dict) -> str:
    """The arch cell's text without the ★ of the effect's best model."""
    return cell["text"].replace("★", "").strip()


def test_html_table_shows_the_json_values_colour_coded(reports):
    root, files = reports
    build_report(files, root)
    page = Page((root / "index.html").read_text(encoding="utf-8"))
    expected = {(m["effect"], m["arch"]): m for m in METRICS}
    assert [(r["cells"][0]["text"], arch_text(r["cells"][1])) for r in page.rows] == ORDER
    numeric = ["esr", "esr_clean", "mrstft", "mrstft_clean"]
    for row in page.rows:
        cells = row["cells"]
        metrics = expected[(cells[0]["text"], arch_text(cells[1]))]
        assert row["class"] == ("closer" if metrics["closer_than_clean"] else "not-closer")
        for cell, key in zip(cells[2:4] + cells[5:7], numeric):
            assert float(cell["title"]) == metrics[key]
            assert float(cell["text"]) == pytest.approx(metrics[key], rel=1e-3)
        gain = 10 * np.log10(metrics["esr_clean"] / metrics["esr"])
        assert float(cells[4]["title"]) == pytest.approx(gain)
        assert cells[4]["text"] == f"{gain:+.1f}"
        assert cells[7]["text"] == ("✓" if metrics["closer_than_clean"] else "✗")
        assert cells[8]["text"] == ("✓" if metrics["closer_on_every_file"] else "✗")
        assert int(cells[9]["text"].replace(",", "")) == metrics["n_params"]
        assert float(cells[10]["title"]) == metrics["train_seconds"]
        assert float(cells[11]["title"]) == pytest.approx(1 / metrics["inference_rtf"])
        assert float(cells[11]["text"].rstrip("×").replace(",", "")) == round(1 / metrics["inference_rtf"])


def test_best_model_of_each_effect_is_starred(reports):
    root, files = reports
    build_report(files, root)
    page = Page((root / "index.html").read_text(encoding="utf-8"))
    starred = [(r["cells"][0]["text"], arch_text(r["cells"][1])) for r in page.rows
               if "★" in r["cells"][1]["text"]]
    assert starred == [("distortion", "tcn"), ("low_pass", "cnn")]


def test_an_effect_judged_by_log_mel_stars_its_best_by_log_mel(tmp_path):
    """Pitch shift: the clean-like baseline has the lower ESR, the shifter the lower log-mel."""
    root = tmp_path / "reports"
    pitch = [
        {**METRICS[1], "effect": "pitch_shift", "arch": "cnn", "esr": 0.9, "log_mel": 6.0},
        {**METRICS[2], "effect": "pitch_shift", "arch": "pitch_shifter", "esr": 1.4, "log_mel": 1.5},
    ]
    files = [write_run(root / "effects", m) for m in [*METRICS, *pitch]]
    build_report(files, root, {"pitch_shift": "log_mel"})
    page = Page((root / "index.html").read_text(encoding="utf-8"))
    starred = {r["cells"][0]["text"]: arch_text(r["cells"][1]) for r in page.rows if "★" in r["cells"][1]["text"]}
    assert starred == {"distortion": "tcn", "low_pass": "cnn", "pitch_shift": "pitch_shifter"}
    assert 'title="lowest log-mel distance for this effect"' in (root / "index.html").read_text(encoding="utf-8")


def test_a_metric_the_files_lack_is_named(reports):
    root, files = reports
    with pytest.raises(DeepfxError, match=f"{files[0]}: low_pass is judged by 'log_mel', which this file lacks"):
        build_report(files, root, {"low_pass": "log_mel"})
    with pytest.raises(DeepfxError, match="judged by 'loudness', not one of"):
        build_report(files, root, {"low_pass": "loudness"})
    assert not (root / "index.html").exists()


def hue(css: str) -> float:
    """The hue of an ``hsl(h, s%, l%)`` colour."""
    return float(css.removeprefix("hsl(").split(",")[0])


def test_heat_colour_runs_from_red_through_amber_to_green():
    assert hue(heat_colour(3.0, 1.0)) == 0  # 3× worse than doing nothing (and beyond): red
    assert hue(heat_colour(30.0, 1.0)) == 0
    assert hue(heat_colour(1.0, 1.0)) == 48  # as bad as doing nothing: amber
    assert hue(heat_colour(0.01, 1.0)) == 130  # 100× better: green
    assert hue(heat_colour(0.0, 1.0)) == 130
    assert 48 < hue(heat_colour(0.1, 1.0)) < 130
    assert heat_colour(float("nan"), 1.0) == heat_colour(0.1, 0.0) == "hsl(0, 0%, 88%)"


def test_html_has_a_section_per_effect_and_every_link_resolves(reports):
    root, files = reports
    build_report(files, root)
    page = Page((root / "index.html").read_text(encoding="utf-8"))
    assert {"fx-distortion", "fx-low_pass"} <= set(page.ids)
    assert set(page.images) == {f"effects/{e}/{a}/{name}" for e, a in ORDER for name in FIGURES}
    # clean and effect once per effect (from its best model's folder), the model once per arch
    assert sorted(page.audio) == sorted(
        [f"effects/{e}/{a}/{EXCERPTS[k]}" for e, a in (ORDER[0], ORDER[2]) for k in ("clean", "effect")]
        + [f"effects/{e}/{a}/{EXCERPTS['model']}" for e, a in ORDER])
    files_linked = [link for link in page.links if not link.startswith("#")]
    assert all((root / unquote(link)).is_file() for link in files_linked)
    anchors = {link[1:] for link in page.links if link.startswith("#")}
    assert anchors <= set(page.ids)


def test_html_opens_from_disk_without_internet(reports):
    root, files = reports
    build_report(files, root)
    text = (root / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    assert "style" in page.tags and not page.tags & {"link", "iframe"}
    assert page.scripts == [{}]  # one inline script (column sorting), nothing loaded
    assert not [link for link in page.links if "//" in link or link.startswith("/")]
    assert "http" not in text


def test_figures_are_linked_from_beside_each_metrics_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_run(Path("reports"), METRICS[1])  # flat layout, paths relative to the cwd
    build_report([path], Path("reports"))
    page = Page((tmp_path / "reports/index.html").read_text(encoding="utf-8"))
    assert set(page.images) == {f"distortion/cnn/{name}" for name in FIGURES}
    assert set(page.audio) == {f"distortion/cnn/{name}" for name in EXCERPTS.values()}


def test_missing_figures_and_excerpts_are_noted_not_linked(tmp_path):
    root = tmp_path / "reports"
    path = write_run(root, METRICS[1], figures=False)
    build_report([path], root)
    text = (root / "index.html").read_text(encoding="utf-8")
    assert "<img" not in text and "<audio" not in text
    assert text.count("figure not found") == len(FIGURES)
    assert text.count("excerpt not found") == len(EXCERPTS)


def test_text_is_html_escaped(tmp_path):
    root = tmp_path / "reports"
    path = write_run(root, {**METRICS[1], "effect": "fuzz<b>&co", "arch": "a\"b"})
    build_report([path], root)
    text = (root / "index.html").read_text(encoding="utf-8")
    assert "fuzz<b>" not in text and "fuzz&lt;b&gt;&amp;co" in text
    page = Page(text)
    assert (page.rows[0]["cells"][0]["text"], arch_text(page.rows[0]["cells"][1])) == (
        "fuzz<b>&co", 'a"b')
    assert all((root / unquote(link)).is_file() for link in page.links if not link.startswith("#"))


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        json.dumps({k: v for k, v in METRICS[1].items() if k != "esr"}),
        json.dumps({**METRICS[1], "esr": "0.04"}),
        json.dumps({**METRICS[1], "n_params": True}),
        json.dumps({**METRICS[1], "closer_than_clean": 1}),
    ],
    ids=["syntax", "not-object", "missing-key", "string-number", "bool-number", "int-bool"],
)
def test_malformed_metrics_raise_and_write_nothing(reports, content):
    root, files = reports
    files[2].write_text(content)
    with pytest.raises(DeepfxError, match=str(files[2])):
        build_report(files, root)
    assert not (root / "index.html").exists() and not (root / "metrics.csv").exists()
    assert [p.name for p in root.iterdir()] == ["effects"]  # no temp files


def test_missing_metrics_file_is_named(reports):
    root, files = reports
    files[0].unlink()
    with pytest.raises(DeepfxError, match=f"{files[0]}: no such metrics file"):
        build_report(files, root)
    assert not (root / "index.html").exists() and not (root / "metrics.csv").exists()


def test_duplicate_effect_and_arch_is_rejected(reports):
    root, files = reports
    copy = root / "copy.json"
    copy.write_text(files[1].read_text())
    with pytest.raises(DeepfxError, match="distortion × cnn is also reported by"):
        build_report([*files, copy], root)


def test_no_metrics_files_is_an_error(tmp_path):
    with pytest.raises(DeepfxError, match="no metrics.json"):
        build_report([], tmp_path)


def check_report(root: Path, params: dict) -> None:
    """reports/index.html of a run under ``root`` shows every effect × arch of ``params`` with
    the numbers of reports/metrics.csv, valid PNG figures and readable excerpt wavs."""
    reports = root / "reports"
    table = pd.read_csv(reports / "metrics.csv")
    expected = set(trained_models(params))
    assert set(zip(table["effect"], table["arch"])) == expected and len(table) == len(expected)
    page = Page((reports / "index.html").read_text(encoding="utf-8"))
    assert {f"fx-{effect}" for effect in params["effects"]} <= set(page.ids)
    csv_rows = {(r["effect"], r["arch"]): r for r in table.to_dict(orient="records")}
    shown = [(r["cells"][0]["text"], arch_text(r["cells"][1])) for r in page.rows]
    assert shown == list(zip(table["effect"], table["arch"]))  # same order: effect, then ESR
    for row in page.rows:
        metrics = csv_rows[(row["cells"][0]["text"], arch_text(row["cells"][1]))]
        cells = row["cells"]
        for cell, key in zip(cells[2:4] + cells[5:7], ("esr", "esr_clean", "mrstft", "mrstft_clean")):
            assert float(cell["title"]) == pytest.approx(metrics[key], rel=1e-12)
        assert cells[7]["text"] == ("✓" if metrics["closer_than_clean"] else "✗")
        assert int(cells[9]["text"].replace(",", "")) == metrics["n_params"]
    assert len(page.images) == len(expected) * len(FIGURES)
    for link in page.images:
        with Image.open(reports / unquote(link)) as image:
            assert image.format == "PNG" and image.width >= 500
            image.verify()
    assert len(page.audio) == len(expected) + 2 * len(params["effects"])
    for link in page.audio:
        info = sf.info(reports / unquote(link))
        assert info.samplerate == params["sample_rate"] and info.frames > 0


def test_report_of_a_run_without_training(fake_report):
    check_report(*fake_report)


@pytest.mark.slow
def test_report_of_the_tiny_pipeline(project: Project):
    project.run("snakemake", "--cores", "2", "reports/index.html")
    check_report(project.path, project.params)
