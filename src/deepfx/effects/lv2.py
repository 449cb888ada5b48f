"""The ``lv2`` backend: an installed LV2 plugin run by lilv's ``lv2apply`` (Debian lilv-utils).

Spec: ``{backend: lv2, uri: <plugin URI>, controls: {port symbol: value}}``. ``lv2info`` checks
that the plugin exists and lists its control ports, so unknown symbols and out-of-range
values are caught before any audio is processed.

lv2apply quirks handled here:

* it instantiates the plugin at the *input file's* sample rate and writes the output in the
  *input file's* format (whatever the output name says), so each input is first staged as a
  mono float32 wav at the project rate and the result is read back and re-written;
* it accepts 1 input channel (copied to every audio input port) or exactly as many channels
  as the plugin has audio inputs, so staging to mono always fits;
* it parses control values with ``strtof`` and neither range-checks nor rejects text, so
  values are validated against ``lv2info`` first;
* a port with the ``lv2:sampleRate`` property states its range as multiples of the sample rate
  (a cut-off of 0.0001..0.45 means 4.41 Hz..19.8 kHz at 44.1 kHz): the range is checked in Hz;
* a port designated ``lv2:enabled`` (guitarix names it ``BYPASS``) switches the effect *on*
  at 1 (its default); 0 would give the dry signal, which is refused here (unless 0 is the
  port's default: x42's compressor marks its *hold* switch so);
* plugins start from their own control values and glide to the given ones (guitarix: about
  0.2 s), so :data:`LEAD_IN_SECONDS` of silence is run first and cut from the output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deepfx.effects.staging import collect_output, stage_input
from deepfx.errors import DeepfxError

__all__ = ["LEAD_IN_SECONDS", "Port", "plugin_ports", "process"]

LV2_CORE = "http://lv2plug.in/ns/lv2core#"
#: Silence run through the plugin before each file so its control smoothing settles (s).
LEAD_IN_SECONDS = 0.5
_KEY_LINE = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*(.*)$")
_PORT_LINE = re.compile(r"^\s*Port (\d+):\s*$")


@dataclass
class Port:
    """One plugin port as ``lv2info`` reports it (types are lv2core names, e.g. AudioPort)."""

    index: int
    symbol: str = ""
    name: str = ""
    types: set[str] = field(default_factory=set)
    minimum: float | None = None
    maximum: float | None = None
    default: float | None = None
    designation: str = ""
    properties: set[str] = field(default_factory=set)

    @property
    def is_control_input(self) -> bool:
        return {"ControlPort", "InputPort"} <= self.types

    @property
    def is_audio_input(self) -> bool:
        return {"AudioPort", "InputPort"} <= self.types


def _tool(program: str, name: str) -> str:
    """Full path of a lilv-utils program, or a DeepfxError saying how to install it."""
    path = shutil.which(program)
    if path is None:
        raise DeepfxError(
            f"effects.{name}.backend: lv2 needs `{program}`, which is not on PATH; install "
            "Debian's lilv-utils (apt-get install lilv-utils)"
        )
    return path


def _parse_ports(text: str) -> list[Port]:
    """The ports of ``lv2info`` output (one ``Port N:`` block each, multi-line Type lists)."""
    ports: list[Port] = []
    key = ""
    for line in text.splitlines():
        if match := _PORT_LINE.match(line):
            ports.append(Port(int(match.group(1))))
            key = ""
            continue
        if not ports or not line.strip():
            continue
        port = ports[-1]
        if match := _KEY_LINE.match(line):
            key, value = match.group(1), match.group(2).strip()
        else:
            value = line.strip()  # continuation of the previous key (Type, Properties)
        if key == "Type":
            port.types.add(value.removeprefix(LV2_CORE))
        elif key == "Symbol":
            port.symbol = value
        elif key == "Name":
            port.name = value
        elif key in ("Minimum", "Maximum", "Default"):
            setattr(port, key.lower(), float(value))
        elif key == "Properties":
            port.properties.add(value.removeprefix(LV2_CORE))
        elif key == "Designation":
            port.designation = value.removeprefix(LV2_CORE)
    return ports


def plugin_ports(uri: str, name: str) -> list[Port]:
    """The ports of the installed plugin ``uri``; DeepfxError naming ``effects.<name>.uri``."""
    result = subprocess.run([_tool("lv2info", name), uri], capture_output=True, text=True)
    ports = _parse_ports(result.stdout) if result.returncode == 0 else []
    if not ports:
        raise DeepfxError(
            f"effects.{name}.uri: LV2 plugin '{uri}' is not installed (lv2ls lists the "
            "installed ones)"
        )
    if not any(port.is_audio_input for port in ports):
        raise DeepfxError(f"effects.{name}.uri: LV2 plugin '{uri}' has no audio input")
    return ports


def _control_arguments(controls: Any, ports: list[Port], name: str, sample_rate: int) -> list[str]:
    """``-c SYMBOL VALUE`` arguments for lv2apply, checked against the plugin's control ports
    (ranges of ``lv2:sampleRate`` ports scaled to Hz at ``sample_rate``)."""
    where = f"effects.{name}.controls"
    if not isinstance(controls, Mapping):
        raise DeepfxError(f"{where}: must be a mapping of port symbol to value")
    by_symbol = {port.symbol: _in_hz(port, sample_rate) for port in ports if port.is_control_input}
    arguments: list[str] = []
    for symbol, value in controls.items():
        port = by_symbol.get(symbol)
        if port is None:
            listing = ", ".join(
                f"{p.symbol} ({p.name}, {p.minimum:g}..{p.maximum:g})"
                if p.minimum is not None and p.maximum is not None else f"{p.symbol} ({p.name})"
                for p in by_symbol.values()
            )
            raise DeepfxError(f"{where}.{symbol}: no such control port; the plugin has {listing}")
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise DeepfxError(f"{where}.{symbol}: must be a number, got {value!r}")
        if (port.minimum is not None and value < port.minimum) or (
            port.maximum is not None and value > port.maximum
        ):
            raise DeepfxError(
                f"{where}.{symbol}: {value!r} is outside the port's range "
                f"{port.minimum:g}..{port.maximum:g} ({port.name})"
            )
        if port.designation == "enabled" and value == 0 and port.default != 0:
            raise DeepfxError(
                f"{where}.{symbol}: 0 switches the plugin off (this port is lv2:enabled: "
                "1 = effect on); use 1 or leave it out"
            )
        arguments += ["-c", symbol, repr(float(value))]
    return arguments


def _in_hz(port: Port, sample_rate: int) -> Port:
    """``port`` with its range in Hz when lv2:sampleRate states it as fractions of the rate."""
    if "sampleRate" not in port.properties:
        return port

    def hz(value: float | None) -> float | None:
        return None if value is None else value * sample_rate

    return replace(port, minimum=hz(port.minimum), maximum=hz(port.maximum), default=hz(port.default))


def process(in_paths: Sequence[Path], out_paths: Sequence[Path], spec: Mapping[str, Any],
            sample_rate: int, name: str,
            progress: Callable[[int], object] | None = None) -> None:
    """Apply the LV2 plugin ``spec["uri"]`` with ``spec["controls"]`` to each input wav."""
    if len(in_paths) != len(out_paths):
        raise ValueError("in_paths and out_paths differ in length")
    uri = spec.get("uri")
    if not isinstance(uri, str) or not uri:
        raise DeepfxError(f"effects.{name}.uri: missing; give an LV2 plugin URI (see lv2ls)")
    lv2apply = _tool("lv2apply", name)
    arguments = _control_arguments(spec.get("controls") or {}, plugin_ports(uri, name), name,
                                   sample_rate)
    lead_in = int(round(LEAD_IN_SECONDS * sample_rate))
    with tempfile.TemporaryDirectory(prefix="deepfx-lv2-") as tmp:
        staged, result = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        for src, dst in zip(in_paths, out_paths):
            n_samples = stage_input(src, staged, sample_rate, lead_in)
            run = subprocess.run(
                [lv2apply, "-i", str(staged), "-o", str(result), *arguments, uri],
                capture_output=True, text=True,
            )
            if run.returncode != 0:
                raise DeepfxError(
                    f"effects.{name}: lv2apply failed on {src} (exit {run.returncode}): "
                    f"{run.stderr.strip() or run.stdout.strip()}"
                )
            collect_output(result, dst, n_samples, sample_rate, f"effects.{name}", lead_in)
            if progress is not None:
                progress(1)
