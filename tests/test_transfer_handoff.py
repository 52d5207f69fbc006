"""Hand-offs to another agent (uuid_transfer, capture 12), blind transfers by REFER, and closed transfers."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import gevent
import pytest

from controller.state.connection import connect
from tests.support.controller import call, records, running, simulator
from tests.support.transfer import ASKS_FOR_ADVISOR, SALES, agent_yaml, transfer_config, transfer_entry, wire

GREETED = {"wait_for": {"app": "speak"}}
HANDED_ON = "Ici le service commercial, votre appel m'a été transmis."


@pytest.mark.parametrize("handoff_greeting, heard", [
    (None, "Service commercial, bonjour."),
    (HANDED_ON, HANDED_ON),
])
def test_a_hand_off_moves_the_call_to_the_other_agent_which_announces_itself_and_continues_the_record(
        tmp_path, session_redis, handoff_greeting, heard):
    greeting = '  greeting: "Service commercial, bonjour."\n'
    sales = SALES.replace(greeting, greeting + (f'  handoff_greeting: "{handoff_greeting}"\n' if handoff_greeting
                                                else ""))
    support = agent_yaml({"name": "to_sales", "destinations": [{"agent": "sales", "description": "Agent commercial"}]})
    config = transfer_config(tmp_path, agents={"support": support, "sales": sales}, extra="")
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "handoffs": {"2002": "sales"}, "end": "wait", "script": [
            GREETED, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "speak", "count": 3}},
            {"say": "merci au revoir", "after": 1}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
        counters = runtime.store.counters()
    first = [c for c in rec.commands if c.connection == "conn1"]
    second = [c for c in rec.commands if c.connection == "conn2"]
    transfer = next(i for i, c in enumerate(first) if c.name == "api" and c.arg.startswith("uuid_transfer"))
    assert first[transfer].arg == f"uuid_transfer {rec.uuid} 2002 XML default"
    # the first session lets go without a word: no exit (capture 18), no hangup, nothing after uuid_transfer
    assert first[transfer + 1:] == [] and "exit" not in [c.name for c in first]
    assert [c.name for c in second][:1] == ["connect"] and "answer" not in [c.app for c in second]
    assert rec.hangup_by != "dialplan"
    assert record["agent"] == "sales" and record["uuid"] == rec.uuid and record["hangup_by"] == "agent"
    spoken = [t["text"] for t in record["transcript"] if t["who"] == "agent"]
    assert spoken[0] == "Bonjour, que puis-je faire pour vous ?" and heard in spoken
    if handoff_greeting:
        assert "Service commercial, bonjour." not in spoken
    assert [t["text"] for t in record["transcript"] if t["who"] == "caller"] == [ASKS_FOR_ADVISOR, "merci au revoir"]
    assert [(a["name"], a["result"]) for a in record["actions"]] == [("to_sales", "handed_off"),
                                                                     ("end_call", "hung_up")]
    assert transfer_entry(record, "to_sales")["detail"]["agent"] == "sales"
    assert "ringing" in record["moments"] and record["transferred"] is True
    assert counters["action:support.to_sales:handed_off"] == 1


def test_the_hand_off_snapshot_is_in_redis_before_freeswitch_moves_the_call(tmp_path, session_redis):
    """Not written behind: the next agent's session may run in another serve, which reads it at connect."""
    support = agent_yaml({"name": "to_sales", "destinations": [{"agent": "sales", "description": "Agent commercial"}]})
    config = transfer_config(tmp_path, agents={"support": support, "sales": SALES}, extra="")
    other = connect(session_redis.server.url)  # another process's view
    seen: list[bytes | None] = []
    with running(config, session_redis) as runtime:
        def on_event(name: str, headers: dict[str, str], _frame: bytes) -> None:
            if name == "CHANNEL_UNPARK" and not seen:  # the socket app gave the channel up to uuid_transfer
                seen.append(other.hget(runtime.store.key("call", headers["Unique-ID"]), "handoff_to"))

        simulator(runtime).switch.sinks.append(on_event)
        call(runtime, {"agent": "support", "handoffs": {"2002": "sales"}, "end": "wait", "script": [
            GREETED, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "speak", "count": 3}},
            {"say": "merci au revoir", "after": 1}]})
    other.close()

    assert seen == [b'"sales"']


def test_a_hand_off_freeswitch_refuses_is_taken_back_and_counted_once_as_failed(tmp_path, session_redis):
    support = agent_yaml({"name": "to_sales", "destinations": [{"agent": "sales", "description": "Agent commercial"}]})
    config = transfer_config(tmp_path, agents={"support": support, "sales": SALES}, extra="")
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "handoffs": {"2002": "sales"},
                             "api_replies": {"uuid_transfer": "-ERR No such channel!"},
                             "script": [GREETED, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "speak", "count": 3}}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
        counters = runtime.store.counters()
        logged = runtime.store.call_state(rec.uuid)["actions"]
    assert [c.connection for c in rec.commands if c.name == "connect"] == ["conn1"]
    assert record["agent"] == "support" and record["transferred"] is False
    entry = transfer_entry(record, "to_sales")
    assert entry["result"] == "failed" and entry["detail"]["cause"] == "TRANSFER_REFUSED"
    assert [(a["name"], a["result"]) for a in logged] == [("to_sales", "failed")]
    assert counters["action:support.to_sales:failed"] == 1 and "action:support.to_sales:handed_off" not in counters


def test_refer_mode_deflects_the_call_and_cannot_take_it_back(tmp_path, session_redis):
    extra = """
    sip_connections:
      trunk: {gateway: sip.carrier.example}
    """
    config = transfer_config(tmp_path, {"mode": "refer", "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]}, extra=extra)
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "end": "wait", "script": [GREETED, {"say": ASKS_FOR_ADVISOR}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert wire(rec, "deflect") == ["sip:+33170363950@sip.carrier.example"]
    assert wire(rec, "bridge") == [] and wire(rec, "multiset") == []
    entry = transfer_entry(record)
    assert entry["result"] == "transferred" and entry["detail"]["mode"] == "refer"
    assert record["transferred"] is True and record["hangup_by"] == "agent"


def test_a_closed_transfer_dials_nothing_and_says_when_it_opens(tmp_path, session_redis):
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    schedule = {"timezone": "Europe/Paris", "windows": [{"days": ["Monday-Sunday"], "hours": "00:00-24:00"}],
                "closed_dates": [str(today), str(today + timedelta(days=1))]}
    config = transfer_config(tmp_path, {"schedule": schedule, "messages": {"closed": "Nous sommes fermés."},
                                        "destinations": [{"country": "FR", "number": "01 70 36 39 50",
                                                          "description": "Conseillers Paris"}]})
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [GREETED, {"say": ASKS_FOR_ADVISOR},
                                                            {"wait_for": {"app": "speak", "count": 2}}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
        counters = runtime.store.counters()
    assert wire(rec, "bridge") == [] and wire(rec, "multiset") == []
    assert "Nous sommes fermés." in rec.spoken
    entry = transfer_entry(record)
    opening = datetime.fromisoformat(entry["detail"]["next_opening"])
    assert entry["result"] == "closed" and opening.date() == today + timedelta(days=2)
    assert (opening.hour, opening.minute, opening.utcoffset()) == (0, 0, opening.astimezone(ZoneInfo(
        "Europe/Paris")).utcoffset())
    assert counters["action:support.to_advisor:closed"] == 1
