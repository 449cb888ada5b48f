"""Stand-in for ``reaper -batchconvert filelist.txt`` (real Reaper cannot be installed here).

It parses the file list as Reaper's command-line help documents it — input files one per
line (optionally ``<TAB>output name``), then an optional ``<CONFIG`` block of ``KEY value``
lines (values may be quoted with " ' or `) and nested ``<NAME`` … ``>`` sections, closed by
``>`` — and fails on anything else, including keys the help does not list. Each input is
"rendered" through the FX chain's ``JS utility/volume`` gain (dB, first slider) into
OUTPATH named by OUTPATTERN (``$source`` = input name without extension), as 24-bit wav
with NCH channels, padded by PAD_START/PAD_END seconds. Set FAKE_REAPER_LOG to a path to
keep a copy of the arguments and the file list.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import soundfile as sf

DOCUMENTED_KEYS = {
    "SRATE", "NCH", "RSMODE", "DITHER", "USESRCSTART", "USESRCMETADATA", "TRIM_START",
    "TRIM_END", "PAD_START", "PAD_END", "PAD_OUTSIDE_TRIM", "NORMALIZE", "BRICKWALL", "FADE",
    "OUTPATH", "OUTPATTERN", "FXCHAIN", "FX_NCH", "CPULIMIT",
}


def fail(message: str) -> NoReturn:
    print(f"fake reaper: {message}", file=sys.stderr)
    sys.exit(1)


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        return value[1:-1]
    return value


def parse(text: str) -> tuple[list[tuple[Path, str | None]], dict[str, str]]:
    """(inputs with optional output names, CONFIG keys) of a batch file list."""
    lines = text.splitlines()
    inputs: list[tuple[Path, str | None]] = []
    config: dict[str, str] = {}
    i = 0
    while i < len(lines) and not lines[i].startswith("<"):
        if lines[i].strip():
            source, _, target = lines[i].partition("\t")
            inputs.append((Path(source), target or None))
        i += 1
    if i < len(lines):
        if lines[i].strip() != "<CONFIG":
            fail(f"expected <CONFIG, got {lines[i]!r}")
        depth = 1
        for line in lines[i + 1:]:
            stripped = line.strip()
            if depth == 0:
                if stripped:
                    fail(f"text after the CONFIG block: {line!r}")
            elif stripped.startswith("<"):
                depth += 1
            elif stripped == ">":
                depth -= 1
            elif depth == 1 and stripped:
                key, _, value = stripped.partition(" ")
                if key not in DOCUMENTED_KEYS:
                    fail(f"undocumented CONFIG key {key!r}")
                config[key] = unquote(value)
        if depth != 0:
            fail("the CONFIG block is not closed by '>'")
    return inputs, config


def chain_gain_db(fx_chain: Path) -> float:
    lines = fx_chain.read_text().splitlines()
    for line, next_line in zip(lines, lines[1:]):
        words = line.split()
        if words[:1] == ["<JS"] and unquote(words[1]).lower() == "utility/volume":
            return float(next_line.split()[0])
    fail(f"{fx_chain}: no JS utility/volume effect")


def main(argv: list[str]) -> None:
    if "-batchconvert" not in argv[:-1]:
        fail("usage: reaper [options] -batchconvert filelist.txt")
    file_list = Path(argv[argv.index("-batchconvert") + 1])
    text = file_list.read_text()
    if os.environ.get("FAKE_REAPER_LOG"):
        Path(os.environ["FAKE_REAPER_LOG"]).write_text(" ".join(argv) + "\n" + text)
    inputs, config = parse(text)
    gain = 10.0 ** (chain_gain_db(Path(config["FXCHAIN"])) / 20.0)
    for source, target in inputs:
        x, rate = sf.read(source, dtype="float64", always_2d=True)
        if int(config.get("SRATE", rate)) != rate:
            fail("resampling is not simulated")
        channels = int(config.get("NCH", x.shape[1]))
        y = np.repeat(x.mean(axis=1, keepdims=True), channels, axis=1) * gain
        pad = [int(round(float(config.get(k, 0)) * rate)) for k in ("PAD_START", "PAD_END")]
        y = np.pad(y, ((pad[0], pad[1]), (0, 0)))
        pattern = config.get("OUTPATTERN", "$source")
        name = target or pattern.replace("$source", source.stem) + ".wav"
        out = Path(config.get("OUTPATH", source.parent)) / name
        sf.write(out, y, rate, subtype="PCM_24")
        print(f"rendered {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
