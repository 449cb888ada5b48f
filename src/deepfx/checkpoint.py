"""Resumable training state: atomic saves, and loading only what belongs to this job."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from deepfx.atomic import atomic_file

__all__ = ["fingerprint", "load_checkpoint", "save_torch"]

log = logging.getLogger(__name__)


def save_torch(path: Path, obj: object) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (a killed job never leaves half a file)."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def fingerprint(config: Mapping, files: Mapping[str, Path]) -> str:
    """A hash of a JSON-able ``config`` and of each labelled file's size (bytes) and mtime.

    Files are keyed by a label (not their path), so the same data reached through another
    path (relative/absolute) gives the same fingerprint.
    """
    stats = {}
    for label, path in files.items():
        st = os.stat(path)
        stats[label] = [st.st_size, st.st_mtime_ns]
    text = json.dumps({"config": config, "files": stats}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` if it exists, loads and matches ``expected_fingerprint``.

    None otherwise (absent, unreadable, or from another configuration or data).
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: start afresh
        log.warning("%s: ignored, cannot be loaded (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        log.warning("%s: ignored, it belongs to another configuration or data", path)
        return None
    return state
