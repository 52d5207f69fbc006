"""Every sentence Switchboard says on its own, in one table, chosen by one language rule.

The rule: the base tag of the agent's language (`fr-FR`, `fr_CA`, `FR` -> `fr`) picks the set; a language
without a set gets English. Operators override most of these in the configuration (a transfer's `messages`, a
hang-up's `message`, RAG's `message_before` / `message_no_answer`); these are what is said when they did not.
"""
from __future__ import annotations

from typing import Sequence

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "fallback": "Sorry, I can't help with that. Could you say it another way?",
        "no_input": "Are you still there?",
        "no_match": "Sorry, I didn't catch that. Could you repeat?",
        "max_duration": "We have reached the maximum length for this call. Thank you for calling, goodbye.",
        "loop_goodbye": "I am unable to help you right now. Thank you for calling, goodbye.",
        "max_hold": "We have been waiting on hold too long, so I am ending this call. Goodbye.",
        "still_here": "I am still on the line.",
        "not_yet": "Is there anything else I can do for you?",
        "goodbye": "Thank you for calling, goodbye.",
        "rag_before": "One moment, I am looking that up.",
        "rag_no_answer": "I could not find that in my documents.",
        "transfer_transferring": "Please hold, I am transferring your call.",
        "transfer_no_answer": "Nobody is answering right now. I am back with you.",
        "transfer_busy": "The line is busy right now. I am back with you.",
        "transfer_failed": "The transfer did not go through. I am back with you.",
        "transfer_closed": "This service is closed at the moment.",
        "transfer_which": "Which service would you like to be transferred to?",
        "transfer_which_among": "Which one: {}?",
        "or": " or ",
    },
    "fr": {
        "fallback": "Désolé, je ne peux pas vous aider sur ce point. Pouvez-vous le dire autrement ?",
        "no_input": "Êtes-vous toujours là ?",
        "no_match": "Pardon, je n'ai pas compris. Pouvez-vous répéter ?",
        "max_duration": "Nous avons atteint la durée maximale de l'appel. Merci de votre appel, au revoir.",
        "loop_goodbye": "Je ne parviens pas à vous aider pour le moment. Merci de votre appel, au revoir.",
        "max_hold": "L'attente est trop longue, je mets fin à l'appel. Au revoir.",
        "still_here": "Je suis toujours en ligne.",
        "not_yet": "Y a-t-il autre chose que je puisse faire pour vous ?",
        "goodbye": "Merci de votre appel, au revoir.",
        "rag_before": "Un instant, je regarde.",
        "rag_no_answer": "Je ne trouve pas cette information.",
        "transfer_transferring": "Je vous transfère, ne quittez pas.",
        "transfer_no_answer": "Personne ne répond pour le moment. Je reste avec vous.",
        "transfer_busy": "La ligne est occupée pour le moment. Je reste avec vous.",
        "transfer_failed": "Le transfert n'a pas abouti. Je reste avec vous.",
        "transfer_closed": "Ce service est fermé pour le moment.",
        "transfer_which": "Vers quel service souhaitez-vous être transféré ?",
        "transfer_which_among": "Vers quel service : {} ?",
        "or": " ou ",
    },
}


def base_language(language: str) -> str:
    """`fr-FR` -> `fr`: the key of the phrase set (English when there is none)."""
    base = (language or "en").replace("_", "-").split("-")[0].lower()
    return base if base in PHRASES else "en"


def phrase(language: str, key: str) -> str:
    """`phrase("fr-FR", "no_input")` -> "Êtes-vous toujours là ?"."""
    return PHRASES[base_language(language)][key]


def which_one(language: str, names: Sequence[str]) -> str:
    """The question when no single destination was named: `Vers quel service : A, B ou C ?` for 2..4 names."""
    if not 1 < len(names) <= 4:
        return phrase(language, "transfer_which")
    listed = ", ".join(names[:-1]) + phrase(language, "or") + names[-1]
    return phrase(language, "transfer_which_among").format(listed)
