"""The far end's audio, as 8 kHz 16-bit samples: hold music, line noise, silence and recorded speech.

Everything but speech is generated here, deterministically from a seed, so a scenario, a test and the
benchmark hear the same thing: music is chords and melodies in several timbres and tempos (what hold music
is: steady tones), noise is filtered white noise (a hissing line), silence is the CNG fill FreeSWITCH streams
when nothing plays (every byte 0xff, capture 15). Speech is the espeak-ng clips committed in tests/clips/.
"""
from __future__ import annotations

import wave
from functools import lru_cache
from pathlib import Path

import numpy as np

RATE = 8000
SOUNDS = ("music", "silence", "noise", "speech", "speech_over_music")
TIMBRES = ("sine", "organ", "square", "pluck")
CLIPS_DIR = Path(__file__).resolve().parent.parent / "tests" / "clips"
# A minor i-VI-III-VII and C major I-V-vi-IV progressions (MIDI note numbers of each chord)
_PROGRESSIONS = (((57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)),
                 ((48, 52, 55), (55, 59, 62), (57, 60, 64), (53, 57, 60)))


def _hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _tone(freq: float, n: int, timbre: str) -> np.ndarray:
    t = np.arange(n) / RATE
    if timbre == "sine":
        wave_ = np.sin(2 * np.pi * freq * t)
    elif timbre == "square":  # odd harmonics below the 4 kHz Nyquist limit
        wave_ = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 12, 2) if freq * k < 3800)
    else:  # organ and pluck: a few even and odd harmonics
        wave_ = sum(np.sin(2 * np.pi * freq * k * t) / k ** 1.5 for k in range(1, 6) if freq * k < 3800)
    if timbre == "pluck":
        wave_ = wave_ * np.exp(-t * 3.0)
    fade = min(n // 2, 80)  # 10 ms ramps: no click at note edges
    env = np.ones(n)
    env[:fade] = np.linspace(0, 1, fade)
    env[n - fade:] = np.linspace(1, 0, fade)
    return wave_ * env


def music(seconds: float, seed: int = 0, timbre: str | None = None, bpm: float | None = None) -> np.ndarray:
    """Hold music: a chord progression (two beats a chord) with a melody note a beat on top; `seed` picks the
    timbre, tempo and progression unless given."""
    rng = np.random.default_rng(seed)
    timbre = timbre or TIMBRES[seed % len(TIMBRES)]
    bpm = bpm or float(rng.choice([60, 80, 100, 120, 140]))
    progression = _PROGRESSIONS[seed % 2]
    beat = int(RATE * 60 / bpm)
    total = int(seconds * RATE)
    out = np.zeros(total + 2 * beat)
    at, index = 0, 0
    while at < total:
        chord = progression[index % len(progression)]
        for note in chord:
            out[at:at + 2 * beat] += 0.25 * _tone(_hz(note), 2 * beat, timbre)
        for half in range(2):
            melody = chord[int(rng.integers(0, 3))] + 12
            start = at + half * beat
            out[start:start + beat] += 0.3 * _tone(_hz(melody), beat, timbre)
        at += 2 * beat
        index += 1
    out = out[:total]
    peak = np.max(np.abs(out)) or 1.0
    return (out / peak * 9000).astype(np.int16)


def noise(seconds: float, seed: int = 0, level: float = 1500.0) -> np.ndarray:
    """A hissing line: white noise, low-passed a little (a short FIR), at a steady level."""
    rng = np.random.default_rng(1000 + seed)
    white = rng.normal(0.0, 1.0, int(seconds * RATE))
    smooth = np.convolve(white, [0.4, 0.3, 0.2, 0.1], mode="same")
    return (smooth / (np.std(smooth) or 1.0) * level).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    """What a parked leg streams: every byte 0xff, i.e. samples of -1 (CNG fill, capture 15)."""
    return np.full(int(seconds * RATE), -1, dtype=np.int16)


@lru_cache(maxsize=None)
def _clip(name: str) -> np.ndarray:
    with wave.open(str(CLIPS_DIR / f"{name}.wav")) as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{name}.wav is not 8 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def clip_names(language: str | None = None) -> list[str]:
    """The committed speech clips, e.g. speech_fr_1 (all, or one language's)."""
    names = sorted(p.stem for p in CLIPS_DIR.glob("speech_*.wav"))
    return [n for n in names if language is None or n.startswith(f"speech_{language}_")]


def speech(seconds: float, seed: int = 0, language: str | None = None) -> np.ndarray:
    """Recorded speech: the committed clips one after the other (starting at clip `seed`), cut to `seconds`."""
    names = clip_names(language)
    total = int(seconds * RATE)
    parts, have, index = [], 0, seed
    while have < total:
        part = _clip(names[index % len(names)])
        parts.append(part)
        have += len(part)
        index += 1
    return np.concatenate(parts)[:total]


def speech_over_music(seconds: float, seed: int = 0, language: str | None = None) -> np.ndarray:
    """A person talking over hold music 12 dB below (music left playing under a call centre agent)."""
    voice = speech(seconds, seed, language).astype(np.float64)
    under = music(seconds, seed).astype(np.float64)
    scale = (np.std(voice) or 1.0) / (np.std(under) or 1.0) / 4.0
    return np.clip(voice + under * scale, -32768, 32767).astype(np.int16)


def sound(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    """One of SOUNDS, `seconds` long."""
    if kind == "music":
        return music(seconds, seed)
    if kind == "noise":
        return noise(seconds, seed)
    if kind == "silence":
        return silence(seconds)
    if kind == "speech":
        return speech(seconds, seed)
    if kind == "speech_over_music":
        return speech_over_music(seconds, seed)
    raise ValueError(f"unknown sound {kind!r}; allowed: {', '.join(SOUNDS)}")
