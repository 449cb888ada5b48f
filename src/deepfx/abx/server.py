"""The ABX test's local web server (standard library only): the page, its trials and audio,
and the answers, which go straight to the results file.

Routes: ``GET /`` the page; ``GET /api/trial`` the current trial (its token and audio URLs,
never what X is); ``GET /audio/<token>/<a|b|x>.wav``; ``POST /api/answer`` with JSON
``{"token": …, "answer": "A" | "B"}``; ``GET /api/summary``. Bad requests get HTTP 400 and
``{"error": "<what is wrong>"}``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np

from deepfx.abx.results import ANSWERS, ResultsLog, read_results
from deepfx.abx.stats import summarise
from deepfx.abx.trials import (
    Deck,
    Trial,
    audible_windows,
    find_sources,
    plan_trials,
    render_trial,
)
from deepfx.errors import DeepfxError
from deepfx.plots import CLEAN_COLOUR, EFFECT_COLOUR, MODEL_COLOUR

__all__ = ["AbxApp", "AbxServer", "create_app", "serve"]

log = logging.getLogger("deepfx")

_MAX_BODY = 4096  # bytes accepted in an answer
_AUDIO_PATH = re.compile(r"^/audio/([A-Za-z0-9_-]{1,64})/([abx])\.wav$")


class AbxApp:
    """One session: its trials, the results file, and the audio of the current trial."""

    def __init__(
        self,
        deck: Deck,
        results: ResultsLog,
        sample_rate: int,
        loudness_db: float,
        listener: str = "",
        seed: int | None = None,
    ) -> None:
        self.deck = deck
        self.results = results
        self.sample_rate = sample_rate
        self.loudness_db = loudness_db
        self.listener = listener
        self.session = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        self._rng = np.random.default_rng(seed)  # dither only
        self._audio: dict[str, dict[str, bytes]] = {}
        self._shown: dict[str, float] = {}  # token → monotonic time of its first display
        self._lock = threading.Lock()

    def page(self) -> bytes:
        """The test page (HTML with inline style and script; no external resources), in the
        report's colours."""
        template = resources.files("deepfx").joinpath("templates/abx.html").read_text("utf-8")
        return Template(template).substitute(
            clean_colour=CLEAN_COLOUR, effect_colour=EFFECT_COLOUR, model_colour=MODEL_COLOUR,
        ).encode("utf-8")

    def trial(self) -> dict:
        """The current trial as the page sees it: no hint of what X is."""
        trial = self.deck.current()
        progress = {"answered": self.deck.answered, "total": self.deck.total}
        if trial is None:
            return {"done": True, **progress}
        with self._lock:
            self._shown.setdefault(trial.token, time.monotonic())
        return {
            "done": False,
            "token": trial.token,
            "number": trial.number,
            "effect": trial.source.effect,
            "seconds": round(trial.window.samples / self.sample_rate, 3),
            "audio": {key: f"/audio/{trial.token}/{key}.wav" for key in "abx"},
            **progress,
        }

    def audio(self, token: str, key: str) -> bytes | None:
        """The wav of A, B or X (``key``) of an unanswered trial, rendered once; else None."""
        trial = self.deck.get(token)
        if trial is None or trial is not self.deck.current():
            return None
        with self._lock:
            if token not in self._audio:
                self._audio = {token: render_trial(trial, self.sample_rate, self.loudness_db,
                                                   self._rng)}  # only the current trial's
            return self._audio[token][key]

    def answer(self, body: bytes) -> dict:
        """Record the answer in ``body`` (JSON); returns the progress.

        Raises:
            DeepfxError: malformed body, unknown token, or a replayed (already answered) token.
        """
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DeepfxError(f"answer: the body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DeepfxError(
                f"answer: expected a JSON object {{\"token\": …, \"answer\": \"A\" or \"B\"}}, "
                f"found {type(data).__name__}"
            )
        if set(data) != {"token", "answer"}:
            raise DeepfxError(f"answer: expected the keys 'answer' and 'token', found "
                              f"{', '.join(repr(k) for k in sorted(data)) or 'none'}")
        token, answer = data["token"], data["answer"]
        if not isinstance(token, str) or not token:
            raise DeepfxError(f"answer: 'token' must be a non-empty string, found {token!r}")
        if answer not in ANSWERS:
            raise DeepfxError(f"answer: 'answer' must be \"A\" or \"B\", found {answer!r}")
        trial = self.deck.answer(token, lambda t: self.results.append(self._row(t, answer)))
        with self._lock:
            self._audio.pop(token, None)
        return {"recorded": True, "trial": trial.number, "answered": self.deck.answered,
                "total": self.deck.total, "done": self.deck.current() is None}

    def _row(self, trial: Trial, answer: str) -> dict:
        """The results.csv line of ``answer`` to ``trial``."""
        shown = self._shown.get(trial.token, time.monotonic())
        return {
            "answered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "session": self.session,
            "listener": self.listener,
            "trial": trial.number,
            "effect": trial.source.effect,
            "arch": trial.source.arch,
            "x_is": trial.x_is,
            "answer": answer,
            "file": trial.window.file,
            "start_seconds": round(trial.window.start / self.sample_rate, 3),
            "excerpt_seconds": round(trial.window.samples / self.sample_rate, 3),
            "response_seconds": round(time.monotonic() - shown, 3),
        }

    def summary(self) -> dict:
        """The summary of every answer in the results file (all sessions)."""
        rows, unreadable = read_results(self.results.path)
        return {"summary": summarise(rows), "answers": len(rows), "unreadable_lines": unreadable,
                "results": str(self.results.path)}


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's ``AbxApp``."""

    server: AbxServer
    server_version = "deepfx-abx"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        log.debug("abx: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Mapping) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json; charset=utf-8")

    def _host_ok(self) -> bool:
        """Only requests addressed to this server's own host:port (no DNS rebinding)."""
        port = self.server.server_address[1]
        if self.headers.get("Host") in {f"127.0.0.1:{port}", f"localhost:{port}"}:
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        app, path = self.server.app, self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, app.page(), "text/html; charset=utf-8")
        elif path == "/api/trial":
            self._json(HTTPStatus.OK, app.trial())
        elif path == "/api/summary":
            self._json(HTTPStatus.OK, app.summary())
        elif match := _AUDIO_PATH.match(path):
            wav = app.audio(*match.groups())
            if wav is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such current trial"})
            else:
                self._send(HTTPStatus.OK, wav, "audio/wav")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        if self.path != "/api/answer":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})
            return
        try:
            body = self._body()
            self._json(HTTPStatus.OK, self.server.app.answer(body))
        except DeepfxError as exc:
            log.warning("abx: rejected an answer: %s", exc)
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def _body(self) -> bytes:
        """The request body, after checking its type and size."""
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise DeepfxError(f"answer: Content-Type must be application/json, "
                              f"found {content_type!r}")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise DeepfxError("answer: Content-Length is missing or not a number") from None
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            raise DeepfxError(f"answer: the body must be at most {_MAX_BODY} bytes, "
                              f"found {length}")
        return self.rfile.read(length)


class AbxServer(ThreadingHTTPServer):
    """The HTTP server of one ``AbxApp``, on 127.0.0.1 (port 0: a free one)."""

    daemon_threads = True

    def __init__(self, app: AbxApp, port: int = 0) -> None:
        try:
            super().__init__(("127.0.0.1", port), _Handler)
        except OSError as exc:
            raise DeepfxError(f"abx: cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None
        self.app = app

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://127.0.0.1:{self.server_address[1]}/"


def create_app(
    params: Mapping,
    results_path: Path,
    effects: Sequence[str] | None = None,
    archs: Sequence[str] | None = None,
    clean_dir: Path = Path("data/clean"),
    processed_root: Path = Path("data/processed"),
    reports_dir: Path = Path("reports"),
    listener: str = "",
    seed: int | None = None,
) -> AbxApp:
    """A session over ``effects`` × ``archs`` (default: every trained model), set up by
    ``params["abx"]``; every input is checked before the results file is touched.

    ``seed`` fixes the trial order and X draws (default: unpredictable).
    """
    settings = params["abx"]
    rate = int(params["sample_rate"])
    sources = find_sources(params, list(effects or params["effects"]), archs,
                           clean_dir, processed_root, reports_dir)
    windows = audible_windows(sources[0].clean, rate, float(settings["excerpt_seconds"]))
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    trials = plan_trials(sources, windows, int(settings["trials_per_model"]),
                         float(settings["control_share"]), rng)
    return AbxApp(Deck(trials), ResultsLog(results_path), rate,
                  float(settings["loudness_dbfs"]), listener, seed)


def serve(app: AbxApp, port: int = 0) -> None:
    """Serve ``app`` on 127.0.0.1 until Ctrl-C; every answer is already on disk by then."""
    with AbxServer(app, port) as server:
        log.info("ABX test of %d trials at %s (Ctrl-C to stop); answers go to %s",
                 app.deck.total, server.url, app.results.path)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    log.info("stopped; %d of %d trials answered in this session", app.deck.answered, app.deck.total)
