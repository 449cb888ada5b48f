"""The ABX summary: counts per effect × arch and exact binomial p-values."""

from __future__ import annotations

import pytest

from deepfx.abx.stats import format_summary, p_value, summarise


def row(effect: str, arch: str, x_is: str, answer: str) -> dict[str, str]:
    return {"effect": effect, "arch": arch, "x_is": x_is, "answer": answer}


def test_p_values_match_hand_computed_binomial_tails():
    assert p_value(10, 10) == pytest.approx(1 / 1024)
    assert p_value(8, 10) == pytest.approx((45 + 10 + 1) / 1024)  # P(K >= 8)
    assert p_value(0, 10) == pytest.approx(1.0)
    assert p_value(2, 10, "less") == pytest.approx((1 + 10 + 45) / 1024)  # P(K <= 2)
    assert p_value(0, 0) is None


def test_summary_counts_model_and_control_trials_separately():
    rows = (
        [row("fuzz", "tcn", "model", "B")] * 9 + [row("fuzz", "tcn", "model", "A")]
        + [row("fuzz", "tcn", "clean", "A"), row("fuzz", "tcn", "effect", "B"),
           row("fuzz", "tcn", "effect", "A")]
        + [row("delay", "cnn", "model", "A")] * 10
        + [row("fuzz", "cnn", "clean", "B")]
    )
    by_key = {(s["effect"], s["arch"]): s for s in summarise(rows)}
    assert list(by_key) == [("delay", "cnn"), ("fuzz", "cnn"), ("fuzz", "tcn")]  # sorted
    fuzz = by_key[("fuzz", "tcn")]
    assert (fuzz["model_trials"], fuzz["closer_to_b"], fuzz["share_b"]) == (10, 9, 0.9)
    assert fuzz["p_value"] == pytest.approx(11 / 1024)
    assert (fuzz["control_trials"], fuzz["control_correct"]) == (3, 2)
    assert fuzz["control_p_value"] == pytest.approx(4 / 8)
    assert fuzz["verdict"] == "heard closer to the effect"
    assert by_key[("delay", "cnn")]["verdict"] == "heard closer to the clean input"
    only_controls = by_key[("fuzz", "cnn")]
    assert only_controls["share_b"] is None and only_controls["p_value"] is None
    assert only_controls["verdict"] == "no model trials yet"


def test_format_summary_is_one_line_per_model():
    text = format_summary(summarise([row("fuzz", "tcn", "model", "B")] * 3))
    assert text.splitlines()[1].split()[:5] == ["fuzz", "tcn", "3", "of", "3"]
    assert format_summary([]) == "no answers yet"
