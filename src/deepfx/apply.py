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
  (the context form recomputes the whole receptive field for every block), in four tensor
  operations per layer.
- :class:`FIRStream` is the fast form for a long :class:`~deepfx.models.fir.FIR` (delays,
  reverbs, cabinets): uniformly partitioned convolution, whose cost per sample grows with the
  number of block-sized pieces of the taps, not with the taps; :class:`ChainStream` runs
  :class:`~deepfx.models.tcn_fir.TCNWithFIR` as a TCNStream into a FIRStream.
- :class:`StateStream` is the form for models with ``stream()`` (recurrent or time-variant):
  their own state carries each channel's history (the context form would not be exact).
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
from deepfx.models.base import latency_of
from deepfx.models.fir import FIR
from deepfx.models.tcn import TCN
from deepfx.models.tcn_fir import TCNWithFIR

__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "ChainStream",
    "ContextStream",
    "FIRStream",
    "StateStream",
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


#: Blocks longer than this many samples run through a :class:`TCNStream` in pieces of it, whose
#: tensors stay in the CPU caches (whole 8192-sample blocks ran 1.3× slower).
_PIECE_SAMPLES = 2048
#: Room of a :class:`TCNStream` layer's ring buffer after its history, in pieces.
_RING_PIECES = 4


class _TCNLayer:
    """One TCN layer as two matrix products over a stack of rows (see :class:`TCNStream`).

    ``conv`` (conv width, 1 + (C + 1) + (k - 1)·C) multiplies the rows [1; the layer's input
    block (C + 1 rows); its k - 1 earlier taps, newest first]: the dilated conv and its bias
    (the running-output row gets weight 0). ``out`` (C + 1, C + 1 + C + 1) multiplies
    [activation (C); 1; input block (C + 1)]: the residual 1×1 conv plus the input and, in
    row C, the skip 1×1 conv pre-multiplied by the head plus the running output. The input
    comes last so that the product adds it after the smaller terms (rounding error as in
    the model's own forward).
    """

    def __init__(self, layer: nn.Module, head: torch.Tensor) -> None:
        conv, out = layer.conv, layer.out
        c, k = conv.in_channels, conv.kernel_size[0]
        self.pad, self.dilation, self.kernel_size = layer.pad, conv.dilation[0], k
        self.gated = layer.gated
        w = conv.weight.detach()  # (width, C, k); tap k - 1 reads the newest sample
        self.conv = torch.cat(
            [conv.bias.detach()[:, None], w[:, :, k - 1], torch.zeros(w.shape[0], 1)]
            + [w[:, :, j] for j in range(k - 2, -1, -1)],
            dim=1,
        ).contiguous()
        residual_w, skip_w = out.weight.detach()[:, :, 0].split(c)
        residual_b, skip_b = out.bias.detach().split(c)
        self.out = torch.cat((
            torch.cat((residual_w, head @ skip_w)),
            torch.cat((residual_b, head @ skip_b))[:, None],
            torch.eye(c + 1),
        ), dim=1).contiguous()


class TCNStream:
    """A :class:`~deepfx.models.tcn.TCN` with per-layer history: a block costs its own samples.

    The residual stream of C channels carries one more row, the running output (the head's
    bias plus the head-projected skips of the layers so far), so that a layer is four
    operations (six if gated) on preallocated tensors: copy its taps into one stack, the
    conv's matrix product, the activation in place, and the product that writes the next
    layer's input (the last layer's writes the output). Each layer's input lives in a ring
    buffer: its ``(kernel_size - 1) * dilation`` samples of history, then room for
    :data:`_RING_PIECES` pieces; the tensor views of a write position are made once. The
    weights are copied when the stream is opened (later changes to the model are not seen).
    """

    def __init__(self, model: TCN, channels: int) -> None:
        c = model.input.out_channels
        head = model.head.weight.detach()[:, :, 0]  # (1, C)
        self._input = torch.zeros(c + 1, 2)  # [input 1×1 conv, its bias]; [0, the head's bias]
        self._input[:c, 0] = model.input.weight.detach()[:, 0, 0]
        self._input[:c, 1] = model.input.bias.detach()
        self._input[c, 1] = model.head.bias.detach()[0]
        self._layers = [_TCNLayer(layer, head) for layer in model.layers]
        self._channels, self._c = channels, c
        self._rings = [[torch.zeros(c + 1, layer.pad) for layer in self._layers]
                       for _ in range(channels)]
        self._room = self._at = self._n = 0  # ring room and write position; piece length
        self._views: dict[int, list] = {}

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] != self._channels:
            raise ValueError(f"expected {self._channels} channels, got {block.shape[0]}")
        out = np.empty_like(block, dtype=np.float32)
        x = torch.from_numpy(np.asarray(block, np.float32))
        for start in range(0, block.shape[1], _PIECE_SAMPLES):
            end = start + _PIECE_SAMPLES
            out[:, start:end] = self._piece(x[:, start:end])
        return out

    def _piece(self, x: torch.Tensor) -> np.ndarray:
        """(channels, n) input → (channels, n) output (a view the next piece overwrites)."""
        n, c = x.shape[1], self._c
        if n != self._n:
            self._resize(n)
        if self._at + n > _RING_PIECES * n:  # also bounds the views to _RING_PIECES positions
            self._rewind()
        views = self._views.get(self._at)
        if views is None:
            views = self._views[self._at] = self._make_views(self._at)
        stack = self._stack
        z, conv_in, out_in, taps = stack[:c], stack[c:], stack[: 2 * c + 2], stack[c + 1 :]
        for channel, (first, steps) in enumerate(views):
            self._x[0] = x[channel]
            torch.mm(self._input, self._x, out=first)
            for layer, sources, out, dst in steps:
                torch.cat(sources, out=taps)
                if layer.gated:
                    torch.mm(layer.conv, conv_in, out=self._gate)
                    torch.tanh(self._gate_a, out=z).mul_(self._gate_b.sigmoid_())
                else:
                    torch.mm(layer.conv, conv_in, out=z).tanh_()
                torch.mm(out, out_in, out=dst)
        self._at += n
        return self._y.numpy()

    def _resize(self, n: int) -> None:
        """Scratch tensors for n-sample pieces; rings with room for _RING_PIECES of them."""
        c, k = self._c, self._layers[0].kernel_size
        self._n, self._views = n, {}
        self._stack = torch.ones(2 * c + 2 + (k - 1) * c, n)  # [act; 1; input; earlier taps]
        self._gate = torch.empty(2 * c, n)
        self._gate_a, self._gate_b = self._gate[:c], self._gate[c:]
        self._x = torch.ones(2, n)  # [input; 1]
        self._y = torch.empty(self._channels, n)
        if _RING_PIECES * n > self._room:
            self._rewind()
            self._room = _RING_PIECES * n
            self._rings = [
                [torch.cat((ring[:, : layer.pad], torch.zeros(c + 1, self._room)), dim=1)
                 for layer, ring in zip(self._layers, rings)]
                for rings in self._rings
            ]

    def _rewind(self) -> None:
        """Move every layer's history to the start of its ring."""
        for rings in self._rings:
            for layer, ring in zip(self._layers, rings):
                ring[:, : layer.pad] = ring[:, self._at : self._at + layer.pad].clone()
        self._at = 0

    def _make_views(self, at: int) -> list:
        """Per channel: the first layer's input block at ``at`` and, per layer, (layer, its
        input block and earlier taps, its out matrix, where the product goes)."""
        n, c = self._n, self._c
        views = []
        for channel, rings in enumerate(self._rings):
            inputs = [ring[:, layer.pad + at : layer.pad + at + n]
                      for layer, ring in zip(self._layers, rings)]
            steps = []
            for i, (layer, ring) in enumerate(zip(self._layers, rings)):
                starts = [layer.pad + at - j * layer.dilation for j in range(1, layer.kernel_size)]
                sources = [inputs[i]] + [ring[:c, start : start + n] for start in starts]
                if i + 1 < len(self._layers):
                    steps.append((layer, sources, layer.out, inputs[i + 1]))
                else:  # only the running output
                    steps.append((layer, sources, layer.out[c:], self._y[channel : channel + 1]))
            views.append((inputs[0], steps))
        return views


class FIRStream:
    """Causal convolution with ``taps`` (N,) by uniformly partitioned overlap-save.

    The taps are cut into P pieces of the block length B. Each block's 2B-sample window (the
    block before it, then itself) is transformed once and kept in a frequency-domain delay line
    of the last P windows; the output block is the inverse transform of the sum of each
    piece's spectrum times the window that many blocks old, second half. A block costs two
    FFTs of 2B samples and P·(B + 1) complex products per channel instead of N·B products. A
    block of another length re-cuts the taps and rebuilds the delay line from the kept input
    history (the last N samples).
    """

    def __init__(self, taps: torch.Tensor, channels: int) -> None:
        self._taps = taps.detach().float().flatten()
        self._history = torch.zeros(channels, self._taps.numel())  # newest sample last
        self._b = 0

    def _partition(self, b: int) -> None:
        """Spectra of the taps in pieces of ``b`` and the delay line of the history's windows."""
        n = self._taps.numel()
        p = -(-n // b)
        pieces = torch.nn.functional.pad(self._taps, (0, p * b - n)).view(p, b)
        spectra = torch.fft.rfft(pieces, n=2 * b)  # (P, B + 1)
        # oldest window first, so that the delay line's ring lines up with a slice of this
        self._spectra = torch.cat((spectra.flip(0), spectra.flip(0)))
        past = torch.nn.functional.pad(self._history, (p * b - n, 0))  # (C, P·B)
        self._ring = torch.zeros(p, past.shape[0], b + 1, dtype=spectra.dtype)
        if p > 1:  # the windows of the blocks before, oldest first; the last slot is the next's
            self._ring[:-1] = torch.fft.rfft(past.unfold(1, 2 * b, b), dim=-1).transpose(0, 1)
        self._pos = p - 1  # the slot the coming window goes to
        self._last = past[:, p * b - b:].clone()
        self._b, self._p = b, p

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(block, np.float32))
        b = x.shape[1]
        if b == 0:
            return np.zeros_like(block, dtype=np.float32)
        if b != self._b:
            self._partition(b)
        self._ring[self._pos] = torch.fft.rfft(torch.cat((self._last, x), dim=1), dim=-1)
        # slot s holds the window (pos - s) mod P blocks old: piece P - 1 - ((pos - s) mod P) of
        # the flipped spectra, i.e. the contiguous slice starting at P - 1 - pos
        start = self._p - 1 - self._pos
        spectrum = (self._ring * self._spectra[start : start + self._p, None, :]).sum(0)
        y = torch.fft.irfft(spectrum, n=2 * b, dim=-1)[:, b:]
        self._pos = (self._pos + 1) % self._p
        self._last = x.clone()
        self._history = torch.cat((self._history[:, b:], x), dim=1)[:, -self._taps.numel():]
        return y.numpy()


class ChainStream:
    """Streams in series: each one's output blocks are the next one's input."""

    def __init__(self, *streams: Stream) -> None:
        self._streams = streams

    def process(self, block: np.ndarray) -> np.ndarray:
        for stream in self._streams:
            block = stream.process(block)
        return block


class StateStream:
    """A model with ``stream()`` (recurrent, time-variant): its own state carries over blocks.

    The channels are the batch of one ``stream`` call per block, so the state holds every
    channel's history; a file starts from the model's initial state (None).
    """

    def __init__(self, model: nn.Module, channels: int) -> None:
        self._model = model
        self._channels = channels
        self._state = None

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] != self._channels:
            raise ValueError(f"expected {self._channels} channels, got {block.shape[0]}")
        if block.shape[1] == 0:
            return np.zeros_like(block, dtype=np.float32)
        x = torch.from_numpy(np.asarray(block, np.float32))[:, None, :]
        y, self._state = self._model.stream(x, self._state)
        return y[:, 0].numpy()


def open_stream(model: nn.Module, channels: int) -> Stream:
    """The fastest exact stream of ``model`` for ``channels`` independent channels.

    Models with ``stream()`` must use it (their memory is unbounded or time-variant).
    """
    if hasattr(model, "stream"):
        return StateStream(model, channels)
    if isinstance(model, TCN):
        return TCNStream(model, channels)
    if isinstance(model, FIR):
        return FIRStream(model.taps(), channels)
    if isinstance(model, TCNWithFIR):
        return ChainStream(TCNStream(model.tcn, channels), FIRStream(model.fir.taps(), channels))
    return ContextStream(model, channels)


class _Pipeline:
    """File-rate blocks → model-rate stream → file-rate blocks, resampling only when needed.

    A model's ``latency`` (samples) is compensated as a DAW compensates a plugin's: the first
    ``latency`` output samples are dropped and, after the last block, ``latency`` samples of
    silence push the rest of the output out.
    """

    def __init__(
        self, stream: Stream, file_rate: int, model_rate: int, channels: int, latency: int = 0
    ) -> None:
        self._stream = stream
        self._channels = channels
        self._to_drop = self._latency = latency
        self._resample = file_rate != model_rate
        if self._resample:
            self._down = soxr.ResampleStream(file_rate, model_rate, channels, dtype="float32")
            self._up = soxr.ResampleStream(model_rate, file_rate, channels, dtype="float32")

    def _model(self, x: np.ndarray, last: bool) -> np.ndarray:
        """(channels, n) at the model's rate → the latency-compensated output ready so far."""
        y = self._stream.process(np.ascontiguousarray(x))
        if last and self._latency:
            tail = self._stream.process(np.zeros((self._channels, self._latency), np.float32))
            y = np.concatenate((y, tail), axis=1)
        dropped = min(self._to_drop, y.shape[1])
        self._to_drop -= dropped
        return y[:, dropped:]

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """(n, channels) samples at the file's rate → the (m, channels) output ready so far."""
        if not self._resample:
            return self._model(block.T, last).T
        x = self._down.resample_chunk(block, last=last)
        y = np.ascontiguousarray(self._model(x.T, last).T)
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
        latency = latency_of(model)
        pipeline = _Pipeline(open_stream(model, channels), rate, model_rate, channels, latency)
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
