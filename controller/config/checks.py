"""Checks that need the whole file, plus the `check` command's summary and warnings.

`cross_checks` reads the raw YAML data (not the models) so that it still runs when some field
elsewhere is invalid: every problem is reported in one go. Warnings are for configurations that
load but will probably not do what the operator expects.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

from controller.config.actions import MOMENTS
from controller.config.errors import render_path
from controller.config.base import ID_RE, KEYED_SECTIONS, NAME_RE, RefContext, exists
from controller.config.schema import Config
from controller.state.private import open_to_others

Found = tuple[list, str, str, bool]


def _items(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, dict):
        yield from value.items()


def _actions(agent: Any) -> Iterator[tuple[str, int, dict]]:
    moments = agent.get("actions") if isinstance(agent, dict) else None
    for moment in MOMENTS:
        items = moments.get(moment) if isinstance(moments, dict) else None
        for i, action in enumerate(items if isinstance(items, list) else []):
            if isinstance(action, dict):
                yield moment, i, action


def key_checks(data: dict, sections: Iterable[tuple[str, str]] = KEYED_SECTIONS) -> Iterator[Found]:
    """An entry that names itself differently from its key (`agents: {support: {id: other}}`)."""
    for section, attr in sections:
        for key, item in _items(data.get(section)):
            if isinstance(item, dict) and attr in item and item[attr] != key:
                yield ([section, key, attr], f"{item[attr]!r} differs from its key {key!r}",
                       f"omit {attr}: the key under {section} is the {attr}", True)


def cross_checks(data: dict, ctx: RefContext) -> Iterator[Found]:
    """(path, problem, allowed, at_key) for every whole-file problem in the raw data."""
    yield from key_checks(data)
    for agent_id, agent in _items(data.get("agents")):
        yield from _agent_checks(data, ctx, agent_id, agent)
    fallbacks = [name for name, c in _items(data.get("classifications"))
                 if isinstance(c, dict) and c.get("fallback") is True]
    for name in fallbacks[1:]:
        yield (["classifications", name, "fallback"],
               f"a second fallback classification (the first is {fallbacks[0]!r})",
               "one classification with fallback: true", False)


def _agent_checks(data: dict, ctx: RefContext, agent_id: str, agent: Any) -> Iterator[Found]:
    base = ["agents", agent_id, "actions"]
    first: dict[str, tuple[str, int]] = {}
    for moment, i, action in _actions(agent):
        name, kind = action.get("name"), action.get("type")
        if isinstance(name, str) and name in first:
            m0, i0 = first[name]
            yield (base + [moment, i, "name"], f"name {name!r} is already used by actions.{m0}[{i0}]",
                   "a name unique within the agent across before_call, during_call and after_call", False)
        elif isinstance(name, str):
            first[name] = (moment, i)
        if kind == "email" and moment == "after_call" and not isinstance(data.get("smtp"), dict):
            yield (base + [moment, i], "sends email but the file has no smtp section",
                   "add smtp: {host, port, from}", False)
        if kind == "transfer" and moment == "during_call":
            yield from _transfer_checks(ctx, agent_id, base + [moment, i], action)


def _transfer_checks(ctx: RefContext, agent_id: str, path: list, action: dict) -> Iterator[Found]:
    destinations = action.get("destinations") or []
    for j, dest in enumerate(destinations if isinstance(destinations, list) else []):
        if isinstance(dest, dict) and dest.get("agent") == agent_id:
            yield (path + ["destinations", j, "agent"], "an agent cannot hand a call to itself",
                   "another agent with extension and context", False)
    name = action.get("name")
    named = isinstance(name, str) and re.fullmatch(NAME_RE, name) and isinstance(agent_id, str) \
        and re.fullmatch(ID_RE, agent_id)
    if destinations or not named:
        return
    csv = ctx.base_dir / "numbers" / f"{agent_id}.{name}.csv"
    if not exists(csv):
        yield (path, f"has no destinations and no imported numbers file {csv}",
               "destinations: [{country, number, description}] or `switchboard numbers import`", False)
    elif not action.get("sip_connection") and ctx.default_sip_connection is None:
        yield (path + ["sip_connection"], f"imported numbers in {csv.name} need a SIP connection and none is set",
               "sip_connection: NAME, or default_sip_connection at the top level", False)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_summary(cfg: Config) -> str:
    """`OK: 2 agents, 14 actions (before 2, during 9, after 3), 1 SIP connection, 1 knowledge source`."""
    counts = {m: sum(len(getattr(a.actions, m)) for a in cfg.agents.values()) for m in MOMENTS}
    return (f"OK: {_plural(len(cfg.agents), 'agent')}, {_plural(sum(counts.values()), 'action')} "
            f"(before {counts['before_call']}, during {counts['during_call']}, after {counts['after_call']}), "
            f"{_plural(len(cfg.sip_connections), 'SIP connection')}, "
            f"{_plural(len(cfg.knowledge_sources), 'knowledge source')}")


def config_warnings(cfg: Config) -> list[str]:
    """Things that load but will probably surprise: each line names the file and the field."""
    found: list[tuple[list, str]] = []
    if not ipaddress.ip_address(cfg.server.host).is_loopback:
        found.append((["server", "host"], f"{cfg.server.host} is not loopback; the outbound socket has no "
                      "authentication, so only expose it on a trusted network"))
    if not ipaddress.ip_address(cfg.freeswitch.host).is_loopback:
        found.append((["freeswitch", "host"], f"{cfg.freeswitch.host} is not loopback; the ESL password and every "
                      "command `switchboard call` sends to FreeSWITCH's inbound event socket travel in cleartext: "
                      "keep the event socket on loopback (127.0.0.1), or reach it through a tunnel (stunnel, "
                      "WireGuard)"))
    for agent_id, agent in cfg.agents.items():
        found.extend(_agent_warnings(cfg, agent_id, agent))
    for name, source in cfg.knowledge_sources.items():
        if not exists(source.index_dir, "dir"):
            found.append((["knowledge_sources", name, "index_dir"], f"{source.index_dir} does not exist yet; "
                          f"build it with `switchboard knowledge index {name} PATH...`"))
    if cfg.smtp and cfg.smtp.password_env and cfg.smtp.password_env not in os.environ:
        found.append((["smtp", "password_env"], f"environment variable {cfg.smtp.password_env} is not set"))
    names = list(cfg.classifications)
    for i, (name, c) in enumerate(cfg.classifications.items()):
        if c.when is None and not c.fallback and i < len(names) - 1:
            found.append((["classifications", name], f"has no rules, so it matches every call and "
                          f"{', '.join(names[i + 1:])} can never match; add `when` or `fallback: true`"))
    found.extend(_state_warnings(cfg))
    raw = _raw_view(cfg)
    return [f"{cfg.display_path}: {render_path(raw, path)}: {message}" for path, message in found]


def _state_warnings(cfg: Config) -> Iterator[tuple[list, str]]:
    """Call data (the Redis AOF, spooled records) that other local users can read: left wide by an older
    version or by hand; Switchboard creates it 0700/0600 (state/private.py) but never changes existing modes."""
    wide = open_to_others(cfg.server.state_dir)
    if wide:
        shown = ", ".join(f"{path} {mode:04o}" for path, mode in wide[:3]) + (", ..." if len(wide) > 3 else "")
        yield ["server", "state_dir"], (f"{len(wide)} path{'s' if len(wide) > 1 else ''} holding call data can be "
                                        f"read by other local users ({shown}); fix: chmod -R go= "
                                        f"{cfg.server.state_dir}")


def _agent_warnings(cfg: Config, agent_id: str, agent: Any) -> Iterator[tuple[list, str]]:
    base = ["agents", agent_id]
    semantic = agent.brain.type == "semantic"
    if agent.brain.type == "openai" and agent.brain.api_key_env and agent.brain.api_key_env not in os.environ:
        yield base + ["brain", "api_key_env"], f"environment variable {agent.brain.api_key_env} is not set"
    for moment in MOMENTS:
        for i, action in enumerate(getattr(agent.actions, moment)):
            path = base + ["actions", moment, i]
            required = (getattr(action, "arguments", None) or {}).get("required") or []
            if semantic and action.type == "workflow" and moment == "during_call" and required:
                yield path + ["arguments"], ("the semantic brain cannot fill arguments "
                                             f"({', '.join(required)}); use an openai brain or make them optional")
            if semantic and action.type == "keypad" and action.digits is None:
                yield path + ["digits"], ("digits are left to the brain, which the semantic brain cannot "
                                          "choose; set digits")
            if moment == "before_call" and action.timeout_s > agent.ring_budget_s:
                yield path + ["timeout_s"], (f"{action.timeout_s:g} s is longer than the ring budget "
                                             f"({agent.ring_budget_s:g} s): the call is answered without its result")
            if action.type == "workflow":
                yield from _signing_warnings(action, path)
            if action.type == "hangup" and action.answered_by and agent.machine_detection.enabled == "off":
                yield path + ["answered_by"], ("machine detection is off for this agent "
                                               "(machine_detection.enabled), so this never runs")
            if action.type == "transfer" and action.dials_numbers and action.sip_connection and agent.number is None:
                conn = cfg.sip_connections.get(action.sip_connection)
                if conn is not None and conn.caller_id == "agent":
                    yield path, (f"SIP connection {conn.name} presents the agent's number, but agents.{agent_id} "
                                 "has no number: the caller's number is presented instead")


def _signing_warnings(action: Any, path: list) -> Iterator[tuple[list, str]]:
    """A workflow that leaves this host unsigned, or signed with a secret this environment lacks."""
    if action.secret_env:
        if action.secret_env not in os.environ:
            yield path + ["secret_env"], (f"environment variable {action.secret_env} is not set: the requests will "
                                          "not be sent (never unsigned)")
        return
    host = urlsplit(action.request.url).hostname or ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if not local:
        yield path + ["secret_env"], (f"requests to {host} are not signed: set secret_env so the receiver can check "
                                      "they come from Switchboard (README: Signed workflows)")


def _raw_view(cfg: Config) -> dict:
    """Enough of the file's shape to label action paths with their type and name."""
    return {"agents": {aid: {"actions": {m: [{"type": a.type, "name": a.name} for a in getattr(agent.actions, m)]
                                         for m in MOMENTS}} for aid, agent in cfg.agents.items()}}
