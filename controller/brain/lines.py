"""The few sentences a brain says on its own, in the agent's language (fr or en; anything else gets English)."""
from __future__ import annotations

LINES: dict[str, dict[str, str]] = {
    "en": {
        "fallback": "Sorry, I can't help with that. Could you say it another way?",
        "no_input": "Are you still there?",
        "no_match": "Sorry, I didn't catch that. Could you repeat?",
    },
    "fr": {
        "fallback": "Désolé, je ne peux pas vous aider sur ce point. Pouvez-vous le dire autrement ?",
        "no_input": "Êtes-vous toujours là ?",
        "no_match": "Pardon, je n'ai pas compris. Pouvez-vous répéter ?",
    },
}


def line(language: str, key: str) -> str:
    """`line("fr-FR", "no_input")` -> the French reprompt; the language's base tag picks the set."""
    base = (language or "en").split("-")[0].split("_")[0].lower()
    return LINES.get(base, LINES["en"])[key]
