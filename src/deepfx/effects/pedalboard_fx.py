"""The ``pedalboard`` and ``vst3`` backends: Spotify pedalboard chains and VST3 plugin files.

``pedalboard``: ``{backend: pedalboard, chain: [{plugin: Gain, gain_db: 6.0}, ...]}`` where
each ``plugin`` names a pedalboard class (or deepfx's :class:`~deepfx.effects.cabinet.Cabinet`)
and the other keys are its keyword parameters. ``vst3``: ``{backend: vst3, path: x.vst3,
parameters: {name: value}}``, loaded with ``pedalboard.load_plugin``.

Audio is streamed through the plugins in blocks of :data:`BLOCK_SECONDS` (state carried
across blocks, reset per file, latency compensated), which gives the same samples as one
call on the whole file. Plugins in :data:`ONE_SHOT` cannot be streamed exactly in
pedalboard 0.9 and get the whole file in one call.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from deepfx.audio import read_audio, write_audio
from deepfx.effects.cabinet import Cabinet
from deepfx.errors import DeepfxError

__all__ = [
    "BLOCK_SECONDS",
    "MAX_LATENCY_SECONDS",
    "ONE_SHOT",
    "PLUGINS",
    "Stage",
    "accepted_parameters",
    "apply_stages",
    "build_chain",
    "process",
    "process_vst3",
    "stream",
]

#: Chain entries: pedalboard's effect classes by name, plus deepfx's synthesised cabinet.
PLUGINS: dict[str, Callable[..., Any]] = {
    **{
        name: getattr(pedalboard, name)
        for name in (
            "Bitcrush", "Chorus", "Clipping", "Compressor", "Convolution", "Delay",
            "Distortion", "GSMFullRateCompressor", "Gain", "HighShelfFilter", "HighpassFilter",
            "Invert", "LadderFilter", "Limiter", "LowShelfFilter", "LowpassFilter",
            "MP3Compressor", "NoiseGate", "PeakFilter", "Phaser", "PitchShift", "Resample",
            "Reverb",
        )
    },
    "Cabinet": Cabinet,
}

#: Plugins that pedalboard 0.9 cannot stream exactly: PitchShift turns silent with
#: ``reset=False`` (spotify/pedalboard#415) and the codecs depend on block boundaries.
ONE_SHOT = frozenset({"PitchShift", "MP3Compressor", "GSMFullRateCompressor"})

#: Length of one streamed block (s).
BLOCK_SECONDS = 1.0
#: Streaming gives up when plugins hold back more audio than this (s).
MAX_LATENCY_SECONDS = 10.0

#: One step of a chain: mono float32 (samples,) in, same length out.
Stage = Callable[[np.ndarray], np.ndarray]

_PYBIND_PARAMETER = re.compile(r"[(,]\s*(\w+)\s*:")


def accepted_parameters(factory: Callable[..., Any]) -> list[str]:
    """The keyword parameter names of a chain entry's constructor (pedalboard or Python)."""
    if not isinstance(factory, type) or factory.__module__ != "pedalboard_native":
        return [p for p in inspect.signature(factory).parameters if p != "self"]
    # pybind11 classes carry their signature only in the first docstring line.
    signature = (factory.__init__.__doc__ or "").splitlines()[0]
    arguments = signature[signature.index("(") : signature.rindex(")")]
    depth, top_level = 0, []
    for char in arguments:  # drop the brackets of type annotations such as Union[str, ...]
        depth += char == "["
        depth -= char == "]"
        top_level.append(char if depth == 0 else "")
    return [p for p in _PYBIND_PARAMETER.findall("".join(top_level)) if p != "self"]


def stream(board: pedalboard.Pedalboard, x: np.ndarray, sample_rate: int,
           block_samples: int) -> np.ndarray:
    """Run mono ``x`` through ``board`` in blocks of ``block_samples``; same length as ``x``.

    The board is reset first; silence is fed after the input until the plugins' latency
    has been flushed, so the output is aligned with the input.
    """
    board.reset()
    n = len(x)
    latency_blocks = -(-int(MAX_LATENCY_SECONDS * sample_rate) // block_samples)
    max_blocks = -(-n // block_samples) + max(1, latency_blocks)
    pieces, produced = [], 0
    for start in range(0, max_blocks * block_samples, block_samples):
        block = np.zeros((1, block_samples), dtype=np.float32)
        chunk = x[start : start + block_samples]
        block[0, : len(chunk)] = chunk
        out = board.process(block, sample_rate, reset=False)
        pieces.append(out[0])
        produced += out.shape[1]
        if produced >= n:
            return np.concatenate(pieces)[:n]
    names = ", ".join(type(plugin).__name__ for plugin in board)
    raise DeepfxError(
        f"pedalboard plugins {names} hold back more than {MAX_LATENCY_SECONDS:g} s of audio"
    )


def _one_shot(plugin: pedalboard.Plugin, x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Run mono ``x`` through ``plugin`` in one call (reset first, latency compensated)."""
    return plugin.process(x[None, :], sample_rate, reset=True)[0]


def _streamed(plugins: list[pedalboard.Plugin], sample_rate: int) -> Stage:
    """A stage streaming through ``plugins`` in blocks of :data:`BLOCK_SECONDS`."""
    block = int(round(BLOCK_SECONDS * sample_rate))
    return partial(stream, pedalboard.Pedalboard(plugins), sample_rate=sample_rate,
                   block_samples=block)


def _entry(entry: Any, where: str, sample_rate: int) -> tuple[str, Any]:
    """Build one chain entry ``{plugin: Name, **kwargs}``; errors name ``where`` (…chain[i])."""
    if not isinstance(entry, Mapping) or "plugin" not in entry:
        raise DeepfxError(f"{where}: must be a mapping like {{plugin: Gain, gain_db: 6.0}}")
    kind = entry["plugin"]
    if not isinstance(kind, str) or kind not in PLUGINS:
        raise DeepfxError(
            f"{where}.plugin: unknown pedalboard plugin {kind!r}; choose one of "
            + ", ".join(sorted(PLUGINS))
        )
    kwargs = {k: v for k, v in entry.items() if k != "plugin"}
    accepted = accepted_parameters(PLUGINS[kind])
    for key in kwargs:
        if key not in accepted:
            raise DeepfxError(
                f"{where}.{key}: {kind} has no parameter {key!r}; it accepts "
                + (", ".join(accepted) or "no parameters")
            )
    try:
        plugin = PLUGINS[kind](**kwargs)
        if isinstance(plugin, Cabinet):
            plugin.check(sample_rate)
    except (TypeError, ValueError) as exc:
        raise DeepfxError(f"{where}: invalid {kind} parameters {kwargs}: {exc}") from None
    return kind, plugin


def build_chain(chain: Any, sample_rate: int, where: str) -> list[Stage]:
    """Turn a ``chain`` list into stages; runs of streamable plugins share one stage.

    ``where`` is the parameter path of the chain (``effects.fuzz.chain``) for error messages.
    """
    if not isinstance(chain, Sequence) or isinstance(chain, str) or not chain:
        raise DeepfxError(f"{where}: must be a non-empty list of {{plugin: ..., ...}} entries")
    stages: list[Stage] = []
    run: list[pedalboard.Plugin] = []
    for i, entry in enumerate(chain):
        kind, plugin = _entry(entry, f"{where}[{i}]", sample_rate)
        if kind not in ONE_SHOT and kind != "Cabinet":
            run.append(plugin)
            continue
        if run:
            stages.append(_streamed(run, sample_rate))
            run = []
        if kind == "Cabinet":
            stages.append(partial(plugin.process, sample_rate=sample_rate))
        else:
            stages.append(partial(_one_shot, plugin, sample_rate=sample_rate))
    if run:
        stages.append(_streamed(run, sample_rate))
    return stages


def apply_stages(stages: Sequence[Stage], x: np.ndarray) -> np.ndarray:
    """Run mono float32 ``x`` through ``stages`` in order."""
    for stage in stages:
        x = stage(x)
    return x


def _process_files(stages: Sequence[Stage], in_paths: Sequence[Path], out_paths: Sequence[Path],
                   sample_rate: int, name: str, progress: Callable[[int], object] | None) -> None:
    if len(in_paths) != len(out_paths):
        raise ValueError("in_paths and out_paths differ in length")
    for src, dst in zip(in_paths, out_paths):
        y = apply_stages(stages, read_audio(src, sample_rate))
        if not np.isfinite(y).all():
            raise DeepfxError(
                f"effects.{name}: the effect produced NaN or infinite samples from {src}; "
                "check its parameters"
            )
        write_audio(dst, y, sample_rate)
        if progress is not None:
            progress(1)


def process(in_paths: Sequence[Path], out_paths: Sequence[Path], spec: Mapping[str, Any],
            sample_rate: int, name: str,
            progress: Callable[[int], object] | None = None) -> None:
    """Apply the pedalboard ``chain`` of ``spec`` to each input wav, writing each output wav."""
    stages = build_chain(spec.get("chain"), sample_rate, f"effects.{name}.chain")
    _process_files(stages, in_paths, out_paths, sample_rate, name, progress)


def process_vst3(in_paths: Sequence[Path], out_paths: Sequence[Path], spec: Mapping[str, Any],
                 sample_rate: int, name: str,
                 progress: Callable[[int], object] | None = None) -> None:
    """Apply the VST3 plugin at ``spec["path"]`` with ``spec["parameters"]`` to each input."""
    where = f"effects.{name}"
    path = Path(str(spec.get("path", "")))
    if not spec.get("path") or not path.exists():
        raise DeepfxError(f"{where}.path: no VST3 plugin at {str(path)!r}")
    try:
        plugin = pedalboard.load_plugin(str(path))
    except Exception as exc:  # pedalboard raises ImportError/RuntimeError/ValueError
        raise DeepfxError(
            f"{where}.path: {path} cannot be loaded as a VST3 plugin ({exc})"
        ) from None
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise DeepfxError(f"{where}.parameters: must be a mapping of parameter name to value")
    for key, value in parameters.items():
        if key not in plugin.parameters:
            raise DeepfxError(
                f"{where}.parameters.{key}: {path.name} has no parameter {key!r}; it accepts "
                + ", ".join(plugin.parameters)
            )
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError) as exc:
            raise DeepfxError(f"{where}.parameters.{key}: {exc}") from None
    _process_files([_streamed([plugin], sample_rate)], in_paths, out_paths, sample_rate, name,
                   progress)
