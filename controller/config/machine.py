"""Machine detection settings of an agent: who answered an outbound call (a person, a voicemail, an IVR).

The detector listens before the agent greets: avmd's beep (mod_avmd) and the first words the recogniser returns
(call/answering.py). A voicemail's hang-up action with `answered_by: [machine]` runs once it is known.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from controller.config.base import ConfigModel


class MachineDetection(ConfigModel):
    """`enabled`: outbound (calls the agent placed), all (inbound calls too) or off.
    `max_detect_s`: call seconds after the answer before an undecided call is treated as a person (`unknown`).
    `max_beep_wait_s`: how long a `leave_message` waits for the beep after a voicemail was recognised."""

    enabled: Literal["outbound", "all", "off"] = "outbound"
    max_detect_s: Annotated[float, Field(ge=1, le=30)] = 6
    max_beep_wait_s: Annotated[float, Field(ge=1, le=60)] = 10
