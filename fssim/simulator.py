"""The public face of the simulator: run scenarios against a controller listening for FreeSWITCH.

    sim = Simulator(controller_addr=("127.0.0.1", 8084), time_scale=0.05)
    rec = sim.run(load_scenario("examples/scenarios/01-faq-question.yaml"))
    print("\\n".join(rec.timeline()))

`run` blocks the calling greenlet (the gevent hub keeps serving everything else, including a controller
running in the same process).
"""
from __future__ import annotations

from typing import Iterable

from gevent.pool import Pool

from controller.clock import Clock
from fssim.call import SimCall
from fssim.channel import Switch
from fssim.recording import CallRecording
from fssim.scenario import Scenario


class Simulator:
    """A stand-in FreeSWITCH that dials `controller_addr` once per scenario, as the `socket` app does."""

    def __init__(self, controller_addr: tuple[str, int] = ("127.0.0.1", 8084), time_scale: float = 1.0,
                 clock: Clock | None = None, hostname: str = "switchboard-sim") -> None:
        self.controller_addr = controller_addr
        self.clock = clock or Clock(time_scale)
        self.switch = Switch(hostname)

    def run(self, scenario: Scenario) -> CallRecording:
        """Play one call (and any hand-off connections) to its end; returns what happened on the wire."""
        return SimCall(scenario, self.controller_addr, self.clock, self.switch).run()

    def run_many(self, scenarios: Iterable[Scenario], concurrency: int = 10) -> list[CallRecording]:
        """Play several calls, at most `concurrency` at a time; recordings come back in input order."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        return list(Pool(concurrency).imap(self.run, scenarios))
