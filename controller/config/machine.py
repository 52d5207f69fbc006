"""Machine detection settings of an agent: who answered an outbound call (a person, a voicemail, an IVR).

The detector listens before the agent greets: avmd's beep (mod_avmd) and the first words the recogniser returns
(call/answering.py). A voicemail's hang-up action with `answered_by: [machine]` runs once it is known.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from controller.config.base import ConfigModel


def _off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as false: that is what the operator wrote."""
    return "off" if value is False else value


class MachineDetection(ConfigModel):
    """`enabled`: outbound (calls the agent placed), all (inbound calls too) or off.
    `max_detect_s`: call seconds after the answer before an undecided call is treated as a person (`unknown`).
    `max_beep_wait_s`: how long a `leave_message` waits for the beep after a voicemail was recognised."""

    enabled: Annotated[Literal["outbound", "all", "off"], BeforeValidator(_off)] = "outbound"
    max_detect_s: Annotated[float, Field(ge=1, le=30)] = 6
    max_beep_wait_s: Annotated[float, Field(ge=1, le=60)] = 10
