"""Figures of one effect × arch drawn from real (pedalboard-processed) audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pedalboard
import pytest
from PIL import Image

from deepfx import SAMPLE_RATE
from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError
from deepfx.plots import (
    CLEAN_COLOUR,
    EFFECT_COLOUR,
    EXCERPTS,
    FIGURES,
    MODEL_COLOUR,
    loudest_start,
    make_plots,
    plot_amplitude,
    plot_error_spectrum,
    plot_losses,
    plot_melspec,
)

SR = SAMPLE_RATE
PARAMS = {"sample_rate": SR, "evaluate": {"overlay_samples": 300, "excerpt_seconds": 1.0}}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = "epoch,train_loss,valid_loss,seconds\n1,0.9,0.8,2.0\n2,0.3,0.35,2.1\n3,0.1,0.2,2.0\n"


def tone(seconds: float, hz: float, amplitude: float = 0.5) -> np.ndarray:
    """A decaying sine (float32) of ``seconds`` s at ``hz`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t) * np.exp(-2 * t)).astype(np.float32)


def distort(x: np.ndarray) -> np.ndarray:
    """The real effect: pedalboard distortion."""
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25.0), pedalboard.Gain(-12.0)])
    return board(x, SR)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """Clean, processed and predicted test files (a.wav, b.wav), a history.csv; the test folders."""
    dirs = {
        "clean": tmp_path / "data/clean/test",
        "processed": tmp_path / "data/processed/distortion/test",
        "predictions": tmp_path / "reports/effects/distortion/cnn/predictions",
    }
    for folder in dirs.values():
        folder.mkdir(parents=True)
    for name, hz in (("b.wav", 330.0), ("a.wav", 110.0)):
        clean = tone(1.5, hz)
        effect = distort(clean)
        model = 0.7 * effect + 0.3 * clean  # a model part-way to the effect
        for key, signal in (("clean", clean), ("processed", effect), ("predictions", model)):
            write_audio(dirs[key] / name, signal, SR)
    history = tmp_path / "models/distortion/cnn/history.csv"
    history.parent.mkdir(parents=True)
    history.write_text(HISTORY)
    return {**dirs, "history": history, "out": tmp_path / "reports/effects/distortion/cnn"}


def run(layout: dict[str, Path]) -> list[Path]:
    """make_plots on the fixture's files (clean and processed given as their split roots)."""
    return make_plots(
        "distortion", "cnn", PARAMS,
        clean_dir=layout["clean"].parent,
        processed_dir=layout["processed"].parent,
        predictions_dir=layout["predictions"],
        history_csv=layout["history"],
        out_dir=layout["out"],
    )


def assert_png(path: Path, min_size: tuple[int, int]) -> None:
    """``path`` is a PNG of at least ``min_size`` pixels that is not one flat colour."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_size[0] and image.height >= min_size[1]
        assert image.width <= 4000 and image.height <= 3000
        lo, hi = image.convert("L").getextrema()
        assert hi - lo > 100  # drawn content, not a blank canvas


def data_lines(fig) -> list:
    """The labelled curves of a one-axis figure (not helper lines)."""
    return [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]


def test_make_plots_writes_four_valid_pngs_and_the_excerpt(layout):
    paths = run(layout)
    out = layout["out"]
    assert paths == [out / name for name in FIGURES] + [out / name for name in EXCERPTS.values()]
    assert [p.name for p in paths[:4]] == [
        "melspec.png", "error_spectrum.png", "amplitude.png", "loss.png"]
    assert_png(paths[0], (1000, 350))
    assert_png(paths[1], (1000, 350))
    assert_png(paths[2], (700, 350))
    assert_png(paths[3], (700, 350))
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {p.relative_to(out).as_posix() for p in paths} | {
        f"predictions/{n}" for n in ("a.wav", "b.wav")}  # no temp files left


def test_excerpt_wavs_are_the_first_test_files_opening_seconds(layout):
    run(layout)
    n = int(PARAMS["evaluate"]["excerpt_seconds"] * SR)
    for key, folder in (("clean", "clean"), ("effect", "processed"), ("model", "predictions")):
        excerpt = read_audio(layout["out"] / EXCERPTS[key], SR)
        np.testing.assert_array_equal(excerpt, read_audio(layout[folder] / "a.wav", SR)[:n])


@pytest.mark.parametrize("missing", ["predictions", "processed", "history"])
def test_missing_input_raises_and_writes_nothing(layout, missing):
    target = layout[missing] if missing == "history" else layout[missing] / "b.wav"
    target.unlink()
    with pytest.raises(DeepfxError, match=str(target)):
        run(layout)
    assert not list(layout["out"].glob("*.png"))
    assert not list(layout["out"].glob(".*"))
    assert not (layout["out"] / "excerpt").exists()


def test_prediction_of_another_length_is_rejected(layout):
    write_audio(layout["predictions"] / "b.wav", tone(1.0, 330.0), SR)
    with pytest.raises(DeepfxError, match=r"predictions/b.wav: 44100 samples, but"):
        run(layout)
    assert not list(layout["out"].glob("*.png"))


def test_no_clean_test_files_raises(layout):
    for path in layout["clean"].iterdir():
        path.unlink()
    with pytest.raises(DeepfxError, match="no .wav files in the test split"):
        run(layout)


def test_error_spectrum_shows_where_the_model_misses(tmp_path):
    t = np.arange(SR) / SR
    low, high = 0.5 * np.sin(2 * np.pi * 200 * t), 0.1 * np.sin(2 * np.pi * 4000 * t)
    target = (low + high).astype(np.float32)
    model = low.astype(np.float32)  # misses the 4 kHz part only
    clean = np.zeros_like(target)  # doing nothing misses everything
    fig = plot_error_spectrum([(clean, target, model)], SR, tmp_path / "err.png", title="t")
    top, bottom = fig.axes
    assert [line.get_color() for line in data_lines(fig)] == [EFFECT_COLOUR, CLEAN_COLOUR, MODEL_COLOUR]
    clean_esr, model_esr = [line for line in bottom.get_lines() if not line.get_label().startswith("_")]
    assert clean_esr.get_color() == CLEAN_COLOUR and model_esr.get_color() == MODEL_COLOUR
    centres, ratio = model_esr.get_xdata(), model_esr.get_ydata()
    assert ratio[np.argmin(abs(centres - 4000))] == pytest.approx(0.0, abs=0.5)  # missed: 0 dB
    assert ratio[np.argmin(abs(centres - 200))] < -60  # got right: far below the signal
    np.testing.assert_allclose(clean_esr.get_ydata(), 0.0, atol=1e-6)  # silence misses all
    assert bottom.get_xscale() == "log" and bottom.get_xlim()[1] == SR / 2
    assert "Hz" in bottom.get_xlabel() and "dB" in bottom.get_ylabel() and "dB" in top.get_ylabel()
    assert_png(tmp_path / "err.png", (1000, 350))


def test_amplitude_overlay_has_n_samples_per_curve_in_fixed_colours(tmp_path):
    clean = tone(0.2, 220.0)
    effect = distort(clean)
    model = 0.5 * (effect + clean)
    fig = plot_amplitude(clean, effect, model, SR, tmp_path / "amp.png", n_samples=300,
                         title="t", start=1000)
    lines = data_lines(fig)
    assert [line.get_color() for line in lines] == [CLEAN_COLOUR, EFFECT_COLOUR, MODEL_COLOUR]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        line.get_label() for line in lines]
    for line, signal in zip(lines, (clean, effect, model)):
        assert len(line.get_xdata()) == len(line.get_ydata()) == 300
        np.testing.assert_array_equal(line.get_ydata(), signal[1000:1300])
    x_ms = lines[0].get_xdata()
    assert x_ms[0] == pytest.approx(1000 / SR * 1000)
    assert x_ms[-1] == pytest.approx(1299 / SR * 1000)
    assert "ms" in fig.axes[0].get_xlabel()
    assert_png(tmp_path / "amp.png", (700, 350))


def test_amplitude_start_defaults_to_the_loud_part(tmp_path):
    rng = np.random.default_rng(0)
    clean = (1e-3 * rng.standard_normal(SR // 4)).astype(np.float32)
    clean[6000:6500] += tone(500 / SR, 900.0, amplitude=0.9)  # the one loud burst
    start = loudest_start(clean, 300)
    assert 6000 <= start <= 6200
    fig = plot_amplitude(clean, clean, clean, SR, tmp_path / "amp.png", n_samples=300, title="t")
    assert data_lines(fig)[0].get_xdata()[0] == pytest.approx(start / SR * 1000)


def test_overlay_longer_than_the_excerpt_raises(tmp_path):
    short = tone(200 / SR, 220.0)
    with pytest.raises(DeepfxError, match="evaluate.overlay_samples"):
        plot_amplitude(short, short, short, SR, tmp_path / "amp.png", n_samples=300, title="t")
    assert not list(tmp_path.iterdir())


def test_melspec_panels_share_one_db_scale(tmp_path):
    clean = tone(1.0, 220.0, amplitude=0.8)
    effect = 0.5 * clean  # 6 dB quieter than clean
    model = np.zeros_like(clean)
    fig = plot_melspec(clean, model, effect, SR, tmp_path / "mel.png", title="distortion · cnn")
    panels, colourbars = fig.axes[:3], fig.axes[3:]
    assert [ax.get_title() for ax in panels] == ["clean", "model", "effect"]
    assert len(colourbars) == 1 and "dB" in colourbars[0].get_ylabel()
    meshes = [ax.collections[0] for ax in panels]
    assert len({mesh.get_clim() for mesh in meshes}) == 1
    peaks = [float(np.max(mesh.get_array())) for mesh in meshes]
    assert peaks[0] == pytest.approx(0.0, abs=1e-3)  # clean is the loudest: the 0 dB reference
    assert peaks[1] <= -80.0  # the silent model sits at the floor
    assert peaks[2] == pytest.approx(-6.02, abs=0.05)  # effect keeps its level re. clean
    assert panels[0].get_xlabel() == "Time (s)" and "Hz" in panels[0].get_ylabel()
    assert_png(tmp_path / "mel.png", (1000, 350))


def test_losses_are_plotted_per_epoch_on_a_log_axis(layout, tmp_path):
    fig = plot_losses(layout["history"], tmp_path / "loss.png", title="t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    train, valid = data_lines(fig)[:2]
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(train.get_ydata(), [0.9, 0.3, 0.1])
    np.testing.assert_array_equal(valid.get_ydata(), [0.8, 0.35, 0.2])
    assert_png(tmp_path / "loss.png", (500, 300))


def test_losses_of_a_diverged_run_still_plot(layout, tmp_path):
    layout["history"].write_text(
        "epoch,train_loss,valid_loss,seconds\n1,0.5,nan,1.0\n2,nan,nan,1.0\n")
    fig = plot_losses(layout["history"], tmp_path / "loss.png", title="t")
    assert [line.get_label() for line in data_lines(fig)] == ["train", "valid"]
    assert_png(tmp_path / "loss.png", (500, 300))


def test_history_without_valid_loss_is_rejected(layout, tmp_path):
    layout["history"].write_text("epoch,train_loss,seconds\n1,0.5,1.0\n")
    with pytest.raises(DeepfxError, match="valid_loss"):
        plot_losses(layout["history"], tmp_path / "loss.png", title="t")
    assert not (tmp_path / "loss.png").exists()
