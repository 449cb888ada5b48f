"""The blind ABX listening test: ``deepfx abx serve``.

A is the clean input, B the effect's output, X the model's output or (as a control) A or B
itself, drawn at random on the server and hidden from the page. Each answer ("X is closer to
A" or "to B") is appended to ``reports/abx/results.csv``; the summary gives, per effect and
model, how often X was judged closer to B, with a binomial p-value.

Modules: ``loudness`` (level matching), ``trials`` (excerpts and the session's trials),
``results`` (the append-only CSV), ``stats`` (the summary), ``server`` (the local web server).
"""

__all__: list[str] = []
