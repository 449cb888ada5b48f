"""Realistic instrument takes for evaluation only: seeded MIDI parts rendered by fluidsynth.

The generator's chirps and plucks train the models; these takes judge them on material the
generator does not make: General MIDI guitars (clean, muted, overdriven), bass and keys playing
strummed chords, arpeggios, palm-muted riffs, single-note leads with bends, slides and rests,
at velocities from pianissimo to fortissimo and at take levels from -24 to -3 dBFS peak.
Rendered with Debian's ``fluidsynth`` and ``fluid-soundfont-gm`` (reverb and chorus off, so a
take is a dry DI-like signal), downmixed to mono. Never trained on: nothing in the pipeline
reads them; ``bench/foreign.py`` scores models on them.

The same seed, fluidsynth and soundfont give the same samples; :func:`render_takes` caches the
rendered set under a folder named by a hash of everything that shapes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepfx.atomic import atomic_dir
from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError

__all__ = ["SOUNDFONT", "TAKES", "Event", "Take", "compose", "midi_bytes", "render_takes"]

#: Debian's General MIDI soundfont (package fluid-soundfont-gm).
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
#: MIDI ticks per quarter note of the written files.
TICKS = 480
#: Bumped when the composition changes, so cached takes are rendered anew.
VERSION = 1

# General MIDI programs (0-based).
NYLON, STEEL, JAZZ, CLEAN, MUTED, OVERDRIVEN, DISTORTED = 24, 25, 26, 27, 28, 29, 30
FINGER_BASS, PICK_BASS, PIANO, E_PIANO = 33, 34, 0, 4
#: Open strings of a guitar, low E to high E (MIDI note numbers).
TUNING = (40, 45, 50, 55, 59, 64)
#: Barre shapes: fret offsets per string from the root fret (None = string not played).
SHAPES = {
    ("E", "maj"): (0, 2, 2, 1, 0, 0), ("E", "min"): (0, 2, 2, 0, 0, 0),
    ("A", "maj"): (None, 0, 2, 2, 2, 0), ("A", "min"): (None, 0, 2, 2, 1, 0),
    ("E", "pow"): (0, 2, 2, None, None, None),
}


@dataclass(frozen=True)
class Event:
    """A note (``pitch`` 0–127, ``velocity`` 1–127) or, with ``bend`` set, a pitch bend of
    ``bend`` semitones (±2) reached linearly over ``duration`` seconds."""

    start: float
    duration: float
    pitch: int = 0
    velocity: int = 0
    bend: float | None = None


@dataclass
class Take:
    """One take: a name, a GM program, a peak level (dBFS) and its events."""

    name: str
    program: int
    peak_dbfs: float
    events: list[Event] = field(default_factory=list)


#: The takes: (name, program, style, tempo in BPM, peak dBFS). Styles are composer functions.
TAKES = (
    ("clean_strum", CLEAN, "strum", 96, -6.0),
    ("steel_arpeggio", STEEL, "arpeggio", 84, -9.0),
    ("clean_lead", CLEAN, "lead", 110, -3.0),
    ("muted_riff", MUTED, "palm_mute", 128, -12.0),
    ("overdriven_lead", OVERDRIVEN, "lead", 100, -6.0),
    ("distorted_power", DISTORTED, "power", 120, -9.0),
    ("jazz_chords", JAZZ, "strum", 76, -18.0),
    ("finger_bass", FINGER_BASS, "bass", 100, -6.0),
    ("pick_bass", PICK_BASS, "bass", 132, -12.0),
    ("piano_keys", PIANO, "keys", 90, -9.0),
    ("e_piano_keys", E_PIANO, "keys", 72, -24.0),
)
#: Seconds of music per take (a bar is cut off at the end, then the last notes ring out).
TAKE_SECONDS = 20.0


def _chord(root_pc: int, quality: str, rng: np.random.Generator) -> list[int]:
    """A guitar voicing of the chord on pitch class ``root_pc``: an E- or A-shape barre."""
    string = ("E", "A")[rng.integers(2)] if quality != "pow" else "E"
    shape = SHAPES[(string, quality)]
    open_pc = TUNING[0 if string == "E" else 1] % 12
    fret = (root_pc - open_pc) % 12
    fret = fret if fret <= 9 else fret - 12 if fret >= 12 else fret
    return [TUNING[s] + fret + off for s, off in enumerate(shape) if off is not None]


def _progression(rng: np.random.Generator, bars: int) -> list[tuple[int, str]]:
    """``bars`` chords (root pitch class, quality) in a random key: common pop/rock/jazz moves."""
    key = int(rng.integers(12))
    degrees = [((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")), ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),
               ((2, "min"), (7, "maj"), (0, "maj"), (9, "min")), ((0, "maj"), (5, "maj"), (7, "maj"), (5, "maj"))]
    pattern = degrees[rng.integers(len(degrees))]
    return [((key + pattern[b % 4][0]) % 12, pattern[b % 4][1]) for b in range(bars)]


def _dynamics(rng: np.random.Generator, bars: int) -> np.ndarray:
    """A velocity centre per bar: phrases that swell and fall, pianissimo (20) to fortissimo (127)."""
    start, end = rng.uniform(25, 120, size=2)
    curve = np.linspace(start, end, bars) + rng.normal(0, 12, bars)
    return np.clip(curve, 20, 120)


def _velocity(centre: float, rng: np.random.Generator, spread: float = 12.0) -> int:
    return int(np.clip(rng.normal(centre, spread), 1, 127))


def _strum(rng, beat, chords, dyn):
    """Strummed chords: down and up strokes, strings 8–30 ms apart, rests now and then."""
    events = []
    for bar, (root, quality) in enumerate(chords):
        notes = _chord(root, quality, rng)
        pattern = ((0, 1, 1), (1, 0.5, -1), (1.5, 1, 1), (2.5, 0.5, -1), (3, 1, 1))
        for offset, length, direction in pattern:
            if rng.random() < 0.15:
                continue  # a missed stroke: a rest
            t0 = (bar * 4 + offset) * beat
            gap = rng.uniform(0.008, 0.03)
            order = notes if direction > 0 else notes[::-1]
            vel = _velocity(dyn[bar] * (1.0 if direction > 0 else 0.8), rng)
            for k, pitch in enumerate(order):
                events.append(Event(t0 + k * gap, length * beat * rng.uniform(0.7, 1.0), pitch, vel))
    return events


def _arpeggio(rng, beat, chords, dyn):
    """Chord tones one after another in eighths, letting each ring for up to a bar."""
    events = []
    for bar, (root, quality) in enumerate(chords):
        notes = _chord(root, quality, rng)
        order = notes + notes[-2:0:-1]
        for k in range(8):
            pitch = order[k % len(order)]
            events.append(Event((bar * 4 + k / 2) * beat, beat * rng.uniform(1.0, 4.0), pitch,
                                _velocity(dyn[bar], rng)))
    return events


def _lead(rng, beat, chords, dyn):
    """Single-note lines on a pentatonic scale: rests, long notes, bends and slides."""
    scale = np.array([0, 3, 5, 7, 10])
    key = chords[0][0]
    degree = 5
    events = []
    t = 0.0
    end = len(chords) * 4 * beat
    while t < end - beat:
        bar = min(int(t / (4 * beat)), len(chords) - 1)
        length = beat * rng.choice([0.25, 0.5, 0.5, 1.0, 1.5, 2.0])
        if rng.random() < 0.2:
            t += length  # a rest
            continue
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
        pitch = 52 + key + 12 * (degree // 5) + int(scale[degree % 5])
        events.append(Event(t, length, pitch, _velocity(dyn[bar], rng, 18)))
        if length >= beat and rng.random() < 0.4:  # bend up a tone (or half) and back
            depth = float(rng.choice([1.0, 2.0]))
            events.append(Event(t + 0.1 * length, 0.3 * length, bend=depth))
            events.append(Event(t + 0.7 * length, 0.25 * length, bend=0.0))
        elif rng.random() < 0.2:  # slide: a fast glide into the note from below
            events.append(Event(t, 0.0, bend=-2.0))
            events.append(Event(t, 0.08, bend=0.0))
        t += length
    return events


def _palm_mute(rng, beat, chords, dyn):
    """Muted eighth and sixteenth chugs on the low strings, with accents and gaps."""
    events = []
    for bar, (root, _) in enumerate(chords):
        low = TUNING[0] + (root - TUNING[0] % 12) % 12
        for k in range(16):
            if rng.random() < (0.3 if k % 2 else 0.08):
                continue
            accent = 1.25 if k % 4 == 0 else 1.0
            events.append(Event((bar * 4 + k / 4) * beat, beat / 4 * 0.9, low,
                                _velocity(dyn[bar] * accent, rng, 8)))
    return events


def _power(rng, beat, chords, dyn):
    """Power chords held or chopped, with slides between them."""
    events = []
    for bar, (root, _) in enumerate(chords):
        notes = _chord(root, "pow", rng)
        hits = (0, 1.5, 2, 3) if rng.random() < 0.5 else (0,)
        for h, offset in enumerate(hits):
            length = (4 if len(hits) == 1 else 0.9) * beat
            for pitch in notes:
                events.append(Event((bar * 4 + offset) * beat + 0.005 * notes.index(pitch),
                                    length, pitch, _velocity(dyn[bar], rng, 6)))
        if rng.random() < 0.3:
            events.append(Event((bar * 4 + 3.5) * beat, 0.4 * beat, bend=-2.0))
            events.append(Event((bar * 4 + 4) * beat, 0.0, bend=0.0))
    return events


def _bass(rng, beat, chords, dyn):
    """Root-fifth-octave bass lines in eighths and quarters, staccato and legato."""
    events = []
    for bar, (root, _) in enumerate(chords):
        base = 28 + (root - 4) % 12
        line = [base, base, base + 7, base + 12, base + 7, base, base + 10, base + 7]
        for k in range(8):
            if rng.random() < 0.2:
                continue
            length = beat / 2 * rng.uniform(0.3, 1.0)
            events.append(Event((bar * 4 + k / 2) * beat, length, line[k], _velocity(dyn[bar], rng)))
    return events


def _keys(rng, beat, chords, dyn):
    """Block chords in the middle register with a bass note, held or repeated."""
    events = []
    for bar, (root, quality) in enumerate(chords):
        third = 3 if quality == "min" else 4
        notes = [48 + root, 60 + root, 60 + root + third, 60 + root + 7]
        for offset, length in ((0, 2), (2, 1.5)) if rng.random() < 0.6 else ((0, 4),):
            for pitch in notes:
                events.append(Event((bar * 4 + offset) * beat, length * beat, pitch,
                                    _velocity(dyn[bar], rng, 6)))
    return events


_STYLES = {"strum": _strum, "arpeggio": _arpeggio, "lead": _lead, "palm_mute": _palm_mute,
           "power": _power, "bass": _bass, "keys": _keys}


def compose(seed: int) -> list[Take]:
    """The takes of :data:`TAKES`, each composed from its own child of ``seed``."""
    takes = []
    for (name, program, style, bpm, peak), child in zip(
        TAKES, np.random.SeedSequence(seed).spawn(len(TAKES))
    ):
        rng = np.random.default_rng(child)
        beat = 60.0 / bpm
        bars = max(1, int(TAKE_SECONDS / (4 * beat)))
        events = _STYLES[style](rng, beat, _progression(rng, bars), _dynamics(rng, bars))
        takes.append(Take(name, program, peak, events))
    return takes


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(take: Take, bend_steps: int = 16) -> bytes:
    """A one-track Standard MIDI File of ``take`` (120 BPM grid: 1 beat = 0.5 s, 960 ticks/s)."""
    per_second = 2 * TICKS
    timed: list[tuple[int, int, bytes]] = []  # (tick, order, message); note-offs sort first
    for e in take.events:
        tick = int(round(e.start * per_second))
        if e.bend is None:
            end = int(round((e.start + max(e.duration, 0.01)) * per_second))
            timed.append((tick, 1, bytes([0x90, e.pitch, e.velocity])))
            timed.append((end, 0, bytes([0x80, e.pitch, 0])))
        else:  # a linear glide to the target bend, in steps (pitch bend range: ±2 semitones)
            for k in range(1, bend_steps + 1):
                t = tick + int(round(e.duration * per_second * k / bend_steps))
                value = int(np.clip(8192 + e.bend / 2.0 * 8191, 0, 16383))
                timed.append((t, 2, bytes([0xE0, value & 0x7F, value >> 7])))
    timed.sort(key=lambda item: (item[0], item[1]))
    track = bytearray(b"\x00" + bytes([0xC0, take.program]))
    last = 0
    for tick, _, message in timed:
        track += _varlen(tick - last) + message
        last = tick
    track += _varlen(2 * per_second) + b"\xff\x2f\x00"  # two seconds for the last notes to ring
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _fluidsynth() -> str:
    path = shutil.which("fluidsynth")
    if path is None or not SOUNDFONT.is_file():
        raise DeepfxError(
            "takes: rendering needs Debian's fluidsynth and fluid-soundfont-gm "
            f"(apt-get install fluidsynth fluid-soundfont-gm; looked for {SOUNDFONT})"
        )
    return path


def _render(take: Take, out: Path, sample_rate: int, work: Path) -> None:
    """Render ``take`` with fluidsynth to a mono float32 wav at ``sample_rate``, peak-normalised."""
    midi, wav = work / f"{take.name}.mid", work / f"{take.name}.raw.wav"
    midi.write_bytes(midi_bytes(take))
    run = subprocess.run(
        [_fluidsynth(), "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sample_rate),
         "-O", "float", "-T", "wav", "-F", str(wav), str(SOUNDFONT), str(midi)],
        capture_output=True, text=True,
    )
    if run.returncode != 0 or not wav.is_file():
        raise DeepfxError(f"takes: fluidsynth failed on {take.name} ({run.stderr.strip()})")
    x = read_audio(wav, sample_rate)
    peak = float(np.abs(x).max())
    if peak == 0:
        raise DeepfxError(f"takes: fluidsynth rendered {take.name} silent")
    write_audio(out, (x * (10 ** (take.peak_dbfs / 20) / peak)).astype(np.float32), sample_rate)


def cache_key(seed: int, sample_rate: int) -> str:
    """A hash of everything that shapes the takes: composition, seed, rate, renderer, soundfont."""
    takes = [asdict(t) for t in compose(seed)]
    version = subprocess.run([_fluidsynth(), "--version"], capture_output=True, text=True).stdout
    blob = json.dumps([VERSION, seed, sample_rate, takes, version.splitlines()[:1],
                       SOUNDFONT.stat().st_size])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def render_takes(cache_dir: Path, seed: int = 2018, sample_rate: int = 44100) -> Path:
    """The folder of rendered takes (``<name>.wav``), rendered once into ``cache_dir``."""
    folder = Path(cache_dir) / f"takes-{cache_key(seed, sample_rate)}"
    if folder.is_dir():
        return folder
    with atomic_dir(folder) as tmp, tempfile.TemporaryDirectory(prefix="deepfx-takes-") as work:
        for take in compose(seed):
            _render(take, tmp / f"{take.name}.wav", sample_rate, Path(work))
    return folder
