"""The ABX server over real HTTP: trials that hide X, audio, answers on disk, bad requests."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import pytest
import soundfile as sf

from deepfx.abx.loudness import level_db
from deepfx.abx.results import COLUMNS, read_results
from deepfx.abx.server import create_app
from deepfx.errors import DeepfxError

from .client import get_json, post_answer, request


def answer_all(url: str, choice: str = "B") -> list[dict]:
    """Answer every trial of the session with ``choice``; returns the trials as served."""
    served = []
    while not (trial := get_json(url, "/api/trial"))["done"]:
        served.append(trial)
        status, reply = post_answer(url, {"token": trial["token"], "answer": choice})
        assert status == 200 and reply["recorded"], reply
    return served


def test_a_trial_shows_its_token_and_audio_but_not_what_x_is(server, app):
    trial = get_json(server.url, "/api/trial")
    assert set(trial) == {"done", "token", "number", "effect", "seconds", "audio", "answered", "total"}
    assert trial["number"] == 1 and trial["answered"] == 0 and trial["total"] == app.deck.total
    assert app.deck.total == 2 * 2 * 2  # 2 effects × 2 archs × trials_per_model 2
    assert len(trial["token"]) >= 20  # 128 random bits, not guessable
    assert trial["audio"] == {k: f"/audio/{trial['token']}/{k}.wav" for k in "abx"}
    for word in ("model", "clean", "arch", "cnn", "tcn", "fir"):
        assert word not in json.dumps({k: v for k, v in trial.items() if k != "token"})
    assert get_json(server.url, "/api/trial")["token"] == trial["token"]  # reload: same trial


def test_audio_is_loudness_matched_16_bit_wav(server, fake_run):
    _, params = fake_run
    rate = params["sample_rate"]
    trial = get_json(server.url, "/api/trial")
    levels = []
    for key in "abx":
        status, headers, body = request(server.url, "GET", trial["audio"][key])
        assert status == 200 and headers["Content-Type"] == "audio/wav"
        assert sf.info(io.BytesIO(body)).subtype == "PCM_16"
        x, file_rate = sf.read(io.BytesIO(body), dtype="float32")
        assert file_rate == rate and len(x) == round(trial["seconds"] * rate)
        assert abs(x[0]) < 1e-3 and abs(x[-1]) < 1e-3  # faded in and out
        levels.append(level_db(x, rate))
    assert max(levels) - min(levels) < 0.5  # dB: matched
    assert max(levels) <= params["abx"]["loudness_dbfs"] + 0.5  # at the target, or below if it would clip


def test_answers_are_appended_with_what_x_was(server, app, results_path):
    served = answer_all(server.url, "B")
    rows, unreadable = read_results(results_path)
    assert unreadable == 0
    assert [int(r["trial"]) for r in rows] == [t["number"] for t in served] == list(range(1, 9))
    trials = {t.number: t for t in app.deck._trials}
    for row in rows:
        trial = trials[int(row["trial"])]
        assert (row["effect"], row["arch"], row["x_is"]) == (
            trial.source.effect, trial.source.arch, trial.x_is)
        assert row["answer"] == "B" and row["listener"] == "tester" and row["session"] == app.session
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", row["answered_at"])
        assert float(row["response_seconds"]) >= 0
    for effect, arch in {(r["effect"], r["arch"]) for r in rows}:  # control_share 0.5 of 2
        kinds = sorted(r["x_is"] for r in rows if (r["effect"], r["arch"]) == (effect, arch))
        assert kinds in (["clean", "model"], ["effect", "model"])
    assert results_path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert get_json(server.url, "/api/trial") == {"done": True, "answered": 8, "total": 8}


def test_summary_counts_every_answer(server, results_path):
    trial = get_json(server.url, "/api/trial")
    post_answer(server.url, {"token": trial["token"], "answer": "A"})
    answer_all(server.url, "B")
    rows, _ = read_results(results_path)
    summary = get_json(server.url, "/api/summary")
    assert summary["answers"] == 8 and summary["unreadable_lines"] == 0
    for s in summary["summary"]:
        mine = [r for r in rows if (r["effect"], r["arch"]) == (s["effect"], s["arch"])]
        model = [r for r in mine if r["x_is"] == "model"]
        assert s["model_trials"] == len(model)
        assert s["closer_to_b"] == sum(r["answer"] == "B" for r in model)
        assert s["control_trials"] == len(mine) - len(model)


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ("{not json", {}, "not valid JSON"),
        ("[1, 2]", {}, "expected a JSON object"),
        ({"token": "x"}, {}, "expected the keys 'answer' and 'token', found 'token'"),
        ({"token": "x", "answer": "A", "extra": 1}, {}, "found 'answer', 'extra', 'token'"),
        ({"token": 5, "answer": "A"}, {}, "'token' must be a non-empty string"),
        ({"token": "TOKEN", "answer": "C"}, {}, "'answer' must be \"A\" or \"B\", found 'C'"),
        ({"token": "TOKEN", "answer": "a"}, {}, "'answer' must be"),
        ({"token": "nope", "answer": "A"}, {}, "trial token 'nope' is unknown"),
        ('{"token": "TOKEN", "answer": "A"}', {"Content_Type": "text/plain"},
         "Content-Type must be application/json"),
        ("x" * 5000, {"Content_Type": "application/json"}, "at most 4096 bytes"),
    ],
    ids=["syntax", "list", "missing-key", "extra-key", "token-type", "bad-answer", "lower-case",
         "unknown-token", "content-type", "too-big"],
)
def test_malformed_answers_are_rejected_and_nothing_is_lost(server, results_path, body, headers, message):
    first = get_json(server.url, "/api/trial")
    post_answer(server.url, {"token": first["token"], "answer": "A"})  # one good answer on disk
    before = results_path.read_bytes()
    current = get_json(server.url, "/api/trial")
    if isinstance(body, dict):
        body = {k: (current["token"] if v == "TOKEN" else v) for k, v in body.items()}
    elif isinstance(body, str):
        body = body.replace("TOKEN", current["token"])
    headers.setdefault("Content_Type", "application/json")
    status, reply = post_answer(server.url, body, **headers)
    assert status == 400 and message in reply["error"], reply
    assert results_path.read_bytes() == before
    assert get_json(server.url, "/api/trial")["token"] == current["token"]  # still to answer


def test_a_replayed_answer_is_rejected_and_recorded_once(server, results_path):
    trial = get_json(server.url, "/api/trial")
    assert post_answer(server.url, {"token": trial["token"], "answer": "B"})[0] == 200
    before = results_path.read_bytes()
    for answer in ("B", "A"):
        status, reply = post_answer(server.url, {"token": trial["token"], "answer": answer})
        assert status == 400
        assert reply["error"] == (f"trial 1 (token {trial['token']!r}) was already answered; "
                                  "a replayed answer is not recorded")
    assert results_path.read_bytes() == before
    assert len(read_results(results_path)[0]) == 1


def test_audio_of_answered_or_unknown_trials_is_not_served(server):
    trial = get_json(server.url, "/api/trial")
    post_answer(server.url, {"token": trial["token"], "answer": "A"})
    assert request(server.url, "GET", trial["audio"]["x"])[0] == 404
    assert request(server.url, "GET", "/audio/unknown/x.wav")[0] == 404
    assert request(server.url, "GET", "/audio/../../etc/passwd")[0] == 404


def test_other_hosts_and_pages_are_refused(server):
    status, _, body = request(server.url, "GET", "/api/trial", headers={"Host": "evil.example:80"})
    assert status == 403 and b"Host" in body
    assert request(server.url, "GET", "/nowhere")[0] == 404
    assert request(server.url, "POST", "/api/trial", {"token": "x", "answer": "A"})[0] == 404
    status, headers, body = request(server.url, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"ABX" in body and b"$" not in body  # every template field filled in


def test_server_listens_on_loopback_only(server):
    host, port = server.server_address
    assert host == "127.0.0.1" and port > 0 and server.url == f"http://127.0.0.1:{port}/"


def test_an_existing_foreign_file_is_never_overwritten(fake_run, tmp_path):
    root, params = fake_run
    path = tmp_path / "results.csv"
    path.write_text("name,score\nalice,3\n")
    with pytest.raises(DeepfxError, match=f"{path}: not an ABX results file"):
        create_app(params, path, clean_dir=root / "data/clean",
                   processed_root=root / "data/processed", reports_dir=root / "reports")
    assert path.read_text() == "name,score\nalice,3\n"


def test_missing_predictions_are_named_before_anything_is_written(fake_run, tmp_path):
    root, params = fake_run
    with pytest.raises(DeepfxError, match=r"reports/effects/distortion/cnn/predictions/.*\.wav: "
                                          r"missing; evaluate the model first"):
        create_app(params, tmp_path / "r.csv", clean_dir=root / "data/clean",
                   processed_root=root / "data/processed", reports_dir=tmp_path / "reports")
    assert not (tmp_path / "r.csv").exists()


def test_cli_serves_the_page_and_prints_the_summary(fake_run, tmp_path):
    root, params = fake_run
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    results = tmp_path / "results.csv"
    command = [sys.executable, "-m", "deepfx.cli", "--params", str(tmp_path / "params.yaml"), "abx"]
    paths = ["--clean", str(root / "data/clean"), "--processed", str(root / "data/processed"),
             "--reports", str(root / "reports"), "--results", str(results)]
    proc = subprocess.Popen([*command, "serve", *paths, "--effect", "low_pass", "--arch", "fir"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, line = time.monotonic() + 60, ""
        while "http://" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert "ABX test of 2 trials" in line
        answer_all(url, "A")
    finally:
        proc.terminate()
        proc.wait(10)
    summary = subprocess.run([*command, "summary", "--results", str(results)],
                             capture_output=True, text=True, check=True).stdout
    assert summary.splitlines()[0].split()[:2] == ["effect", "arch"]
    assert re.search(r"^low_pass\s+fir\s+0 of 1 ", summary, re.M)


def test_cli_rejects_an_unknown_effect(fake_run, tmp_path, capsys):
    from deepfx.cli import main

    root, params = fake_run
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    status = main(["--params", str(tmp_path / "params.yaml"), "abx", "serve", "--effect", "fuzz",
                   "--results", str(tmp_path / "r.csv")])
    assert status == 2
    assert "effects: no effect named 'fuzz'" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
