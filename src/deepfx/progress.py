"""What a training job shows on a terminal: a progress bar with its losses and the time left."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Mapping

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

__all__ = ["TrainingProgress"]


class TrainingProgress:
    """A bar of batches with the last batch's loss, the last epoch's losses and the seconds
    left, on a terminal only (job logs get the per-epoch log lines)."""

    def __init__(self, effect: str, arch: str, train: Mapping, done_epochs: int) -> None:
        steps = train["steps_per_epoch"]
        self.bar = tqdm(total=train["epochs"] * steps, initial=done_epochs * steps, unit="batch",
                        desc=f"{effect}/{arch}", leave=False, dynamic_ncols=True,
                        disable=not sys.stderr.isatty())
        self.shown: dict[str, str] = {}
        self._logs = contextlib.nullcontext() if self.bar.disable else logging_redirect_tqdm([logging.getLogger()])

    def __enter__(self) -> "TrainingProgress":
        self._logs.__enter__()  # log lines print above the bar
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
        self._logs.__exit__(*exc)

    def batch(self, loss: float) -> None:
        self.bar.update(1)
        self._show(batch=f"{loss:.4g}")

    def epoch(self, train_loss: float, valid: float, deadline: float) -> None:
        """Losses and seconds left: the epochs' pace or the time budget, whichever ends first."""
        if self.bar.disable:
            return
        done = self.bar.n - self.bar.initial
        pace = self.bar.format_dict["elapsed"] / done if done else 0.0
        left = max(min(pace * (self.bar.total - self.bar.n), deadline - time.perf_counter()), 0.0)
        self._show(train=f"{train_loss:.4g}", valid=f"{valid:.4g}", left=f"{left:.0f}s")

    def _show(self, **fields: str) -> None:
        if not self.bar.disable:
            self.shown.update(fields)
            self.bar.set_postfix(self.shown, refresh=False)
