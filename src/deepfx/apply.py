"""Use a trained effect on an audio file of any length: streaming inference with carried state.

:func:`apply_file` (``deepfx apply MODEL INPUT OUTPUT``) reads the input in blocks, resamples
each block to the model's rate with a streaming resampler (soxr), runs every channel through a
:class:`Stream` that carries the model's history from block to block, resamples back and writes
the blocks to a temporary file that replaces OUTPUT only once it is complete. The result equals
processing the whole file at once (max abs difference < 1e-5) while memory stays flat.

Streams take and return (channels, samples) float32 blocks of any length, zero included:

- :class:`ContextStream` works for every causal model: each block is fed together with the
  ``receptive_field - 1`` input samples before it.
- :class:`TCNStream` is the fast form for :class:`~deepfx.models.tcn.TCN`: each layer keeps its
  own last ``(kernel_size - 1) * dilation`` input samples, so a block costs only its own samples
  (the context form recomputes the whole receptive field for every block).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn
from tqdm import tqdm

from deepfx.atomic import atomic_file
from deepfx.audio import AUDIO_SUFFIXES
from deepfx.errors import DeepfxError
from deepfx.evaluate import load_model
from deepfx.models.tcn import TCN

__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "ContextStream",
    "Stream",
    "TCNStream",
    "apply_file",
    "open_stream",
]

#: Samples (at the input file's rate) read, processed and written per step by :func:`apply_file`.
DEFAULT_BLOCK_SAMPLES = 8192
#: Output subtype per file ending; other endings use soundfile's default for their format.
_SUBTYPES = {".wav": "FLOAT"}


class Stream(Protocol):
    """A model run block by block: the output blocks join into the whole-signal output."""

    def process(self, block: np.ndarray) -> np.ndarray:
        """(channels, n) float32 input samples → the (channels, n) output samples."""
        ...


class ContextStream:
    """Any causal model (in eval mode): each block runs with the rf - 1 input samples before it."""

    def __init__(self, model: nn.Module, channels: int) -> None:
        self._model = model
        self._keep = model.receptive_field - 1
        self._context = torch.zeros(channels, 0)

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        n = block.shape[1]
        if n == 0:
            return np.zeros_like(block, dtype=np.float32)
        x = torch.cat((self._context, torch.from_numpy(np.asarray(block, np.float32))), dim=1)
        y = self._model(x[:, None, :])[:, 0, x.shape[1] - n :]
        self._context = x[:, max(0, x.shape[1] - self._keep) :].clone()
        return y.numpy()


class _TCNLayer:
    """One TCN layer's weights arranged for block-wise products; the skip folds into the head.

    The input history of the layer, ``(kernel_size - 1) * dilation`` samples per channel, is
    passed in and returned by :meth:`step` (zeros at first, exactly like the layer's own left
    padding). Each tap is one (out, in) matrix product over a shifted view of that history,
    and the skip 1×1 conv is pre-multiplied by the head's weights, so :meth:`step` returns
    the residual-updated signal and the layer's (1, n) share of the output.
    """

    def __init__(self, layer: nn.Module, head: torch.Tensor) -> None:
        conv, out = layer.conv, layer.out
        self.channels, self.dilation, self.pad = conv.in_channels, conv.dilation[0], layer.pad
        self.gated = layer.gated
        self.taps = [w.contiguous() for w in conv.weight.detach().unbind(2)]
        self.bias = conv.bias.detach()[:, None].clone()
        residual_w, skip_w = out.weight.detach()[:, :, 0].split(self.channels)
        residual_b, skip_b = out.bias.detach().split(self.channels)
        self.out = torch.cat((residual_w, head @ skip_w)).contiguous()
        self.out_bias = torch.cat((residual_b, head @ skip_b))[:, None].contiguous()

    def step(
        self, history: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(C, pad) history, (C, n) input → (new history, (C, n) output, (1, n) output share)."""
        n, d = h.shape[1], self.dilation
        buf = torch.cat((history, h), dim=1)
        z = torch.mm(self.taps[0], buf[:, :n])
        for k, tap in enumerate(self.taps[1:], start=1):
            z.addmm_(tap, buf[:, k * d : k * d + n])
        z.add_(self.bias)
        if self.gated:
            z = torch.tanh(z[: self.channels]).mul_(torch.sigmoid(z[self.channels :]))
        else:
            z.tanh_()
        out = torch.mm(self.out, z).add_(self.out_bias)
        return buf[:, buf.shape[1] - self.pad :], h.add_(out[: self.channels]), out[self.channels :]


class TCNStream:
    """A :class:`~deepfx.models.tcn.TCN` with per-layer history: a block costs its own samples.

    The weights are copied when the stream is opened (later changes to the model are not seen).
    """

    def __init__(self, model: TCN, channels: int) -> None:
        head = model.head.weight.detach()[:, :, 0]  # (1, C)
        self._in_w = model.input.weight.detach()[:, :, 0].clone()  # (C, 1)
        self._in_b = model.input.bias.detach()[:, None].clone()
        self._out_b = float(model.head.bias.detach())
        self._layers = [_TCNLayer(layer, head) for layer in model.layers]
        self._history = [
            [torch.zeros(layer.channels, layer.pad) for layer in self._layers]
            for _ in range(channels)
        ]

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        out = np.empty_like(block, dtype=np.float32)
        if block.shape[1] == 0:
            return out
        for channel, history in enumerate(self._history):
            x = torch.from_numpy(np.asarray(block[channel : channel + 1], np.float32))
            h = torch.addcmul(self._in_b, self._in_w, x)  # the 1→C input 1×1 conv
            y = torch.full_like(x, self._out_b)
            for i, layer in enumerate(self._layers):
                history[i], h, share = layer.step(history[i], h)
                y += share
            out[channel] = y[0].numpy()
        return out


def open_stream(model: nn.Module, channels: int) -> Stream:
    """The fastest exact stream of ``model`` for ``channels`` independent channels."""
    return TCNStream(model, channels) if isinstance(model, TCN) else ContextStream(model, channels)


class _Pipeline:
    """File-rate blocks → model-rate stream → file-rate blocks, resampling only when needed."""

    def __init__(self, stream: Stream, file_rate: int, model_rate: int, channels: int) -> None:
        self._stream = stream
        self._resample = file_rate != model_rate
        if self._resample:
            self._down = soxr.ResampleStream(file_rate, model_rate, channels, dtype="float32")
            self._up = soxr.ResampleStream(model_rate, file_rate, channels, dtype="float32")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """(n, channels) samples at the file's rate → the (m, channels) output ready so far."""
        if not self._resample:
            return self._stream.process(block.T).T
        x = self._down.resample_chunk(block, last=last)
        y = np.ascontiguousarray(self._stream.process(np.ascontiguousarray(x.T)).T)
        return self._up.resample_chunk(y, last=last)


def _check_paths(input_path: Path, output_path: Path) -> None:
    if not input_path.is_file():
        raise DeepfxError(f"{input_path}: no such audio file")
    if output_path.suffix.lower() not in AUDIO_SUFFIXES:
        raise DeepfxError(
            f"{output_path}: unsupported output type; use one of {', '.join(AUDIO_SUFFIXES)}"
        )
    if output_path.resolve() == input_path.resolve() or (
        output_path.exists() and os.path.samefile(output_path, input_path)
    ):
        raise DeepfxError(f"{output_path}: refusing to overwrite the input file")
    if not output_path.parent.is_dir():
        raise DeepfxError(f"{output_path}: the folder {output_path.parent} does not exist")


def _open_input(path: Path) -> sf.SoundFile:
    try:
        src = sf.SoundFile(path)
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise DeepfxError(f"{path}: cannot be read as audio ({exc})") from None
    if src.frames == 0:
        src.close()
        raise DeepfxError(f"{path}: the audio file is empty (0 samples)")
    return src


def _blocks(src: sf.SoundFile, path: Path, block_samples: int) -> Iterator[np.ndarray]:
    """(n, channels) float32 blocks of ``src``; DeepfxError (naming ``path``) for bad data."""
    try:
        for block in src.blocks(block_samples, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise DeepfxError(f"{path}: the audio holds NaN or infinite samples")
            yield block
    except sf.SoundFileError as exc:
        raise DeepfxError(f"{path}: cannot be read as audio ({exc})") from None


def apply_file(
    model_path: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    resample: bool = True,
    progress: bool = True,
) -> dict:
    """Run the model at ``model_path`` over ``input_path``; write ``output_path`` atomically.

    The output has the input's rate, channel count (each channel processed on its own) and
    length; ``.wav`` is written as 32-bit float, other formats clip to ±1. ``block_samples``
    (at the input's rate) bounds memory; it does not change the result. With ``resample``
    off, an input at another rate than the model's is an error. Returns a summary (input rate
    and model rate in Hz, channels, samples, seconds).

    Raises:
        DeepfxError: unknown or corrupt model file, missing or unreadable audio, an input at
            another rate with ``resample`` off, NaN or infinite input samples, an output that
            is the input, of an unknown type or in a missing folder. No output is left behind.
    """
    if block_samples < 1:
        raise DeepfxError(f"block_samples: expected a positive sample count, got {block_samples}")
    input_path, output_path = Path(input_path), Path(output_path)
    _check_paths(input_path, output_path)
    model, meta = load_model(Path(model_path))
    model_rate = int(meta["sample_rate"])
    with _open_input(input_path) as src:
        rate, channels = src.samplerate, src.channels
        if rate != model_rate and not resample:
            raise DeepfxError(
                f"{input_path}: {rate} Hz audio, but the model {model_path} was trained at "
                f"{model_rate} Hz; allow resampling or convert the file"
            )
        pipeline = _Pipeline(open_stream(model, channels), rate, model_rate, channels)
        subtype = _SUBTYPES.get(output_path.suffix.lower())
        read = written = 0
        with (
            atomic_file(output_path) as tmp,
            sf.SoundFile(tmp, "w", rate, channels, subtype=subtype) as dst,
            tqdm(total=src.frames, unit="sample", unit_scale=True, desc=input_path.name,
                 disable=not progress, leave=False) as bar,
        ):

            def write(out: np.ndarray) -> None:
                nonlocal written
                out = out[: read - written]  # the resamplers' output never runs ahead of the input
                dst.write(out if subtype == "FLOAT" else np.clip(out, -1.0, 1.0))
                written += len(out)

            for block in _blocks(src, input_path, block_samples):
                read += len(block)
                write(pipeline.process(block))
                bar.update(len(block))
            write(pipeline.process(np.zeros((0, channels), np.float32), last=True))
            dst.write(np.zeros((read - written, channels), np.float32))
    return {
        "sample_rate": rate,
        "model_sample_rate": model_rate,
        "channels": channels,
        "samples": read,
        "seconds": read / rate,
    }
