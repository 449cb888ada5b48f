"""The final report: a CSV row and an HTML section per effect × arch, from their metrics.json.

``index.html`` opens from disk without a network: one inline stylesheet and one small inline
script (click a column heading to sort); figures and excerpt wavs are linked by relative paths.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

import pandas as pd

from deepfx.atomic import atomic_file
from deepfx.errors import DeepfxError
from deepfx.plots import CLEAN_COLOUR, EFFECT_COLOUR, EXCERPTS, FIGURES, MODEL_COLOUR

__all__ = ["COLUMNS", "load_metrics", "heat_colour", "build_report"]

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

#: Figures drawn wide (three panels or two side by side) and shown across the whole page.
_WIDE = {"melspec.png", "error_spectrum.png"}

#: Labels of the excerpt players (``deepfx.plots.EXCERPTS`` keys) and their colours.
_PLAYERS = {
    "clean": ("clean (input)", CLEAN_COLOUR),
    "effect": ("effect (target)", EFFECT_COLOUR),
    "model": ("model", MODEL_COLOUR),
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


#: What an effect can be judged by (``deepfx.models.judging_metric``), as the star's tooltip says it.
METRIC_NAMES = {"esr": "ESR", "log_mel": "log-mel distance"}


def _score(path: Path, data: dict, metric: str) -> float:
    """``data[metric]``: the number the effect is judged by (lower is better)."""
    if metric not in METRIC_NAMES:
        raise DeepfxError(f"report: {data['effect']} is judged by {metric!r}, not one of {list(METRIC_NAMES)}")
    if not isinstance(data.get(metric), (int, float)):
        raise DeepfxError(f"{path}: {data['effect']} is judged by {metric!r}, which this file lacks")
    return float(data[metric])


def _table(metrics_files: Sequence[Path], judged_by: Mapping[str, str]) -> pd.DataFrame:
    """All metrics as one frame: ``COLUMNS``, ``score`` (the effect's metric from ``judged_by``,
    default ESR) and ``folder`` (of the metrics.json, where its figures are), sorted by effect
    then score (best first)."""
    if not metrics_files:
        raise DeepfxError("report: no metrics.json files given")
    rows, seen = [], {}
    for path in metrics_files:
        data = load_metrics(path)
        key = (data["effect"], data["arch"])
        if key in seen:
            raise DeepfxError(f"{path}: {key[0]} × {key[1]} is also reported by {seen[key]}")
        seen[key] = path
        metric = judged_by.get(data["effect"], "esr")
        rows.append({**{column: data[column] for column in COLUMNS}, "metric": metric,
                     "score": _score(path, data, metric), "folder": path.parent})
    table = pd.DataFrame(rows, columns=[*COLUMNS, "metric", "score", "folder"])
    return table.sort_values(["effect", "score", "arch"], kind="stable").reset_index(drop=True)


def heat_colour(score: float, baseline: float) -> str:
    """CSS background for a score (lower is better) against its do-nothing ``baseline``.

    Green when the score is 100× (20 dB) or more below the baseline, amber at the baseline, red
    at 3× above it and beyond, on a log scale; grey when the ratio is undefined.
    """
    if not (math.isfinite(score) and math.isfinite(baseline)) or score < 0 or baseline <= 0:
        return "hsl(0, 0%, 88%)"
    decades = math.log10(max(score, 1e-12) / baseline)  # < 0: better than the baseline
    if decades <= 0:
        t = min(-decades / 2, 1.0)  # 0 at the baseline … 1 at 100× better
        return f"hsl({48 + 82 * t:.0f}, 62%, {82 - 6 * t:.0f}%)"
    t = min(decades / math.log10(3), 1.0)  # 0 at the baseline … 1 at 3× worse
    return f"hsl({48 - 48 * t:.0f}, 62%, {82 - 3 * t:.0f}%)"


def _gain_db(score: float, baseline: float) -> float:
    """How far ``score`` lies below its do-nothing ``baseline``, in dB (positive: better)."""
    if not (score > 0 and baseline > 0):  # also False for NaN
        return math.inf if score == 0 and baseline > 0 else math.nan
    return 10 * math.log10(baseline / score)


def _mark(flag: bool) -> str:
    """A green ✓ or red ✗ span."""
    return '<span class="yes">&#10003;</span>' if flag else '<span class="no">&#10007;</span>'


def _number(value: float, fmt: str, style: str = "") -> str:
    """A right-aligned cell showing ``value`` formatted; the exact value is its tooltip and
    sort key."""
    shown = fmt.format(value) if math.isfinite(value) else str(value)
    exact = html.escape(repr(value))
    style = f' style="background: {style}"' if style else ""
    return f'<td class="num" title="{exact}" data-sort="{exact}"{style}>{html.escape(shown)}</td>'


def _anchor(effect: str) -> str:
    """The HTML id of an effect's section."""
    return "fx-" + quote(effect, safe="")


def _overview_row(row: dict, best: bool) -> str:
    """One ``<tr>`` of the overview table; ``best`` marks the best of its effect by its metric."""
    cls = "closer" if row["closer_than_clean"] else "not-closer"
    title = f"lowest {METRIC_NAMES[row['metric']]} for this effect"
    star = f' <span class="best" title="{title}">&#9733;</span>' if best else ""
    speed = 1.0 / row["inference_rtf"] if row["inference_rtf"] > 0 else math.inf
    return (
        f'<tr class="{cls}"><td data-sort="{html.escape(row["effect"])}">'
        f'<a href="#{_anchor(row["effect"])}">{html.escape(row["effect"])}</a></td>'
        f'<td data-sort="{html.escape(row["arch"])}">{html.escape(row["arch"])}{star}</td>'
        + _number(row["esr"], "{:.4g}", heat_colour(row["esr"], row["esr_clean"]))
        + _number(row["esr_clean"], "{:.4g}")
        + _number(_gain_db(row["esr"], row["esr_clean"]), "{:+.1f}")
        + _number(row["mrstft"], "{:.4g}", heat_colour(row["mrstft"], row["mrstft_clean"]))
        + _number(row["mrstft_clean"], "{:.4g}")
        + f'<td class="mark" data-sort="{int(row["closer_than_clean"])}">'
          f'{_mark(row["closer_than_clean"])}</td>'
        + f'<td class="mark" data-sort="{int(row["closer_on_every_file"])}">'
          f'{_mark(row["closer_on_every_file"])}</td>'
        + _number(row["n_params"], "{:,}") + _number(row["train_seconds"], "{:.1f}")
        + _number(speed, "{:,.0f}×") + "</tr>"
    )


def _link(reports_dir: Path, path: Path) -> tuple[str, bool]:
    """``path`` as an escaped URL relative to ``reports_dir``, and whether the file exists."""
    rel = Path(os.path.relpath(path, reports_dir)).as_posix()
    return html.escape(quote(rel)), path.is_file()


def _figure(reports_dir: Path, row: dict, name: str, caption: str) -> str:
    """A ``<figure>`` linking ``name`` in the row's folder, or a note when the file is absent."""
    href, exists = _link(reports_dir, row["folder"] / name)
    wide = ' class="wide"' if name in _WIDE else ""
    if not exists:
        return f'<figure{wide}><p class="missing">figure not found: {href}</p></figure>'
    alt = html.escape(f"{caption} ({row['effect']}, {row['arch']})")
    return (f'<figure{wide}><a href="{href}"><img src="{href}" alt="{alt}" loading="lazy"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _player(reports_dir: Path, row: dict, key: str, label: str = "") -> str:
    """An ``<audio>`` player of the row's excerpt ``key`` (clean, effect or model)."""
    href, exists = _link(reports_dir, row["folder"] / EXCERPTS[key])
    name, colour = _PLAYERS[key]
    label = html.escape(label or name)
    body = (f'<audio controls preload="metadata" src="{href}"></audio>' if exists
            else f'<p class="missing">excerpt not found: {href}</p>')
    return (f'<figure class="player" style="border-color: {colour}">'
            f'<figcaption style="color: {colour}">{label}</figcaption>{body}</figure>')


def _section(reports_dir: Path, effect: str, rows: list[dict]) -> str:
    """The ``<section>`` of one effect: its clean and effect excerpts, then each arch's scores,
    model excerpt and figures, in table order."""
    n_closer = sum(row["closer_than_clean"] for row in rows)
    tone = "yes" if n_closer == len(rows) else ("no" if n_closer == 0 else "some")
    parts = [
        f'<section class="effect" id="{_anchor(effect)}"><h2>{html.escape(effect)}'
        f'<span class="badge {tone}">{n_closer} of {len(rows)} closer than clean</span></h2>',
        '<div class="listen">' + _player(reports_dir, rows[0], "clean")
        + _player(reports_dir, rows[0], "effect") + "</div>",
    ]
    for row in rows:
        arch = html.escape(row["arch"])
        verdict = (
            '<span class="badge yes">&#10003; closer than clean</span>' if row["closer_than_clean"]
            else '<span class="badge no">&#10007; not closer than clean</span>'
        )
        parts.append(
            f'<article><h3>{arch}{verdict}</h3><div class="listen">'
            + _player(reports_dir, row, "model", f"model ({row['arch']})")
            + f'<p class="stats">ESR <b>{row["esr"]:.4g}</b> (clean input {row["esr_clean"]:.4g})'
            f' · MR-STFT <b>{row["mrstft"]:.4g}</b> (clean input {row["mrstft_clean"]:.4g})'
            f' · {row["n_params"]:,} parameters · trained in {row["train_seconds"]:.1f} s'
            f' · inference {row["inference_rtf"]:.3g} s per s of audio</p></div>'
            '<div class="figures">'
            + "".join(_figure(reports_dir, row, name, caption) for name, caption in FIGURES.items())
            + "</div></article>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _nav(effects: list[str], records: list[dict]) -> str:
    """Links to every effect's section, each marked with how many of its models beat clean."""
    links = []
    for effect in effects:
        rows = [row for row in records if row["effect"] == effect]
        n_closer = sum(row["closer_than_clean"] for row in rows)
        tone = "yes" if n_closer == len(rows) else ("no" if n_closer == 0 else "some")
        links.append(f'<a class="chip {tone}" href="#{_anchor(effect)}">{html.escape(effect)}'
                     f" <small>{n_closer}/{len(rows)}</small></a>")
    return "\n".join(links)


def _html(table: pd.DataFrame, reports_dir: Path) -> str:
    """The whole index.html: summary, overview table, one section per effect."""
    source = resources.files("deepfx").joinpath("templates/report.html")
    template = Template(source.read_text(encoding="utf-8"))
    records = table.to_dict(orient="records")  # native Python values, in table order
    effects = list(dict.fromkeys(row["effect"] for row in records))
    best = {row["effect"]: i for i, row in reversed(list(enumerate(records)))}  # first = best score
    n_closer = sum(row["closer_than_clean"] for row in records)
    summary = (f"{n_closer} of {len(records)} models (effect × arch) are closer to the effect's "
               f"output than the clean input is.")
    return template.substitute(
        summary=html.escape(summary),
        n_effects=len(effects),
        n_models=len(records),
        n_closer=n_closer,
        clean_colour=CLEAN_COLOUR,
        effect_colour=EFFECT_COLOUR,
        model_colour=MODEL_COLOUR,
        nav=_nav(effects, records),
        rows="\n".join(_overview_row(row, best[row["effect"]] == i) for i, row in enumerate(records)),
        sections="\n".join(
            _section(reports_dir, effect, [row for row in records if row["effect"] == effect])
            for effect in effects
        ),
    )


def build_report(metrics_files: Sequence[Path], reports_dir: Path,
                 judged_by: Mapping[str, str] | None = None) -> None:
    """Write ``reports_dir``/metrics.csv and ``reports_dir``/index.html from ``metrics_files``.

    ``judged_by`` names each effect's metric (``esr``, the default, or ``log_mel``): it orders
    the effect's models and ★ marks the best by it.

    Each effect × arch's figures (``deepfx.plots.FIGURES``) and excerpt wavs
    (``deepfx.plots.EXCERPTS``) are those beside its metrics.json, linked by paths relative to
    ``reports_dir`` (e.g. ``effects/fuzz/tcn/melspec.png``). Every metrics.json is checked
    before anything is written.
    """
    reports_dir = Path(reports_dir)
    table = _table([Path(p) for p in metrics_files], judged_by or {})
    page = _html(table, reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    with (  # both files replace their targets only once both are fully written
        atomic_file(reports_dir / "metrics.csv") as csv,
        atomic_file(reports_dir / "index.html") as index,
    ):
        table[list(COLUMNS)].to_csv(csv, index=False)
        index.write_text(page, encoding="utf-8")
