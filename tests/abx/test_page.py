"""The ABX page in a real headless Chromium: keyboard answers reach results.csv and the summary;
replayed and malformed answers are refused with a clear message and lose nothing."""

from __future__ import annotations

import pytest

from deepfx.abx.results import read_results

from .client import request

pytestmark = pytest.mark.browser

#: Keys pressed for the 8 trials and the answer each one means.
KEYS = [("2", "B"), ("1", "A"), ("ArrowRight", "B"), ("ArrowLeft", "A"),
        ("2", "B"), ("2", "B"), ("1", "A"), ("ArrowRight", "B")]

POST = """async ([body, type]) => {
    const r = await fetch('/api/answer', {method: 'POST', headers: {'Content-Type': type}, body});
    return [r.status, await r.json()];
}"""


def wait_for_trial(page, number: int, total: int = 8) -> None:
    page.wait_for_function(f"document.getElementById('trial-number').textContent === "
                           f"'Trial {number} of {total}'")


def test_keyboard_answers_are_recorded_and_summarised(page, server, results_path):
    page.goto(server.url)
    wait_for_trial(page, 1)
    for number, (key, _) in enumerate(KEYS, start=1):
        wait_for_trial(page, number)
        page.keyboard.press(key)
        if number < len(KEYS):
            page.wait_for_selector(f"#message:text('Trial {number}: X is closer to')")
    page.wait_for_selector("body.finished")
    assert page.inner_text("#trial-number") == "8 of 8 trials answered"

    rows, unreadable = read_results(results_path)
    assert unreadable == 0
    assert [(int(r["trial"]), r["answer"]) for r in rows] == [
        (n, answer) for n, (_, answer) in enumerate(KEYS, start=1)]

    page.wait_for_selector("#summary-table tbody tr")
    assert page.locator("details#results").get_attribute("open") is not None
    shown = page.eval_on_selector_all(
        "#summary-table tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
    assert len(shown) == len({(r["effect"], r["arch"]) for r in rows})
    for effect, arch, closer, _, controls, _, _ in shown:
        mine = [r for r in rows if (r["effect"], r["arch"]) == (effect, arch)]
        model = [r for r in mine if r["x_is"] == "model"]
        k = sum(r["answer"] == "B" for r in model)
        assert closer.startswith(f"{k} of {len(model)}")
        right = sum(r["answer"] == ("A" if r["x_is"] == "clean" else "B") for r in mine if r not in model)
        assert controls == f"{right} of {len(mine) - len(model)}"
    assert "8 answers in" in page.inner_text("#summary-note")


def test_players_hold_the_trials_audio(page, server):
    page.goto(server.url)
    wait_for_trial(page, 1)
    sources = page.eval_on_selector_all("audio", "els => els.map(e => e.src)")
    token = page.evaluate("current.token")
    assert sources == [f"{server.url}audio/{token}/{k}.wav" for k in "abx"]
    for src in sources:
        status, headers, body = request(server.url, "GET", src.removeprefix(server.url[:-1]))
        assert status == 200 and headers["Content-Type"] == "audio/wav" and body[:4] == b"RIFF"
    durations = page.evaluate("""() => Promise.all(Array.from(document.querySelectorAll('audio'))
        .map(a => a.readyState >= 1 ? a.duration : new Promise((resolve, reject) => {
            a.addEventListener('loadedmetadata', () => resolve(a.duration));
            a.addEventListener('error', () => reject(new Error(a.src)));
        })))""")
    assert durations == [pytest.approx(0.5, abs=0.01)] * 3  # abx.excerpt_seconds of .test/params.yaml
    page.keyboard.press("x")
    assert "playing" in page.get_attribute("#play-x", "class")
    page.keyboard.press(" ")
    assert "playing" not in page.get_attribute("#play-x", "class")


def test_a_replayed_answer_is_refused_with_its_message(page, server, results_path):
    page.goto(server.url)
    wait_for_trial(page, 1)
    first = page.evaluate("current.token")
    page.keyboard.press("2")
    wait_for_trial(page, 2)
    before = results_path.read_bytes()
    page.evaluate(f"current.token = {first!r}")  # the page now answers trial 1 again
    page.keyboard.press("1")
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message") == (
        f"trial 1 (token {first!r}) was already answered; a replayed answer is not recorded")
    # the page reloads the current trial and carries on with it
    page.wait_for_function(f"current.token !== {first!r} && !busy")
    assert page.inner_text("#trial-number") == "Trial 2 of 8"
    assert results_path.read_bytes() == before


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [("{bad", "application/json", "answer: the body is not valid JSON"),
     ('{"answer": "B"}', "application/json", "expected the keys 'answer' and 'token'"),
     ('{"token": "t", "answer": "B"}', "text/plain", "Content-Type must be application/json")],
    ids=["syntax", "no-token", "form-post"],
)
def test_malformed_answers_from_the_page_lose_nothing(page, server, results_path, body,
                                                      content_type, message):
    page.goto(server.url)
    wait_for_trial(page, 1)
    page.keyboard.press("1")
    wait_for_trial(page, 2)
    before = results_path.read_bytes()
    status, reply = page.evaluate(POST, [body, content_type])
    assert status == 400 and message in reply["error"]
    assert results_path.read_bytes() == before
    page.keyboard.press("2")  # the session goes on
    wait_for_trial(page, 3)
    assert [r["answer"] for r in read_results(results_path)[0]] == ["A", "B"]
