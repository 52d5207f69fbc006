"""`switchboard check CONFIG --dialplan FILE`: the shipped dialplan agrees with the example configuration, and each
way a dialplan can lose calls is named with its file and line; every shipped FreeSWITCH file is well-formed XML."""
from __future__ import annotations

import xml.parsers.expat
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "freeswitch-conf" / "dialplan-switchboard.xml"
EXAMPLE = ROOT / "examples" / "agent.yaml"


def _check(dialplan: Path):
    return CliRunner().invoke(main, ["--log-text", "check", str(EXAMPLE), "--dialplan", str(dialplan)])


def test_the_shipped_dialplan_routes_every_example_agent_and_hand_off():
    result = _check(SHIPPED)
    assert result.exit_code == 0, result.output
    assert "OK: 2 agents" in result.output


@pytest.mark.parametrize("old, new, expected", [
    ('data="127.0.0.1:8084 async full"/>\n      <!-- several', 'data="127.0.0.1:8084"/>\n      <!-- several',
     "socket '127.0.0.1:8084' lacks `async full`"),
    ('data="127.0.0.1:8084 async full"/>\n      <!-- several', 'data="127.0.0.1:9999 async full"/>\n      <!-- several',
     "socket '127.0.0.1:9999 async full' is not Switchboard's address; write data=\"127.0.0.1:8084 async full\""),
    ('expression="^2002$"', 'expression="^3002$"',
     "no extension 2002 in context default sends a hand-off to sales"),
    ('expression="^(\\+?33184808080)$"', 'expression="^(\\+?33100000000)$"',
     "no extension routes support's number +33184808080 to Switchboard"),
    ('data="switchboard_agent=sales"', 'data="switchboard_agent=salez"',
     "switchboard_agent=salez is not an agent of"),
    ('      <action application="transfer" data="switchboard_fallback XML default"/>\n    </condition>\n  </extension>\n\n'
     '  <!-- Agent-to-agent', '    </condition>\n  </extension>\n\n  <!-- Agent-to-agent',
     "nothing after `socket`: when Switchboard is down or full the caller is hung up"),
    ('<include>', '<include><extension>', "not well-formed XML"),
    ('<include>', '<!DOCTYPE x [<!ENTITY a "b">]><include>', "a DOCTYPE; a dialplan file needs none"),
])
def test_a_dialplan_that_would_lose_calls_is_refused_with_its_line(tmp_path, old, new, expected):
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    broken = tmp_path / "dialplan.xml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _check(broken)
    assert result.exit_code == 2 and expected in result.output, result.output
    assert f"{broken}:" in result.output and "Traceback" not in result.output


def test_a_failover_socket_to_another_host_is_accepted_once_listed_in_server_peers(tmp_path):
    from controller.config.dialplan import dialplan_problems
    from controller.config.load import load_config
    text = SHIPPED.read_text(encoding="utf-8")
    commented = '<!-- several hosts'
    assert commented in text
    failover = tmp_path / "dialplan.xml"
    failover.write_text(text.replace('<action application="socket" data="10.0.0.2:8084 async full"/> -->',
                                     '-->\n      <action application="socket" data="10.0.0.2:8084 async full"/>'),
                        encoding="utf-8")
    config = load_config(EXAMPLE)
    [problem] = dialplan_problems(config, failover)
    assert "10.0.0.2:8084 async full' is not Switchboard's address" in problem and "server.peers" in problem
    peered = config.model_copy(update={"server": config.server.model_copy(update={"peers": ["10.0.0.2:8084"]})})
    assert dialplan_problems(peered, failover) == []


@pytest.mark.parametrize("path", sorted((ROOT / "freeswitch-conf").glob("*.xml")), ids=lambda p: p.name)
def test_every_shipped_freeswitch_file_is_well_formed_xml(path):
    xml.parsers.expat.ParserCreate().Parse(path.read_bytes(), True)
