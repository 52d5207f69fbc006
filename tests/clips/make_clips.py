"""Regenerate the committed speech clips (needs espeak-ng, which CI does not have: the WAVs are committed).

    apt-get install -y espeak-ng && python tests/clips/make_clips.py

Each sentence is spoken by espeak-ng (22.05 kHz), resampled to 8 kHz mono 16-bit like a phone line's L16.
"""
from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
SENTENCES = {
    "speech_fr_1": ("fr", "m3", 150, "Bonjour, service client, Marc à l'appareil, que puis-je faire pour vous ?"),
    "speech_fr_2": ("fr", "f2", 165, "Pour le suivi de votre colis, tapez un. Pour une réclamation, tapez deux."),
    "speech_fr_3": ("fr", "m1", 140, "Veuillez patienter, un conseiller va prendre votre appel dans un instant."),
    "speech_en_1": ("en-us", "f3", 160, "Hello, this is Dave from customer support, how can I help you today?"),
    "speech_en_2": ("en-gb", "m2", 150, "For billing, press one. For technical support, press two."),
    "speech_en_3": ("en-us", "m4", 170, "Thank you for holding, your call is important to us, please stay on the line."),
}


def synthesise(voice: str, variant: str, speed: int, text: str) -> np.ndarray:
    raw = subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    assert rate == 22050, rate
    out = resample_poly(samples, 160, 441)
    return np.clip(out, -32768, 32767).astype("<i2")


def main() -> None:
    for name, (voice, variant, speed, text) in SENTENCES.items():
        samples = synthesise(voice, variant, speed, text)
        with wave.open(str(HERE / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(samples.tobytes())
        print(f"{name}.wav {len(samples) / 8000:.1f}s")


if __name__ == "__main__":
    main()
