"""The final report: a CSV row and an HTML section per effect × arch, from their metrics.json."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

import pandas as pd

from deepfx.atomic import atomic_file
from deepfx.errors import DeepfxError

__all__ = ["COLUMNS", "FIGURES", "load_metrics", "build_report"]

#: Columns of ``metrics.csv`` (and keys every metrics.json must hold), with their JSON types.
COLUMNS: dict[str, tuple[type, ...]] = {
    "effect": (str,),
    "arch": (str,),
    "esr": (int, float),
    "esr_clean": (int, float),
    "mrstft": (int, float),
    "mrstft_clean": (int, float),
    "closer_than_clean": (bool,),
    "closer_on_every_file": (bool,),
    "n_params": (int,),
    "train_seconds": (int, float),
    "inference_rtf": (int, float),
}

#: Figures shown per effect × arch: file name (beside its metrics.json) and caption.
FIGURES = {
    "melspec.png": "Mel spectrograms: clean | model | effect",
    "amplitude.png": "Amplitude: clean, effect and model on one axis",
    "loss.png": "Training and validation loss per epoch",
}


def load_metrics(path: str | os.PathLike) -> dict:
    """Read one metrics.json and check it has every ``COLUMNS`` key with the right type."""
    path = Path(path)
    if not path.is_file():
        raise DeepfxError(f"{path}: no such metrics file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepfxError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DeepfxError(f"{path}: expected a JSON object, found {type(data).__name__}")
    for key, types in COLUMNS.items():
        if key not in data:
            raise DeepfxError(f"{path}: missing key {key!r}")
        value = data[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            wanted = " or ".join(t.__name__ for t in types)
            raise DeepfxError(f"{path}: {key!r} must be {wanted}, found {value!r}")
    if not data["effect"] or not data["arch"]:
        raise DeepfxError(f"{path}: 'effect' and 'arch' must not be empty")
    return data


def _table(metrics_files: Sequence[Path]) -> pd.DataFrame:
    """All metrics as one frame: ``COLUMNS`` plus ``folder`` (of the metrics.json, where its
    figures are), sorted by effect then ESR (best first)."""
    if not metrics_files:
        raise DeepfxError("report: no metrics.json files given")
    rows, seen = [], {}
    for path in metrics_files:
        data = load_metrics(path)
        key = (data["effect"], data["arch"])
        if key in seen:
            raise DeepfxError(f"{path}: {key[0]} × {key[1]} is also reported by {seen[key]}")
        seen[key] = path
        rows.append({**{column: data[column] for column in COLUMNS}, "folder": path.parent})
    table = pd.DataFrame(rows, columns=[*COLUMNS, "folder"])
    return table.sort_values(["effect", "esr", "arch"], kind="stable").reset_index(drop=True)


def _mark(flag: bool) -> str:
    """A green ✓ or red ✗ span."""
    return '<span class="yes">&#10003;</span>' if flag else '<span class="no">&#10007;</span>'


def _number(value: float, fmt: str) -> str:
    """A right-aligned cell showing ``value`` formatted; the exact value is its tooltip."""
    shown = fmt.format(value) if math.isfinite(value) else str(value)
    return f'<td class="num" title="{html.escape(repr(value))}">{html.escape(shown)}</td>'


def _anchor(effect: str) -> str:
    """The HTML id of an effect's section."""
    return "fx-" + quote(effect, safe="")


def _overview_row(row: dict) -> str:
    """One ``<tr>`` of the overview table."""
    cls = "closer" if row["closer_than_clean"] else "not-closer"
    effect = html.escape(row["effect"])
    return (
        f'<tr class="{cls}"><td><a href="#{_anchor(row["effect"])}">{effect}</a></td>'
        f'<td>{html.escape(row["arch"])}</td>'
        + _number(row["esr"], "{:.4g}") + _number(row["esr_clean"], "{:.4g}")
        + _number(row["mrstft"], "{:.4g}") + _number(row["mrstft_clean"], "{:.4g}")
        + f'<td class="mark">{_mark(row["closer_than_clean"])}</td>'
        + f'<td class="mark">{_mark(row["closer_on_every_file"])}</td>'
        + _number(row["n_params"], "{:,}") + _number(row["train_seconds"], "{:.1f}")
        + _number(row["inference_rtf"], "{:.3g}") + "</tr>"
    )


def _figure(reports_dir: Path, row: dict, name: str, caption: str) -> str:
    """A ``<figure>`` linking ``name`` in the row's folder (relative to ``reports_dir``), or a
    note when the file is absent."""
    path = row["folder"] / name
    rel = Path(os.path.relpath(path, reports_dir)).as_posix()
    wide = ' class="wide"' if name == "melspec.png" else ""
    if not path.is_file():
        return f'<figure{wide}><p class="missing">figure not found: {html.escape(rel)}</p></figure>'
    href = html.escape(quote(rel))
    alt = html.escape(f"{caption} ({row['effect']}, {row['arch']})")
    return (f'<figure{wide}><a href="{href}"><img src="{href}" alt="{alt}" loading="lazy"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _section(reports_dir: Path, effect: str, rows: list[dict]) -> str:
    """The ``<section>`` of one effect: each arch's scores and figures, in table order."""
    parts = [f'<section id="{_anchor(effect)}"><h2>{html.escape(effect)}</h2>']
    for row in rows:
        arch = row["arch"]
        verdict = (
            '<span class="badge yes">&#10003; closer than clean</span>' if row["closer_than_clean"]
            else '<span class="badge no">&#10007; not closer than clean</span>'
        )
        parts.append(
            f"<article><h3>{html.escape(arch)}{verdict}</h3>"
            f"<p>ESR {row['esr']:.4g} (clean input: {row['esr_clean']:.4g}) · "
            f"MR-STFT {row['mrstft']:.4g} (clean input: {row['mrstft_clean']:.4g}) · "
            f"{row['n_params']:,} parameters · trained in {row['train_seconds']:.1f} s</p>"
            '<div class="figures">'
            + "".join(_figure(reports_dir, row, name, caption) for name, caption in FIGURES.items())
            + "</div></article>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _html(table: pd.DataFrame, reports_dir: Path) -> str:
    """The whole index.html: overview table, explanation, one section per effect."""
    source = resources.files("deepfx").joinpath("templates/report.html")
    template = Template(source.read_text(encoding="utf-8"))
    records = table.to_dict(orient="records")  # native Python values, in table order
    effects = list(dict.fromkeys(row["effect"] for row in records))
    n_closer = sum(row["closer_than_clean"] for row in records)
    summary = (f"{n_closer} of {len(records)} models (effect × arch) are closer to the effect's "
               f"output than the clean input is.")
    return template.substitute(
        summary=html.escape(summary),
        rows="\n".join(_overview_row(row) for row in records),
        sections="\n".join(
            _section(reports_dir, effect, [row for row in records if row["effect"] == effect])
            for effect in effects
        ),
    )


def build_report(metrics_files: Sequence[Path], reports_dir: Path) -> None:
    """Write ``reports_dir``/metrics.csv and ``reports_dir``/index.html from ``metrics_files``.

    Each effect × arch's figures (``FIGURES``) are those beside its metrics.json, linked by paths
    relative to ``reports_dir`` (e.g. ``effects/fuzz/tcn/melspec.png``). Every metrics.json is
    checked before anything is written.
    """
    reports_dir = Path(reports_dir)
    table = _table([Path(p) for p in metrics_files])
    page = _html(table, reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    with (  # both files replace their targets only once both are fully written
        atomic_file(reports_dir / "metrics.csv") as csv,
        atomic_file(reports_dir / "index.html") as index,
    ):
        table[list(COLUMNS)].to_csv(csv, index=False)
        index.write_text(page, encoding="utf-8")
