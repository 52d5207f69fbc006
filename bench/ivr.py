"""Benchmark of the keypad against IVR trees: 50 generated trees (tests/support/ivr_trees.py), each one called.

    python bench/ivr.py               # 50 trees, then the naive baseline on the same trees (under a minute)
    python bench/ivr.py --trees 20

Every call takes the product's outbound path: `originate_for` (controller/call/originate.py) builds the originate,
`controller.esl.inbound.originate` sends it to the simulator's inbound event socket (fssim/inbound.py), whose
callee is the tree's IVR; the answered call reaches the real controller (semantic brain, Redis) over TCP. Agent
`tNN` has one keypad action without digits whose `goal` is the tree's goal words; the baseline agent `bNN` (same
run, same trees) is the seed's policy: a keypad with fixed digits, the first key its first menu offers.

Reported: the share of goals reached with the right keys (the IVR's trace is exactly the goal's path), calls the
controller ended by a loop rule (a built-in hang-up), calls the IVR ended after its failures, wrong keys (a key
off the goal's path, or no option), mean keys per goal reached. Targets: reached >= 0.95, loops = 0.
Last line: `RESULT reached=... wrong_keys=... loops=... mean_keys=... baseline_reached=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid as uuidlib  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.call.originate import originate_for  # noqa: E402
from controller.config.load import load_config  # noqa: E402
from controller.esl.inbound import SESSION_START_S, originate  # noqa: E402
from fssim import Scenario  # noqa: E402
from fssim.inbound import InboundServer  # noqa: E402
from tests.support.ivr_trees import Tree, make_tree  # noqa: E402
from tests.support.controller import SessionRedis, records, running, write_config  # noqa: E402

TIME_SCALE = 0.02
CONCURRENCY = 10
TRUNK = """
sip_connections:
  trunk: {gateway: carrier_main, dtmf: rfc2833}
default_sip_connection: trunk
"""
DESCRIPTION = {"fr": 'Choisir une option du serveur vocal. Exemples : "tapez 1", "pour le service, appuyez sur 2"',
               "en": 'Choose an option of the automated menu. Examples: "press 1", "for the service, press 2"'}


def agent_yaml(tree: Tree, digits: str | None) -> str:
    keypad = {"type": "keypad", "name": "ivr_menu", "description": DESCRIPTION[tree.language], "listen_after_s": 10}
    keypad.update({"digits": digits, "repeat_keys": True} if digits else {"goal": tree.goal})
    fields = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower()}" for k, v in keypad.items())
    return (f"language: {tree.language}\nbrain: {{type: semantic}}\n"
            "speech:\n  asr: {module: mod_unimrcp, engine: unimrcp, grammar: \"builtin:speech/transcribe\"}\n"
            f"  greeting: {'Bonjour.' if tree.language == 'fr' else 'Hello.'}\n"
            f"actions:\n  during_call:\n    - {{{fields}}}\n")


def place(config: Any, port: int, tree: Tree, agent: str) -> tuple[str, Any]:
    """One call from `agent` to the tree's IVR; (uuid, the IVR call's recording)."""
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": tree.name, "ivr": tree.ivr}), TIME_SCALE)
    call_uuid = str(uuidlib.uuid4())
    try:
        inbound_port = inbound.start()
        command = originate_for(config, agent, "+33612345678", call_uuid, socket_address=("127.0.0.1", port))
        gevent.get_hub().threadpool.apply(originate, (("127.0.0.1", inbound_port), "ClueCon", command, call_uuid,
                                                      30, SESSION_START_S))
        recordings = inbound.recordings(timeout=120)
    finally:
        inbound.stop()
    return call_uuid, recordings[0] if recordings else None


def score(tree: Tree, rec: Any, record: dict[str, Any] | None) -> dict[str, Any]:
    trace = rec.ivr if rec is not None else None
    keys = [key for _, key, outcome in trace.keys] if trace else []
    right_path = [f"m{i}" for i in range(len(tree.keys))]
    reached = bool(trace and trace.goal == tree.goal_name and trace.path == right_path and keys == tree.keys)
    wrong = sum(1 for (menu, key, outcome) in (trace.keys if trace else [])
                if outcome != "option" or key != tree.keys[int(menu[1:])]) if trace else 0
    loop = any(a.get("name") == "builtin_hangup" for a in (record or {}).get("actions", []))
    return {"reached": reached, "wrong": wrong, "loop": loop, "keys": len(rec.dtmf_received) if rec else 0,
            "ivr_failures": bool(trace and trace.ended == "failures")}


def run(trees: list[Tree], workdir: Path, redis: SessionRedis) -> dict[str, list[dict[str, Any]]]:
    agents = {f"t{i:02d}": agent_yaml(t, None) for i, t in enumerate(trees)}
    agents.update({f"b{i:02d}": agent_yaml(t, t.first_keys[0]) for i, t in enumerate(trees)})
    path = write_config(workdir, agents, extra=TRUNK, time_scale=TIME_SCALE)
    config = load_config(path)
    results: dict[str, list[dict[str, Any]]] = {"keypad": [], "baseline": []}
    # each originate blocks a threadpool worker until the agent's session starts, and name lookups use the same
    # pool: room for both
    gevent.get_hub().threadpool.maxsize = 4 * CONCURRENCY
    started = time.monotonic()
    with running(path, redis) as runtime:
        print(f"controller up with {len(agents)} agents in {time.monotonic() - started:.1f} s")
        port = runtime.listener.port
        for policy, prefix in (("keypad", "t"), ("baseline", "b")):
            started = time.monotonic()
            jobs = [(tree, f"{prefix}{i:02d}") for i, tree in enumerate(trees)]
            placed = Pool(CONCURRENCY).map(lambda job: (job[0], place(config, port, job[0], job[1])), jobs)
            gevent.sleep(0.3)
            by_uuid = {r["uuid"]: r for r in records(runtime)}
            for tree, (call_uuid, rec) in placed:
                results[policy].append(score(tree, rec, by_uuid.get(call_uuid)))
            print(f"{policy}: {len(jobs)} calls in {time.monotonic() - started:.1f} s")
    return results


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    reached = [r for r in rows if r["reached"]]
    return {"reached": len(reached) / len(rows), "wrong_keys": sum(r["wrong"] for r in rows),
            "loops": sum(r["loop"] for r in rows), "ivr_failures": sum(r["ivr_failures"] for r in rows),
            "mean_keys": sum(r["keys"] for r in reached) / len(reached) if reached else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    trees = [make_tree(i, rng) for i in range(args.trees)]
    levels = [len(t.keys) for t in trees]
    print(f"{len(trees)} trees: {levels.count(2)} of 2 levels, {levels.count(3)} of 3, {levels.count(4)} of 4; "
          f"{sum(t.language == 'fr' for t in trees)} French, {sum(t.language == 'en' for t in trees)} English")
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-ivr-"))
    redis = SessionRedis()
    started = time.monotonic()
    try:
        results = run(trees, workdir, redis)
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    keypad, baseline = summary(results["keypad"]), summary(results["baseline"])
    for name, s in (("keypad (keys from the menu, goal)", keypad), ("baseline (fixed digits)", baseline)):
        print(f"{name:36s} reached {s['reached']:.2f}  wrong keys {s['wrong_keys']}  loop hang-ups {s['loops']}  "
              f"IVR gave up {s['ivr_failures']}  mean keys per goal {s['mean_keys']:.2f}")
    print(f"{2 * len(trees)} calls in {time.monotonic() - started:.1f} s at time_scale {TIME_SCALE}; "
          f"reached vs baseline: {keypad['reached']:.2f} vs {baseline['reached']:.2f}")
    print(f"RESULT reached={keypad['reached']:.2f} wrong_keys={keypad['wrong_keys']} loops={keypad['loops']} "
          f"mean_keys={keypad['mean_keys']:.2f} baseline_reached={baseline['reached']:.2f}")


if __name__ == "__main__":
    main()
