"""The email an `email` action sends when it names no template: what a person on the receiving end needs to act
on a call without opening anything else (why it was classified so, who called, how long, what was said, what the
agent did). Rendered like an operator's template: sandboxed, within the template budget, HTML autoescaped."""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

SUMMARY_TEXT = """\
Call {{ uuid }}: {{ classifications | join(", ") if classifications else "not classified" }}

{% if direction == "outbound" %}Called: {{ destination }} by agent {{ agent }}{% else %}Caller: \
{{ caller or "unknown" }}{% if caller_name %} ({{ caller_name }}){% endif %} for agent {{ agent }}{% endif %}
Started: {{ started_at }}
Duration: {{ "%.0f" | format(duration_s or 0) }} s
Ended by: {{ hangup_by or "caller" }} ({{ hangup_cause }})
{% if transferred %}Transferred: yes
{% endif %}
Transcript:
{% for turn in transcript %}  {{ turn.who }}: {{ turn.text }}
{% else %}  (nothing was said)
{% endfor %}
Actions:
{% for action in actions %}  {{ action.name }} ({{ action.type }}): {{ action.result }}
{% else %}  (none)
{% endfor %}"""

SUMMARY_HTML = """\
<h2>Call {{ classifications | join(", ") if classifications else "not classified" }}</h2>
<table>
{% if direction == "outbound" %}<tr><th align="left">Called</th><td>{{ destination }} by agent {{ agent }}</td></tr>
{% else %}<tr><th align="left">Caller</th><td>{{ caller or "unknown" }}{% if caller_name %} ({{ caller_name }})\
{% endif %} for agent {{ agent }}</td></tr>
{% endif %}<tr><th align="left">Started</th><td>{{ started_at }}</td></tr>
<tr><th align="left">Duration</th><td>{{ "%.0f" | format(duration_s or 0) }} s</td></tr>
<tr><th align="left">Ended by</th><td>{{ hangup_by or "caller" }} ({{ hangup_cause }})</td></tr>
{% if transferred %}<tr><th align="left">Transferred</th><td>yes</td></tr>{% endif %}
</table>
<h3>Transcript</h3>
<ul>{% for turn in transcript %}<li><b>{{ turn.who }}</b>: {{ turn.text }}</li>{% else %}<li>(nothing was said)</li>\
{% endfor %}</ul>
<h3>Actions</h3>
<ul>{% for action in actions %}<li>{{ action.name }} ({{ action.type }}): {{ action.result }}</li>\
{% else %}<li>(none)</li>{% endfor %}</ul>
<p style="color:#888">call {{ uuid }}</p>
"""

SUMMARY: Mapping[str, str] = MappingProxyType({"text": SUMMARY_TEXT, "html": SUMMARY_HTML})
