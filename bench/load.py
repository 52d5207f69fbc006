"""2,000 concurrent calls against `switchboard serve`, and the same calls against a bare greenswitch application.

Two phases, each with its own processes, driven the same way:
1. product: `switchboard serve` (a subprocess; embedded Redis; one French agent with the semantic brain on use-m3);
2. baseline: a minimal greenswitch 0.0.19 OutboundESLServer application (this file, `--baseline`): it answers,
   starts recognition and says one fixed sentence per speech result; no brain, no Redis, no record.
The FreeSWITCH simulator (fssim/) runs in SIMS processes of its own (`--simulate`) and dials over real TCP, ramping
at `--ramp-rate` calls/s to `--calls` concurrent calls of about `--call-seconds` each: connect, answer, greeting,
three French sentences (each answered), the keys `1#`, a caller hang-up. Shorter calls run the same script with
every duration scaled (`time_scale`, both sides).

Measured, per phase: calls/s accepted over the ramp; latency from an event's write by the simulator to the
controller's resulting command read by it (a speech result -> the `speak` answering it, which includes the
brain's embedding in gevent's threadpool; CHANNEL_HANGUP_COMPLETE -> `exit`, which includes the call record);
hub stalls (GEVENT_MONITOR_THREAD_ENABLE reports of a greenlet holding the hub over --stall-ms); RSS per live call
((peak - idle) / peak live calls, VmRSS); CPU per call (utime+stime over the run / calls); errors (calls that
did not complete the script, hang-ups not by the caller, ERROR log lines, tracebacks). A keypad turn gets no
command from the semantic brain (nor from the baseline), so it adds no latency sample. Run:
    .venv/bin/python bench/load.py [--calls 2000] [--call-seconds 60]
Last line: RESULT calls=... errors=... p99_ms=... rss_kb_per_call=... cpu_ratio=... (and the other figures).
"""
from controller.process import cooperative

cooperative()  # the simulator processes and the baseline run under gevent, as `switchboard serve` does

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOMINAL_CALL_S = 60.0  # the script below lasts about this many call seconds
GREETING = "Bonjour, que puis-je faire pour vous ?"
ANSWER = "Pardon, pouvez-vous reformuler ?"  # the product's fallback line and the baseline's fixed sentence
PHRASES = ("Bonjour, je voudrais savoir où en est ma commande", "Je n'ai toujours pas reçu mon colis",
           "Pouvez-vous vérifier mon adresse de livraison ?")
PAUSE_S = 10.0  # call seconds the caller waits after the agent's audio before each step (no_input_s is above)
PER_SIM_PROCESS = 500
AGENT = f"""
language: fr
brain: {{type: semantic, embedder: use-m3, fallback_text: "{ANSWER}"}}
speech:
  asr: {{module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}}
  greeting: "{GREETING}"
  no_input_s: 15
actions:
  during_call:
    - type: hangup
      name: end_call
      description: >-
        Raccrocher quand l'appelant prend congé et n'a plus besoin de rien.
        Exemples : "au revoir", "merci, bonne journée", "c'est tout pour moi, merci".
      condition: L'appelant prend congé.
"""


def script() -> list[dict]:
    """Three sentences, the keys `1#`, then the caller hangs up: about NOMINAL_CALL_S call seconds in all."""
    steps: list[dict] = [{"say": text, "after": PAUSE_S} for text in PHRASES]
    return steps + [{"dtmf": "1#", "after": PAUSE_S}, {"hangup": "NORMAL_CLEARING", "after": 4.0}]


def raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard),
                                                    hard))


# ------------------------------------------------------------------ a simulator process (`--simulate SPEC`)
def summarise(rec, dialled: float, scale: float, sentences: int) -> dict:
    """One call's figures from its recording: latencies (real ms), whether it ran the whole script, its times."""
    speech, ending, answered_at, pending_speech, pending_end = [], [], None, None, None
    for frame in rec.frames:
        if frame.direction == "out":
            if b"Speech-Type: detected-speech" in frame.raw:
                pending_speech = frame.t
            elif b"Event-Name: CHANNEL_HANGUP_COMPLETE" in frame.raw:
                pending_end = frame.t
            continue
        head = frame.raw.split(b"\n\n", 1)[0].lower()
        if head.startswith(b"sendmsg") and b"execute-app-name: speak" in head and pending_speech is not None:
            speech.append((frame.t - pending_speech) * scale * 1000)
            pending_speech = None
        elif head.startswith(b"sendmsg") and b"execute-app-name: answer" in head and answered_at is None:
            answered_at = dialled + frame.t * scale
        elif head.startswith(b"exit") and pending_end is not None:
            ending.append((frame.t - pending_end) * scale * 1000)
            pending_end = None
    problems = []
    if rec.error:
        problems.append(rec.error)
    if rec.hangup_by != "caller":
        problems.append(f"hung up by {rec.hangup_by} ({rec.hangup_cause})")
    heard = sum(1 for _, delivered in rec.heard if delivered)
    if heard != sentences or len(speech) != sentences:
        problems.append(f"{heard} sentences heard, {len(speech)} answered")
    if not ending:
        problems.append("no exit after the hang-up")
    end = dialled + (rec.frames[-1].t * scale if rec.frames else 0.0)
    return {"speech_ms": speech, "end_ms": ending, "dialled": dialled, "answered": answered_at, "ended": end,
            "problem": "; ".join(problems) or None, "uuid": rec.uuid}


def simulate(spec: dict) -> None:
    """Dial calls number `first`, `first + step`, ... < `calls`, call k at `t0 + k / rate`; write the figures to `out`."""
    from fssim import Scenario, Simulator
    raise_nofile(2 * spec["calls"] + 200)
    logging.basicConfig(level=logging.WARNING)
    scale = spec["scale"]
    sim = Simulator(("127.0.0.1", spec["port"]), time_scale=scale)
    body = {"agent": "support", "script": spec["script"], "end": "wait", "max_duration_s": 3 * NOMINAL_CALL_S}
    results: list[dict] = []
    sentences = sum(1 for step in spec["script"] if "say" in step)

    def one(k: int) -> None:
        gevent.sleep(max(0.0, spec["t0"] + k / spec["rate"] - time.monotonic()))
        dialled = time.monotonic()
        rec = sim.run(Scenario.from_dict({"name": f"load-{k}", **body}))
        results.append(summarise(rec, dialled, scale, sentences))

    calls = [gevent.spawn(one, k) for k in range(spec["first"], spec["calls"], spec["step"])]
    gevent.joinall(calls, timeout=spec["timeout"])
    lost = sum(1 for g in calls if not g.dead)
    gevent.killall(calls, timeout=5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(spec["out"]).write_text(json.dumps({"results": results, "unfinished": lost,
                                              "cpu_s": usage.ru_utime + usage.ru_stime}))


# ------------------------------------------------------------------ the baseline process (`--baseline PORT`)
def baseline(port: int, max_connections: int) -> None:
    """greenswitch's own server and session: what an application with no brain does for the same script."""
    from greenswitch import esl as gs
    raise_nofile(2 * max_connections + 200)

    class App:
        def __init__(self, session) -> None:
            self.session = session
            self.gone = gevent.event.Event()

        def on_speech(self, event) -> None:
            if event.headers.get("Speech-Type") == "detected-speech":
                self.session.call_command("detect_speech", "resume")
                self.session.call_command("speak", f"flite|kal|{ANSWER}")

        def run(self) -> None:
            s = self.session
            s.register_handle("DETECTED_SPEECH", self.on_speech)
            s.register_handle("DISCONNECT", lambda event: self.gone.set())
            s.myevents()
            s.send("divert_events on")
            s.linger(30)
            s.answer()
            s.call_command("detect_speech", "unimrcp builtin:speech/transcribe switchboard")
            s.call_command("speak", f"flite|kal|{GREETING}")
            self.gone.wait(10 * NOMINAL_CALL_S)  # the linger notice after the hang-up; then greenswitch sends exit

    server = gs.OutboundESLServer(bind_address="127.0.0.1", bind_port=port, application=App,
                                  max_connections=max_connections)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.listen()


# ------------------------------------------------------------------ the bench (this process)
class Proc:
    """A child process with its stderr in a file, its CPU and memory read from /proc."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None) -> None:
        self.log_path = log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log, env=env, cwd=ROOT)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def children(self) -> list[int]:
        try:
            return [int(pid) for task in Path(f"/proc/{self.proc.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        except OSError:
            return []

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; a child it left behind (the embedded redis-server) too."""
        orphans = self.children()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def peak_live(results: list[dict]) -> int:
    edges = sorted([(r["dialled"], 1) for r in results] + [(r["ended"], -1) for r in results])
    live = best = 0
    for _, step in edges:
        live += step
        best = max(best, live)
    return best


def start_serve(directory: Path, args, scale: float, env: dict) -> tuple[Proc, int]:
    server = {"state_dir": str(directory / "state"), "time_scale": scale, "max_connections": args.calls + 100,
              "run_worker": False, "drain_timeout_s": 5, "command_timeout_s": 10, "execute_timeout_s": 30}
    text = "server:\n" + "".join(f"  {k}: {v}\n" for k, v in server.items()).replace("False", "false")
    text += "default_agent: support\nagents:\n  support:\n" + textwrap.indent(textwrap.dedent(AGENT).strip(), "    ")
    config = directory / "switchboard.yaml"
    config.write_text(text + "\n", encoding="utf-8")
    proc = Proc([str(Path(sys.executable).with_name("switchboard")), "--log-json", "serve", "--config", str(config),
                 "--port", "0"], directory / "serve.log", env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if '"listening for FreeSWITCH on' in line:
                return proc, int(json.loads(line)["msg"].rsplit(":", 1)[1])
        if proc.proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.proc.returncode}: {proc.log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("serve did not listen within 120 s")


def listening(port: int) -> bool:
    """A socket in LISTEN state on 127.0.0.1:`port` (read from /proc: a probe connection would be a call)."""
    wanted = f"0100007F:{port:04X}"
    return any(line.split()[1] == wanted and line.split()[3] == "0A"
               for line in Path("/proc/net/tcp").read_text().splitlines()[1:])


def start_baseline(directory: Path, args, env: dict) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc([sys.executable, __file__, "--baseline", str(port), str(args.calls + 100)], directory / "baseline.log",
                env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if listening(port):
            return proc, port
        if proc.proc.poll() is not None:
            raise RuntimeError(f"baseline exited: {proc.log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("baseline did not listen within 30 s")


def drive(directory: Path, name: str, port: int, calls: int, rate: float, steps: list[dict], scale: float,
          sims: int, server: Proc) -> dict:
    """Run `calls` calls from `sims` simulator processes; sample the server's RSS meanwhile; gather the results."""
    timeout = calls / rate + 4 * NOMINAL_CALL_S * scale + 60
    t0 = time.monotonic() + 3.0  # every simulator process imported and waiting
    procs = []
    for i in range(sims):
        spec = {"port": port, "first": i, "step": sims, "calls": calls, "t0": t0, "rate": rate, "scale": scale,
                "script": steps, "timeout": timeout, "out": str(directory / f"{name}-sim{i}.json")}
        procs.append(Proc([sys.executable, __file__, "--simulate", json.dumps(spec)], directory / f"{name}-sim{i}.log"))
    cpu0, peak = server.cpu_s(), server.rss_kb()
    try:
        while any(p.proc.poll() is None for p in procs):
            if time.monotonic() > t0 + timeout + 30:
                raise RuntimeError(f"{name}: the simulator processes did not finish within {timeout + 30:.0f} s")
            peak = max(peak, server.rss_kb())
            time.sleep(0.2)
        cpu = server.cpu_s() - cpu0
        outputs = [json.loads(Path(directory / f"{name}-sim{i}.json").read_text()) for i in range(sims)]
    finally:
        for p in procs:
            p.stop(2)
    results = [r for out in outputs for r in out.get("results", [])]
    missing = calls - len(results)
    return {"results": results, "missing": missing, "cpu_s": cpu, "rss_peak_kb": peak,
            "sim_cpu_s": sum(out.get("cpu_s", 0.0) for out in outputs)}


def log_problems(path: Path) -> tuple[int, int]:
    """(error lines and tracebacks, hub stall reports) in a server's stderr."""
    errors = stalls = 0
    for line in path.read_text(errors="replace").splitlines():
        if "appears to be blocked" in line:
            stalls += 1
        elif '"level": "error"' in line or '"level": "critical"' in line or line.startswith("Traceback"):
            errors += 1
    return errors, stalls


def phase(name: str, start, directory: Path, args, scale: float, env: dict) -> dict:
    server, port = start(directory, args, env) if name == "baseline" else start(directory, args, scale, env)
    try:
        warm = drive(directory, f"{name}-warm", port, 4, 20.0, [{"say": PHRASES[0], "after": 1.0},
                                                                 {"hangup": "NORMAL_CLEARING", "after": 1.0}],
                     scale, 1, server)
        time.sleep(1.0)
        idle = server.rss_kb()
        run = drive(directory, name, port, args.calls, args.ramp_rate, script(), scale, args.sims, server)
    finally:
        server.stop()
    results = run["results"]
    log_errors, stalls = log_problems(server.log_path)
    failed = [r for r in results if r["problem"]] + [r for r in warm["results"] if r["problem"]]
    for r in failed[:5]:
        print(f"  {name}: call {r['uuid']}: {r['problem']}")
    latencies = [ms for r in results for ms in r["speech_ms"] + r["end_ms"]]
    answered = sorted(r["answered"] for r in results if r["answered"] is not None)
    dialled = min((r["dialled"] for r in results), default=0.0)
    span = (answered[-1] - dialled) if answered else 0.0
    live = peak_live(results)
    return {
        "calls": len(results), "errors": len(failed) + run["missing"] + warm["missing"] + log_errors,
        "log_errors": log_errors, "stalls": stalls, "live": live,
        "accepted_per_s": len(answered) / span if span > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies, default=0),
        "speech_p99_ms": percentile([ms for r in results for ms in r["speech_ms"]], 0.99),
        "end_p99_ms": percentile([ms for r in results for ms in r["end_ms"]], 0.99),
        "rss_idle_kb": idle, "rss_peak_kb": run["rss_peak_kb"],
        "rss_kb_per_call": (run["rss_peak_kb"] - idle) / max(1, live),
        "cpu_ms_per_call": run["cpu_s"] * 1000 / max(1, len(results)),
        "sim_cpu_ms_per_call": run["sim_cpu_s"] * 1000 / max(1, len(results)),
    }


def show(name: str, m: dict) -> None:
    print(f"{name}: {m['calls']} calls, {m['live']} live at the peak, {m['errors']} errors "
          f"({m['log_errors']} error log lines), {m['stalls']} hub stalls")
    print(f"  accepted {m['accepted_per_s']:.1f} calls/s over the ramp")
    print(f"  event -> command  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms  max {m['max_ms']:.2f} ms  "
          f"(speech -> speak p99 {m['speech_p99_ms']:.2f} ms, hang-up -> exit p99 {m['end_p99_ms']:.2f} ms)")
    print(f"  RSS idle {m['rss_idle_kb'] / 1024:.0f} MB, peak {m['rss_peak_kb'] / 1024:.0f} MB: "
          f"{m['rss_kb_per_call']:.1f} kB per live call")
    print(f"  CPU {m['cpu_ms_per_call']:.2f} ms per call (simulator: {m['sim_cpu_ms_per_call']:.2f} ms per call)",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--call-seconds", type=float, default=NOMINAL_CALL_S, help="real length of one call")
    parser.add_argument("--ramp-rate", type=float, default=100.0, help="new calls per second during the ramp")
    parser.add_argument("--sims", type=int, default=0, help=f"simulator processes (0: one per {PER_SIM_PROCESS} calls)")
    parser.add_argument("--stall-ms", type=float, default=100.0, help="a hub held this long is a stall (gevent monitor)")
    args = parser.parse_args()
    if args.calls < 1 or args.call_seconds <= 0 or args.ramp_rate <= 0:
        parser.exit(2, "load.py: --calls, --call-seconds and --ramp-rate must be positive\n")
    args.sims = args.sims or max(1, math.ceil(args.calls / PER_SIM_PROCESS))
    raise_nofile(4 * args.calls + 500)
    scale = args.call_seconds / NOMINAL_CALL_S
    env = {**os.environ, "GEVENT_MONITOR_THREAD_ENABLE": "1", "GEVENT_MAX_BLOCKING_TIME": str(args.stall_ms / 1000),
           "PYTHONPATH": str(ROOT)}
    directory = Path(tempfile.mkdtemp(prefix="sb-load-", dir="/tmp"))
    print(f"{args.calls} calls of ~{args.call_seconds:g} s, ramp {args.ramp_rate:g}/s, {args.sims} simulator "
          f"process(es); logs in {directory}", flush=True)
    try:
        product = phase("product", start_serve, directory, args, scale, env)
        show("switchboard serve", product)
        base = phase("baseline", start_baseline, directory, args, scale, env)
        show("greenswitch baseline", base)
    except Exception:
        print(f"logs kept in {directory}")
        raise
    ratios = {key: product[key] / base[key] if base[key] else float("inf")
              for key in ("cpu_ms_per_call", "rss_kb_per_call", "p99_ms")}
    print(f"ratios: cpu {ratios['cpu_ms_per_call']:.2f}, rss {ratios['rss_kb_per_call']:.2f}, "
          f"p99 {ratios['p99_ms']:.2f}")
    errors = product["errors"] + base["errors"]
    if errors == 0:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"logs kept in {directory}")
    print(f"RESULT calls={product['calls']} errors={product['errors']} p99_ms={product['p99_ms']:.2f} "
          f"rss_kb_per_call={product['rss_kb_per_call']:.1f} cpu_ratio={ratios['cpu_ms_per_call']:.2f} "
          f"accepted_per_s={product['accepted_per_s']:.1f} p50_ms={product['p50_ms']:.2f} "
          f"max_ms={product['max_ms']:.2f} stalls={product['stalls']} live={product['live']} "
          f"cpu_ms_per_call={product['cpu_ms_per_call']:.2f} baseline_cpu_ms_per_call={base['cpu_ms_per_call']:.2f} "
          f"baseline_p99_ms={base['p99_ms']:.2f} baseline_rss_kb_per_call={base['rss_kb_per_call']:.1f} "
          f"baseline_errors={base['errors']} rss_ratio={ratios['rss_kb_per_call']:.2f} p99_ratio={ratios['p99_ms']:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--simulate"]:
        simulate(json.loads(sys.argv[2]))
    elif sys.argv[1:2] == ["--baseline"]:
        baseline(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
