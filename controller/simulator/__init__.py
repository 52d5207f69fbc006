"""A FreeSWITCH stand-in that speaks the outbound event socket over real TCP (see simulator.py)."""
from controller.simulator.recording import BridgeAttempt, CallRecording
from controller.simulator.scenario import Scenario, ScenarioError, Step, Target, load_scenario
from controller.simulator.simulator import Simulator

__all__ = ["BridgeAttempt", "CallRecording", "Scenario", "ScenarioError", "Simulator", "Step", "Target",
           "load_scenario"]
