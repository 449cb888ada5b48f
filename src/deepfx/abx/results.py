"""The ABX answers file: a CSV that is only ever appended to, one fsync'ed line per answer."""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from deepfx.errors import DeepfxError

__all__ = ["X_KINDS", "ANSWERS", "COLUMNS", "ResultsLog", "read_results"]

#: What X can be: the model's output, or a control: the clean input (A) or the effect (B).
X_KINDS = ("model", "clean", "effect")

#: The two answers: X is closer to A (clean) or to B (effect).
ANSWERS = ("A", "B")

#: Columns of results.csv, in order.
COLUMNS = (
    "answered_at",  # ISO 8601 time of the answer (UTC, ms)
    "session",  # id of the server run that asked
    "listener",  # name given with --listener ('' if none)
    "trial",  # position of the trial in its session (1-based)
    "effect",
    "arch",
    "x_is",  # what X was: model, clean (= A) or effect (= B)
    "answer",  # A or B: what X was judged closer to
    "file",  # test file of the excerpt
    "start_seconds",  # excerpt start in that file (s)
    "excerpt_seconds",  # excerpt length (s)
    "response_seconds",  # from the trial's first display to the answer (s)
)
_HEADER = ",".join(COLUMNS) + "\n"


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry in ``folder`` durable (where the OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultsLog:
    """Appends answers to ``path``: each line is written whole, flushed and fsync'ed before
    ``append`` returns, so a crash loses at most the answer being written. Existing lines are
    never rewritten. Thread-safe.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise DeepfxError(f"{self.path}: is a folder, not an ABX results file")
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write(_HEADER)
            _fsync_dir(self.path.parent)
            return
        with self.path.open("rb") as f:
            first = f.readline().decode("utf-8", errors="replace")
            f.seek(-1, os.SEEK_END)
            ends_with_newline = f.read(1) == b"\n"
        if first.rstrip("\r\n") != _HEADER.rstrip("\n"):
            raise DeepfxError(
                f"{self.path}: not an ABX results file (its first line is {first.strip()!r}, "
                f"expected {_HEADER.strip()!r}); move it away or pass another --results"
            )
        if not ends_with_newline:  # a crash cut the last line: keep it, start a fresh one
            self._write("\n")

    def _write(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def append(self, row: Mapping[str, object]) -> None:
        """Append one answer (a value for every ``COLUMNS`` key) as one durable line."""
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"results row lacks {', '.join(missing)}")
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([row[c] for c in COLUMNS])
        with self._lock:
            self._write(line.getvalue())


def read_results(path: str | os.PathLike) -> tuple[list[dict[str, str]], int]:
    """The answers in ``path`` (one dict per line, ``COLUMNS`` keys) and how many lines could
    not be read (cut by a crash or edited by hand). An absent file holds no answers."""
    path = Path(path)
    if not path.exists():
        return [], 0
    rows, bad = [], 0
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is not None and tuple(header) != COLUMNS:
            raise DeepfxError(f"{path}: not an ABX results file (unexpected header {header})")
        for fields in reader:
            if not fields:
                continue
            row = dict(zip(COLUMNS, fields))
            if len(fields) != len(COLUMNS) or row["answer"] not in ANSWERS \
                    or row["x_is"] not in X_KINDS:
                bad += 1
                continue
            rows.append(row)
    return rows, bad
