"""Export a trained model for use outside deepfx: ONNX (any runtime) or .nam (Neural Amp Modeler).

The format modules are imported on use, so the CLI can list formats and gear types cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepfx.errors import DeepfxError

__all__ = ["FORMATS", "export_model"]

#: Export formats and the file ending each writes.
FORMATS = {"onnx": ".onnx", "nam": ".nam"}


def export_model(
    model_path: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    gear_type: str = "pedal",
) -> Path:
    """Export the model at ``model_path`` as ``fmt`` to ``out`` (default: beside it).

    ``name`` and ``gear_type`` are .nam metadata (see :func:`deepfx.export.nam.nam_dict`).
    Returns the written path.

    Raises:
        DeepfxError: unknown format, bad model file, an architecture the format cannot hold,
            or an output folder that does not exist. Nothing is left behind.
    """
    if fmt not in FORMATS:
        raise DeepfxError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    from deepfx.evaluate import load_model

    model_path = Path(model_path)
    out = Path(out) if out is not None else model_path.with_suffix(FORMATS[fmt])
    if not out.parent.is_dir():
        raise DeepfxError(f"{out}: the folder {out.parent} does not exist")
    model, meta = load_model(model_path)
    if fmt == "onnx":
        from deepfx.export.onnx import write_onnx

        return write_onnx(model, meta, out)
    from deepfx.export.nam import write_nam

    return write_nam(model, meta, out, name=name, gear_type=gear_type)
