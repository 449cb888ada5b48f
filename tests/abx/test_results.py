"""results.csv is only ever appended to, line by line, and survives a crash mid-line."""

from __future__ import annotations

import threading

import pytest

from deepfx.abx.results import COLUMNS, ResultsLog, read_results
from deepfx.errors import DeepfxError

HEADER = ",".join(COLUMNS) + "\n"


def answer(n: int, x_is: str = "model", value: str = "B") -> dict:
    return {c: "" for c in COLUMNS} | {"trial": n, "effect": "fuzz", "arch": "tcn",
                                       "x_is": x_is, "answer": value, "listener": 'a, "b"'}


def test_a_new_file_gets_the_header_then_one_line_per_answer(tmp_path):
    path = tmp_path / "abx" / "results.csv"
    log = ResultsLog(path)
    assert path.read_text() == HEADER
    log.append(answer(1))
    log.append(answer(2, "clean", "A"))
    rows, unreadable = read_results(path)
    assert unreadable == 0
    assert [(r["trial"], r["x_is"], r["answer"], r["listener"]) for r in rows] == [
        ("1", "model", "B", 'a, "b"'), ("2", "clean", "A", 'a, "b"')]


def test_reopening_appends_and_keeps_every_line(tmp_path):
    path = tmp_path / "results.csv"
    ResultsLog(path).append(answer(1))
    before = path.read_bytes()
    ResultsLog(path).append(answer(2))
    assert path.read_bytes().startswith(before)
    assert len(read_results(path)[0]) == 2


def test_a_line_cut_by_a_crash_is_kept_and_counted_unreadable(tmp_path):
    path = tmp_path / "results.csv"
    ResultsLog(path).append(answer(1))
    with path.open("a") as f:
        f.write("2026-01-01T00:00:00.000+00:00,s,,2,fuzz,tc")  # the crash
    cut = path.read_bytes()
    ResultsLog(path).append(answer(3))
    assert path.read_bytes().startswith(cut + b"\n")
    rows, unreadable = read_results(path)
    assert [r["trial"] for r in rows] == ["1", "3"] and unreadable == 1


def test_a_foreign_file_is_refused_untouched(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DeepfxError, match=f"{path}: not an ABX results file"):
        ResultsLog(path)
    with pytest.raises(DeepfxError, match="unexpected header"):
        read_results(path)
    assert path.read_text() == "a,b\n1,2\n"


def test_a_folder_in_the_way_is_named(tmp_path):
    with pytest.raises(DeepfxError, match=f"{tmp_path}: is a folder"):
        ResultsLog(tmp_path)


def test_concurrent_answers_each_get_a_whole_line(tmp_path):
    log = ResultsLog(tmp_path / "results.csv")
    threads = [threading.Thread(target=lambda i=i: [log.append(answer(10 * i + k)) for k in range(10)])
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows, unreadable = read_results(log.path)
    assert unreadable == 0 and sorted(int(r["trial"]) for r in rows) == list(range(80))


def test_an_absent_file_holds_no_answers(tmp_path):
    assert read_results(tmp_path / "none.csv") == ([], 0)
