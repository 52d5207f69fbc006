"""Benchmark of machine detection: who answered 40 outbound calls (20 voicemails, 20 people, French and English).

    python bench/machine.py                  # 40 calls, 8 at a time (about 10 s)
    python bench/machine.py --no-partials    # a recogniser without partial results (same figures within 0.1 s)

The real controller (semantic brain, Redis, the voicemail hang-up action with `leave_message`) against the
simulator over loopback TCP. Each call is one the agent placed (an outbound channel, answered on connect), whose
callee plays a greeting: voicemails with and without a beep, long personal greetings, a greeting that starts like
a person; people saying "Allô ?", "Oui, bonjour, c'est Marie", "Hello?", "Yes, speaking", one talking a bit longer.
The recogniser streams a partial result halfway through each utterance (`speech_partials`), as streaming engines
do. Measured from each call record: `answered_by` right (unknown counts as a person, as the call treats it), and
`answered_detail.decision_s`, call seconds from the start of listening to the verdict (the simulator runs at
TIME_SCALE; every time is given in call seconds). Baseline in the same run, on the same greetings: a length-only
rule (a greeting of more than LENGTH_WORDS words is a machine).
Last line: `RESULT accuracy=... p50_decision_s=... p95_decision_s=... baseline_accuracy=... ratio=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from gevent.pool import Pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fssim import Scenario  # noqa: E402
from fssim.call import SimCall  # noqa: E402
from fssim.channel import Switch  # noqa: E402
from tests.support.controller import BASE_AGENT, SessionRedis, running, write_config  # noqa: E402

TIME_SCALE = 0.1
CONCURRENCY = 8
LENGTH_WORDS = 6
VOICEMAIL = """    - type: hangup
      name: voicemail
      description: Laisser un message sur un répondeur.
      answered_by: [machine]
      leave_message: "Bonjour, ici la pharmacie du centre, votre commande est prête."
"""

# (greeting, beep after it, seconds after the answer before it starts)
MACHINES = [
    ("Bonjour, vous êtes bien chez Paul, laissez un message après le bip", True, 0.6),
    ("Bonjour, vous êtes sur la messagerie de Sophie Martin, je ne suis pas disponible pour le moment, merci de "
     "laisser un message", False, 0.8),
    ("Salut, c'est Julien ! Je suis sûrement en train de faire du vélo, laisse-moi un message et je te rappelle",
     True, 0.5),
    ("Le numéro que vous avez demandé n'est pas disponible actuellement", False, 0.4),
    ("Bonjour, cabinet du docteur Lefèvre, le cabinet est fermé, nos horaires sont du lundi au vendredi de neuf "
     "heures à dix-huit heures", True, 0.7),
    ("Paul Dupont", True, 0.6),
    ("Bonjour, Marie et Thomas ne peuvent pas vous répondre, parlez après le signal sonore", True, 0.5),
    ("Vous êtes bien au zéro six douze trente-quatre, merci de rappeler plus tard", False, 0.6),
    ("Bonjour, bienvenue sur le répondeur de la famille Girard", True, 0.9),
    ("Allô, oui... non je rigole, je suis absent, laissez un message", True, 0.5),
    ("Hi, you've reached Mike, I can't come to the phone right now, leave a message after the beep", True, 0.6),
    ("The person you are calling is not available, please leave your message after the tone", False, 0.5),
    ("Hello, this is Sarah, sorry I missed your call, I'll get back to you as soon as I can", True, 0.7),
    ("Hey it's Dan, leave it at the beep", True, 0.5),
    ("Thank you for calling the Johnson residence, we are out at the moment, please leave your name and number",
     False, 0.8),
    ("The mailbox of five five five, zero one three four is full and cannot accept messages", False, 0.6),
    ("Jenny here, I'm away from the phone, you know what to do", True, 0.5),
    ("Hello", True, 0.6),
    ("Hi, you have reached the offices of Baker and Partners, our office hours are nine to five Monday through "
     "Friday", True, 0.7),
    ("Bonjour, vous êtes bien chez Paul", True, 0.5),
]
PEOPLE = [
    ("Allô ?", 0.5), ("Oui, bonjour, c'est Marie", 0.6), ("Oui allô ?", 0.4), ("Bonjour", 0.5),
    ("Allô, oui ?", 0.7), ("Oui ?", 0.4), ("Allô, j'écoute", 0.6), ("Cabinet Durand, bonjour", 0.5),
    ("Oui, allô, c'est Pierre, je vous entends mal", 0.6),
    ("Allô oui bonjour, je suis en voiture, c'est pour quoi ?", 0.5),
    ("Hello?", 0.5), ("Yes, speaking", 0.6), ("Hello, Paul speaking", 0.5), ("Hi", 0.4), ("Yeah, hello?", 0.7),
    ("Good morning, Linda Carter", 0.6), ("Hello, who is this?", 0.5),
    ("Hi, sorry, I was just in the garden, who's calling?", 0.6), ("Yes?", 0.4), ("Hello, this is David", 0.5),
]


def scenario(index: int, greeting: str, beep: bool, after: float, partials: bool) -> Scenario:
    script = [{"wait_for": {"app": "detect_speech"}}, {"say": greeting, "after": after, "talk_over": True}]
    if beep:
        script.append({"beep": True, "after": 0.5})
    return Scenario.from_dict({"name": f"greeting-{index}", "agent": "support", "direction": "outbound",
                               "answered": True, "speech_partials": partials, "end_after_s": 1, "max_duration_s": 60,
                               "script": script})


def run(count: int, partials: bool) -> list[tuple[str, str, dict]]:
    """(truth, greeting, record) per call."""
    work = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    redis = SessionRedis()
    cases = [("machine", g, beep, after) for g, beep, after in MACHINES] + [("human", g, False, a) for g, a in PEOPLE]
    cases = cases[:count]
    out: list[tuple[str, str, dict]] = []
    try:
        config = write_config(work, {"support": BASE_AGENT + VOICEMAIL}, time_scale=TIME_SCALE)
        with running(config, redis) as runtime:
            switch = Switch()

            def one(index: int) -> None:
                truth, greeting, beep, after = cases[index]
                call = SimCall(scenario(index, greeting, beep, after, partials), ("127.0.0.1", runtime.listener.port),
                               runtime.clock, switch)
                call.run()
                for _ in range(100):
                    found = [json.loads(f[b"record"]) for _, f in runtime.store.redis.xrange(runtime.store.stream_key)]
                    found = [r for r in found if r["uuid"] == call.uuid]
                    if found:
                        out.append((truth, greeting, found[0]))
                        return
                    time.sleep(0.02)
                print(f"call {index}: no record ({call.rec.error})", file=sys.stderr)

            Pool(CONCURRENCY).map(one, range(len(cases)))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=len(MACHINES) + len(PEOPLE))
    parser.add_argument("--no-partials", action="store_true", help="a recogniser that sends final results only")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.calls, not args.no_partials)
    if len(results) < args.calls:
        raise SystemExit(f"only {len(results)} of {args.calls} calls left a record")
    right, baseline_right, decisions = 0, 0, []
    for truth, greeting, record in results:
        said = record.get("answered_by") or "unknown"
        got = "human" if said == "unknown" else said
        detail = record.get("answered_detail") or {}
        decisions.append(float(detail.get("decision_s", 0.0)))
        right += got == truth
        baseline = "machine" if len(greeting.split()) > LENGTH_WORDS else "human"
        baseline_right += baseline == truth
        if got != truth:
            print(f"wrong: {truth} heard as {said} ({detail.get('how')}): {greeting!r}")
    n = len(results)
    accuracy, baseline_accuracy = right / n, baseline_right / n
    p50, p95 = float(np.percentile(decisions, 50)), float(np.percentile(decisions, 95))
    by = {truth: [float((r.get("answered_detail") or {}).get("decision_s", 0)) for t, _, r in results if t == truth]
          for truth in ("machine", "human")}
    print(f"calls: {n} in {time.perf_counter() - started:.1f} s real, time scale {TIME_SCALE}, {CONCURRENCY} at a time")
    print(f"detector right: {right}/{n} = {accuracy:.3f}   length-only baseline (> {LENGTH_WORDS} words = machine): "
          f"{baseline_right}/{n} = {baseline_accuracy:.3f}")
    for truth, values in by.items():
        print(f"decision time, {truth + 's:':9s} p50 {np.percentile(values, 50):.2f} s  "
              f"p95 {np.percentile(values, 95):.2f} s (call seconds)")
    print(f"decision time, all:      p50 {p50:.2f} s  p95 {p95:.2f} s (call seconds)")
    ratio = accuracy / baseline_accuracy if baseline_accuracy else float("inf")
    print(f"RESULT accuracy={accuracy:.3f} p50_decision_s={p50:.2f} p95_decision_s={p95:.2f} "
          f"baseline_accuracy={baseline_accuracy:.3f} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
