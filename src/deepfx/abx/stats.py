"""The ABX summary per effect × arch: how often X was judged closer to B, with p-values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scipy.stats import binomtest

__all__ = ["ALPHA", "p_value", "summarise", "format_summary"]

#: Significance level of the verdicts.
ALPHA = 0.05


def p_value(k: int, n: int, alternative: str = "greater") -> float | None:
    """Binomial p-value of ``k`` successes in ``n`` trials against chance (probability ½).

    ``alternative="greater"``: P(K ≥ k), small when successes are more frequent than chance;
    ``"less"``: P(K ≤ k). None when ``n`` is 0.
    """
    return float(binomtest(k, n, 0.5, alternative=alternative).pvalue) if n else None


def _verdict(k: int, n: int) -> str:
    """A few words on the model trials of one model."""
    if not n:
        return "no model trials yet"
    if p_value(k, n) < ALPHA:
        return "heard closer to the effect"
    if p_value(k, n, "less") < ALPHA:
        return "heard closer to the clean input"
    return "no clear difference yet"


def summarise(rows: Iterable[Mapping[str, str]]) -> list[dict]:
    """One dict per effect × arch in ``rows`` (results.csv lines), sorted by effect and arch.

    Keys: ``effect``, ``arch``; ``model_trials`` (X was the model), ``closer_to_b`` (of those,
    answered B), ``share_b`` and ``p_value`` (one-sided binomial test that B is chosen more
    often than chance); ``control_trials`` (X was A or B), ``control_correct`` and
    ``control_p_value`` (that the listener recognises X more often than chance); ``verdict``.
    """
    groups: dict[tuple[str, str], list[Mapping[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["effect"], row["arch"]), []).append(row)
    summary = []
    for (effect, arch), group in sorted(groups.items()):
        model = [r for r in group if r["x_is"] == "model"]
        controls = [r for r in group if r["x_is"] != "model"]
        k = sum(r["answer"] == "B" for r in model)
        correct = sum(r["answer"] == ("A" if r["x_is"] == "clean" else "B") for r in controls)
        summary.append({
            "effect": effect,
            "arch": arch,
            "model_trials": len(model),
            "closer_to_b": k,
            "share_b": k / len(model) if model else None,
            "p_value": p_value(k, len(model)),
            "control_trials": len(controls),
            "control_correct": correct,
            "control_p_value": p_value(correct, len(controls)),
            "verdict": _verdict(k, len(model)),
        })
    return summary


def format_summary(summary: list[dict]) -> str:
    """The summary as a plain-text table for the terminal."""
    if not summary:
        return "no answers yet"

    def p(value: float | None) -> str:
        return "–" if value is None else f"{value:.3g}"

    lines = [f"{'effect':<14} {'arch':<6} {'X closer to B':>14} {'p':>7} "
             f"{'controls right':>15} {'p':>7}  verdict"]
    for s in summary:
        lines.append(
            f"{s['effect']:<14} {s['arch']:<6} {s['closer_to_b']:>6} of {s['model_trials']:<4} "
            f"{p(s['p_value']):>7} {s['control_correct']:>7} of {s['control_trials']:<4} "
            f"{p(s['control_p_value']):>7}  {s['verdict']}"
        )
    return "\n".join(lines)
