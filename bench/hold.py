"""Benchmark of the wait's audio classifier: per-class recall on generated clips, and CPU for 20 streams.

    python bench/hold.py                 # about 15 s
    python bench/hold.py --seconds 5     # a shorter CPU run

Recall: every whole second of each clip is labelled by controller/audio/classify.py. Clips: hold music
(fssim/sounds.py: chords and melodies, 4 timbres, 60-140 bpm; seeds 100-131, not the ones the thresholds
were read from), line noise, silence (the 0xff CNG fill and a faint hiss), speech in French and English (the
espeak-ng clips in tests/clips/) and speech over music 12 dB below (expected: speech). Baseline, same
windows: an energy-only voice detector (loud = speech, quiet = silence), what a wait without a classifier
has. Targets: recall at least 0.9 for every class.

CPU: 20 UDP receivers (controller/audio/unicast.py) and classifiers in this process, fed in real time (50
datagrams of 320 bytes a second each, as FreeSWITCH's unicast sends) by a sender in another process; the share
of one core is this process's CPU time over the wall time. Target under 50%.
Last line: `RESULT accuracy=... min_class_recall=... baseline_accuracy=... cpu_share_20_streams=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.audio.classify import WINDOW, StreamClassifier, classify, energy_vad  # noqa: E402
from controller.audio.unicast import UnicastReceiver  # noqa: E402
from fssim import sounds  # noqa: E402

STREAMS = 20
PACKET = 320


def clips() -> list[tuple[str, str, np.ndarray]]:
    """(class to report, expected label, samples)."""
    out = [("music", "music", sounds.music(8, seed)) for seed in range(100, 132)]
    out += [("noise", "noise", sounds.noise(5, seed)) for seed in range(100, 108)]
    out += [("silence", "silence", sounds.silence(10)), ("silence", "silence", sounds.noise(10, 7, level=20.0))]
    for language in ("fr", "en"):
        for i, _ in enumerate(sounds.clip_names(language)):
            out.append((f"speech_{language}", "speech", sounds.speech(4.4, i, language)))
    out += [("speech_over_music", "speech", sounds.speech_over_music(4.4, seed)) for seed in range(100, 106)]
    return out


def recall() -> tuple[dict[str, float], float, float]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    base_right = 0
    for name, expected, samples in clips():
        for at in range(0, len(samples) - WINDOW + 1, WINDOW):
            window = samples[at:at + WINDOW]
            total[name] += 1
            right[name] += classify(window) == expected
            base_right += energy_vad(window) == expected
    per_class = {name: right[name] / total[name] for name in total}
    windows = sum(total.values())
    return per_class, sum(right.values()) / windows, base_right / windows


def send(ports: list[int], seconds: float) -> None:
    """The FreeSWITCH side: 50 packets a second to every port, music."""
    data = sounds.music(seconds + 1, 3).astype("<i2").tobytes()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started, sent = time.monotonic(), 0
    while sent < int(seconds * 50):
        due = int((time.monotonic() - started) / 0.02) + 1
        while sent < due:
            chunk = data[sent * PACKET:(sent + 1) * PACKET]
            for port in ports:
                sock.sendto(chunk, ("127.0.0.1", port))
            sent += 1
        time.sleep(0.005)


def cpu_share(seconds: float) -> tuple[float, int]:
    receivers = [UnicastReceiver() for _ in range(STREAMS)]
    classifiers = [StreamClassifier() for _ in range(STREAMS)]
    labels = 0
    sender = multiprocessing.get_context("spawn").Process(target=send, args=([r.port for r in receivers], seconds))
    gevent.sleep(0.1)
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    sender.start()
    while sender.is_alive() or time.monotonic() - wall < 0.5:
        gevent.sleep(0.5)  # the wait looks at its audio every half call second
        for receiver, classifier in zip(receivers, classifiers):
            labels += len(classifier.feed(receiver.take()))
        if not sender.is_alive():
            break
    after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall
    sender.join()
    for receiver in receivers:
        receiver.close()
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / elapsed, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    per_class, accuracy, baseline = recall()
    for name, value in per_class.items():
        print(f"recall {name:18s} {value:.3f}")
    print(f"accuracy {accuracy:.3f} (energy-only baseline {baseline:.3f}, ratio {accuracy / baseline:.2f})")
    share, labels = cpu_share(args.seconds)
    print(f"{STREAMS} streams for {args.seconds:.0f} s: {labels} seconds labelled, {share * 100:.1f}% of one core")
    print(f"RESULT accuracy={accuracy:.3f} min_class_recall={min(per_class.values()):.3f} "
          f"baseline_accuracy={baseline:.3f} cpu_share_20_streams={share:.3f}")


if __name__ == "__main__":
    main()
