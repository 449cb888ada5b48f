"""A tiny HTTP client for the ABX server tests (standard library)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


def request(url: str, method: str = "GET", path: str = "/", body: bytes | str | dict | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the server at ``url``; a dict body is sent as
    JSON with Content-Type application/json."""
    parts = urlsplit(url)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(url: str, path: str) -> dict:
    """The JSON of a GET that must succeed."""
    status, _, body = request(url, "GET", path)
    assert status == 200, body
    return json.loads(body)


def post_answer(url: str, body: bytes | str | dict, **headers: str) -> tuple[int, dict]:
    """(status, JSON reply) of a POST to /api/answer."""
    status, _, reply = request(url, "POST", "/api/answer", body,
                               {k.replace("_", "-"): v for k, v in headers.items()})
    return status, json.loads(reply)
