"""A FreeSWITCH stand-in that speaks the outbound event socket over real TCP (see simulator.py)."""
from fssim.recording import BridgeAttempt, CallRecording
from fssim.scenario import Scenario, ScenarioError, Step, Target, load_scenario
from fssim.simulator import Simulator

__all__ = ["BridgeAttempt", "CallRecording", "Scenario", "ScenarioError", "Simulator", "Step", "Target",
           "load_scenario"]
