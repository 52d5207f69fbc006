"""A FreeSWITCH stand-in that speaks the outbound event socket over real TCP (see simulator.py)."""
from fssim.recording import BridgeAttempt, CallRecording
from fssim.scenario import FarEnd, Scenario, ScenarioError, Step, load_scenario
from fssim.simulator import Simulator

__all__ = ["BridgeAttempt", "CallRecording", "FarEnd", "Scenario", "ScenarioError", "Simulator", "Step",
           "load_scenario"]
