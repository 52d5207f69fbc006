"""FreeSWITCH's hang-up causes, one table for everything that names, checks or reports one.

The names are switch_types.h's (Q.850 causes and FreeSWITCH's own 5xx/6xx); the number is what FreeSWITCH
reports as `hangup_cause_q850` and in a SIP `Reason: Q.850;cause=N` header.
"""
from __future__ import annotations

CAUSES: dict[str, int] = {
    "NONE": 0, "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "NORMAL_CLEARING": 16,
    "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22, "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31, "NETWORK_OUT_OF_ORDER": 38, "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42, "INCOMPATIBLE_DESTINATION": 88, "RECOVERY_ON_TIMER_EXPIRE": 102,
    "ORIGINATOR_CANCEL": 487, "MANAGER_REQUEST": 503, "BLIND_TRANSFER": 600, "ATTENDED_TRANSFER": 601,
    "ALLOTTED_TIMEOUT": 602, "MEDIA_TIMEOUT": 604, "PROGRESS_TIMEOUT": 607, "INVALID_GATEWAY": 608}
