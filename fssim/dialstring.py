"""Parse a `bridge` argument the way switch_ivr_originate reads it, so the simulator honours what is on the wire.

`{global vars}[leg vars]endpoint,[leg vars]endpoint|[leg vars]endpoint`: `,` rings legs together, `|` tries the
next group when the previous one failed. Variable lists are `k=v` separated by commas; a value may be quoted
with single quotes, and `\\,` keeps a literal comma.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class DialStringError(ValueError):
    """A dial string FreeSWITCH could not originate (unbalanced brackets, empty endpoint)."""


@dataclass(frozen=True)
class DialLeg:
    """One endpoint with its effective variables (global `{}` overridden by its own `[]`)."""

    endpoint: str
    variables: dict[str, str]

    @property
    def tech(self) -> str:
        return self.endpoint.split("/", 1)[0]

    @property
    def gateway(self) -> str | None:
        parts = self.endpoint.split("/")
        return parts[2] if len(parts) >= 4 and parts[0] == "sofia" and parts[1] == "gateway" else None

    @property
    def destination(self) -> str:
        """The number or extension dialled: `sofia/gateway/gw/+331...` -> `+331...`, `loopback/ext/ctx` -> `ext`."""
        parts = self.endpoint.split("/")
        if parts[0] == "sofia" and len(parts) >= 4 and parts[1] == "gateway":
            target = "/".join(parts[3:])
        elif parts[0] in ("loopback", "error") and len(parts) >= 2:
            target = parts[1]
        else:
            target = parts[-1]
        return target.split("@", 1)[0].split(";", 1)[0]

    @property
    def sip_headers(self) -> dict[str, str]:
        """`sip_h_X-Foo=bar` variables: the X- headers FreeSWITCH would put on the INVITE."""
        return {name[len("sip_h_"):]: value for name, value in self.variables.items() if name.startswith("sip_h_")}


@dataclass(frozen=True)
class DialString:
    raw: str
    global_variables: dict[str, str]
    groups: list[list[DialLeg]] = field(default_factory=list)

    @property
    def legs(self) -> list[DialLeg]:
        return [leg for group in self.groups for leg in group]


def parse_variables(text: str) -> dict[str, str]:
    """`a=1,b='x,y',c=p\\,q` -> {"a": "1", "b": "x,y", "c": "p,q"}."""
    out: dict[str, str] = {}
    for item in _split(text, ","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise DialStringError(f"variable {item!r} has no '=' in {text!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[name.strip()] = value.replace("\\,", ",")
    return out


def parse_dial_string(raw: str) -> DialString:
    """Split a bridge argument into global variables and groups of legs."""
    text = raw.strip()
    global_vars: dict[str, str] = {}
    while text.startswith(("{", "<")):
        close = "}" if text[0] == "{" else ">"
        end = _closing(text, 0, text[0], close)
        global_vars.update(parse_variables(text[1:end]))
        text = text[end + 1 :]
    groups: list[list[DialLeg]] = []
    for group_text in _split(text, "|"):
        legs = []
        for leg_text in _split(group_text, ","):
            leg_text = leg_text.strip()
            local: dict[str, str] = {}
            while leg_text.startswith("["):
                end = _closing(leg_text, 0, "[", "]")
                local.update(parse_variables(leg_text[1:end]))
                leg_text = leg_text[end + 1 :].strip()
            if not leg_text:
                raise DialStringError(f"empty endpoint in dial string {raw!r}")
            legs.append(DialLeg(leg_text, {**global_vars, **local}))
        groups.append(legs)
    if not groups:
        raise DialStringError(f"no endpoint in dial string {raw!r}")
    return DialString(raw, global_vars, groups)


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    depth = 0
    quoted = False
    for index in range(start, len(text)):
        char = text[index]
        if char == "'" and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == opening:
            depth += 1
        elif not quoted and char == closing:
            depth -= 1
            if depth == 0:
                return index
    raise DialStringError(f"unbalanced {opening}{closing} in {text!r}")


def _split(text: str, separator: str) -> list[str]:
    """Split at top-level separators, outside brackets and quotes, skipping `\\`-escaped ones."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for index, char in enumerate(text):
        escaped = index > 0 and text[index - 1] == "\\"
        if char == "'" and not escaped:
            quoted = not quoted
        elif not quoted and char in "{[<":
            depth += 1
        elif not quoted and char in "}]>":
            depth -= 1
        if char == separator and depth == 0 and not quoted and not escaped:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
