"""What the far end plays, from its audio alone: silence, noise, music or speech, one label a second.

A wait needs to know whether it hears hold music (keep waiting) or a voice (a person or a recorded prompt:
the recogniser's words decide which). Features over a ~1 s window of 8 kHz 16-bit samples, cut in 32 ms frames
every 20 ms:
- energy (RMS): below `SILENCE_RMS` it is silence; the CNG fill a parked leg streams (all 0xff bytes, i.e.
  samples of -1, capture 15) is far below;
- spectral flatness: white-ish noise is flat, tones and voices are not;
- tonality / steadiness: music holds the same spectral peaks for a note's length (low spectral flux, the
  strongest bins repeat frame to frame); a voice moves its pitch and formants all the time;
- energy modulation at syllable rate (3-8 Hz) and the depth of the energy dips between syllables.
Rules rather than a trained model: every threshold is readable, and bench/hold.py measures them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 8000
WINDOW = RATE  # samples a label covers (1 s)
FRAME = 256  # 32 ms analysis frame
HOP = 160  # 20 ms hop: 50 frames a second, the envelope's sample rate
LABELS = ("silence", "noise", "music", "speech")
SILENCE_RMS = 120.0  # about -49 dBFS
SPEECH_DIPS_DB = 13.5  # syllables: the energy falls this far between them; held notes do not
_HANN = np.hanning(FRAME)
_FREQS = np.fft.rfftfreq(FRAME, 1.0 / RATE)
_BAND = (_FREQS >= 150) & (_FREQS <= 3600)


@dataclass(frozen=True)
class Features:
    rms: float  # median frame RMS (16-bit units)
    flatness: float  # median spectral flatness in 150-3600 Hz (1 = white noise)
    flux: float  # median normalised spectral change frame to frame (0 = steady)
    steady: float  # share of frames whose 3 strongest bins are those of the frame before
    modulation: float  # share of the energy envelope's modulation that lies at 3-8 Hz
    dips_db: float  # envelope depth: 90th minus 10th percentile of frame energy, dB


def frames_of(samples: np.ndarray) -> np.ndarray:
    """Overlapping windowed frames (rows) of `samples`."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    count = 1 + (len(x) - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    return x[index]


def features(samples: np.ndarray) -> Features:
    """The window's features (any length; about a second is what they are tuned for)."""
    frames = frames_of(samples)
    rms_frames = np.sqrt(np.mean(frames ** 2, axis=1))
    spectra = np.abs(np.fft.rfft(frames * _HANN, axis=1))[:, _BAND] + 1e-9
    power = spectra ** 2
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    norm = spectra / (np.linalg.norm(spectra, axis=1, keepdims=True) + 1e-9)
    flux = np.sum((norm[1:] - norm[:-1]) ** 2, axis=1) if len(norm) > 1 else np.zeros(1)
    top = np.sort(np.argsort(spectra, axis=1)[:, -3:], axis=1)
    steady = float(np.mean(np.all(np.abs(top[1:] - top[:-1]) <= 1, axis=1))) if len(top) > 1 else 0.0
    energy_db = 20 * np.log10(rms_frames + 1.0)
    envelope = energy_db - np.mean(energy_db)
    modulation = 0.0
    if len(envelope) >= 16:
        mod = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)))) ** 2
        mod_freqs = np.fft.rfftfreq(len(envelope), HOP / RATE)
        wide = mod[(mod_freqs >= 1) & (mod_freqs <= 20)].sum()
        modulation = float(mod[(mod_freqs >= 3) & (mod_freqs <= 8)].sum() / wide) if wide > 0 else 0.0
    loud = rms_frames > SILENCE_RMS
    return Features(rms=float(np.median(rms_frames)),
                    flatness=float(np.median(flatness[loud])) if loud.any() else 1.0,
                    flux=float(np.median(flux)), steady=steady, modulation=modulation,
                    dips_db=float(np.percentile(energy_db, 90) - np.percentile(energy_db, 10)))


def label(f: Features) -> str:
    """silence / noise / music / speech from a window's features."""
    if f.rms < SILENCE_RMS and f.dips_db < 12:
        return "silence"
    if f.flatness > 0.2 and f.dips_db < 6:
        return "noise"
    if f.dips_db >= SPEECH_DIPS_DB and f.flux >= 0.08 and f.steady < 0.65:
        return "speech"
    return "music"


def classify(samples: np.ndarray) -> str:
    """The label of one window of samples."""
    return label(features(samples))


def energy_vad(samples: np.ndarray) -> str:
    """The baseline a classifier has to beat: an energy-only voice detector (loud = speech, else silence)."""
    return "speech" if features(samples).rms >= SILENCE_RMS else "silence"


class StreamClassifier:
    """Labels a stream of L16 bytes (native little-endian, as FreeSWITCH's unicast sends) one window at a time;
    keeps at most one partial window."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; the labels of every window they complete, in order."""
        self._pending += data
        whole = len(self._pending) // (2 * WINDOW)
        if not whole:
            return []
        chunk, self._pending = self._pending[:whole * 2 * WINDOW], self._pending[whole * 2 * WINDOW:]
        samples = np.frombuffer(chunk, dtype="<i2")
        return [classify(samples[i * WINDOW:(i + 1) * WINDOW]) for i in range(whole)]
