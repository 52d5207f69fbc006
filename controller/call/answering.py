"""Who answered: a person, an answering machine or an IVR, from the first words heard, their timing and the beep.

Pure: the detector is fed instants in call seconds since the answer and never reads a clock, so the same inputs
always give the same verdict (tests and bench/machine.py feed it directly). The rules, first match wins:
  beep                       avmd heard a voicemail's beep: machine
  IVR phrase                 "tapez 1", "press 2", "pour ... appuyez", "votre appel est important": ivr
  machine phrase             "laissez un message", "après le bip", "leave a message", "not available": machine
  length                     3.5 s of speech without a pause, or 14 words or more: machine (a person says
                             "Allô ?" or "Oui bonjour, c'est Marie" and waits)
  short greeting, then quiet a pause after the words (0.8 s after a bare hello, 1.2 s otherwise): human
  nothing decisive by max_detect_s: unknown (the call goes on as with a person)
Phrases are compared folded (controller/text.py), so accents, case and punctuation do not matter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from controller.text import fold_words

ANSWERERS = ("human", "machine", "ivr", "unknown")

MACHINE_PHRASES = tuple(fold_words(p) for p in (
    # French
    "laissez un message", "laissez moi un message", "laissez-nous un message", "laisser un message",
    "après le bip", "apres le signal", "au bip", "bip sonore", "signal sonore", "messagerie", "répondeur",
    "boîte vocale", "n'est pas disponible", "ne suis pas disponible", "ne sommes pas disponibles",
    "pas joignable", "injoignable", "indisponible", "absent pour le moment", "absents pour le moment",
    "je suis absent", "nous sommes absents", "vous êtes bien chez", "vous êtes bien sur", "je vous rappellerai",
    "je vous rappelle dès", "nous vous rappellerons", "rappelez plus tard", "rappelle moi", "rappelle-moi",
    "laisse un message", "laisse moi un message", "je te rappelle", "rappeler plus tard", "vous êtes bien au",
    "le numéro que vous avez demandé", "votre correspondant", "vos coordonnées", "ne peux pas répondre",
    "ne pouvons pas répondre", "ne peut pas prendre votre appel",
    # English
    "leave a message", "leave me a message", "leave your message", "leave your name", "after the tone",
    "after the beep", "at the tone", "at the beep", "voicemail", "voice mail", "not available",
    "unavailable", "can't take your call", "cannot take your call", "can't come to the phone",
    "cannot come to the phone", "can't answer", "not here right now", "away from the phone", "you have reached",
    "you've reached", "get back to you", "call you back", "call back later", "please record", "record your message",
    "the number you have dialed", "the person you are calling", "mailbox",
))
IVR_KEYS = re.compile(r"\b(tapez|appuyez|composez|press|dial|enter)\b( (sur|la touche|the|key|touche))* "
                      r"(\d|etoile|diese|star|pound|hash|un|deux|trois|quatre|cinq|six|sept|huit|neuf|zero|"
                      r"one|two|three|four|five|seven|eight|nine)\b")
IVR_PHRASES = tuple(fold_words(p) for p in (
    "votre appel est important", "your call is important", "pour joindre", "pour être mis en relation",
    "for english", "pour le français", "to speak to", "to reach", "main menu", "menu principal",
    "veuillez patienter", "please hold", "please stay on the line", "restez en ligne",
))
IVR_WELCOME = re.compile(r"\b(bienvenue (chez|a|au|dans)|welcome to|thank you for calling|merci d avoir appele)\b.*"
                         r"\b(pour|for|if you|si vous)\b")
HELLO_WORDS = frozenset(fold_words(
    "allo allô oui ouais bonjour bonsoir salut hello hi hey yes yeah speaking j'écoute ecoute oui? hello? "
    "c'est moi it's me good morning afternoon evening moi").split())

LONG_SPEECH_S = 3.5
LONG_WORDS = 14
HELLO_PAUSE_S = 0.8
PAUSE_S = 1.2


@dataclass(frozen=True)
class Verdict:
    """Who answered, how it was decided (beep, phrase, length, short_greeting, pause, timeout), when (call
    seconds after the answer) and the words heard until then."""

    answered_by: str
    how: str
    at_s: float
    heard: str = ""

    @property
    def only_hello(self) -> bool:
        """The words were a bare hello ("Allô ?", "Oui bonjour"): nothing for the brain to answer."""
        return is_hello(self.heard)


NAME_INTRO = re.compile(r"\b(c est|this is|it s|ici|speaking|here)\b")


def is_hello(text: str) -> bool:
    """A bare hello, maybe with a name: "Allô ?", "Oui bonjour, c'est Marie", "Hello, Paul speaking"."""
    folded = fold_words(text)
    rest = [w for w in NAME_INTRO.sub(" ", folded).split() if w not in HELLO_WORDS]
    return len(folded.split()) <= 7 and (not rest or (len(rest) <= 2 and NAME_INTRO.search(folded) is not None))


def from_words(text: str) -> Optional[tuple[str, str]]:
    """("ivr"|"machine", "phrase") when the words say so, else None."""
    folded = fold_words(text)
    padded = f" {folded} "
    if IVR_KEYS.search(folded) or any(f" {p} " in padded for p in IVR_PHRASES) or IVR_WELCOME.search(folded):
        return "ivr", "phrase"
    if any(f" {p} " in padded for p in MACHINE_PHRASES):
        return "machine", "phrase"
    return None


class GreetingDetector:
    """The small state machine: feed it what is heard, ask it at `due()` whether the silence decided."""

    def __init__(self, max_detect_s: float) -> None:
        self.max_detect_s = max_detect_s
        self.texts: list[str] = []
        self.speaking_since: Optional[float] = None
        self.last_words_at: Optional[float] = None
        self.verdict: Optional[Verdict] = None

    @property
    def heard(self) -> str:
        return " ".join(self.texts)

    def _decide(self, answered_by: str, how: str, at_s: float) -> Verdict:
        self.verdict = self.verdict or Verdict(answered_by, how, round(at_s, 3), self.heard)
        return self.verdict

    def begin_speaking(self, at_s: float) -> None:
        if self.speaking_since is None:
            self.speaking_since = at_s

    def words(self, text: str, at_s: float) -> Optional[Verdict]:
        """A recognition result (`at_s`: when it arrived, the end of that speech)."""
        began = self.speaking_since if self.speaking_since is not None else at_s
        self.speaking_since, self.last_words_at = None, at_s
        if text.strip():
            self.texts.append(text.strip())
        if self.verdict:
            return self._revised(at_s)
        found = from_words(self.heard)
        if found:
            return self._decide(found[0], found[1], at_s)
        if at_s - began >= LONG_SPEECH_S or len(fold_words(self.heard).split()) >= LONG_WORDS:
            return self._decide("machine", "length", at_s)
        return None

    def _revised(self, at_s: float) -> Verdict:
        """A machine by length, decided while it still spoke, is an IVR if its whole words say so (menus are
        long too)."""
        verdict = self.verdict
        found = from_words(self.heard)
        if verdict is not None and verdict.how == "length" and found and found[0] == "ivr":
            self.verdict = Verdict("ivr", "phrase", round(at_s, 3), self.heard)
        return self.verdict

    def partial(self, text: str, at_s: float) -> Optional[Verdict]:
        """A partial result while the callee still speaks: a voicemail phrase decides at once (an IVR waits for
        its whole menu, which the brain gets as one turn)."""
        found = self.verdict is None and from_words(" ".join([*self.texts, text]))
        if found and found[0] == "machine":
            return self._decide("machine", "phrase", at_s)
        return self.verdict

    def beep(self, at_s: float) -> Verdict:
        return self._decide("machine", "beep", at_s)

    def due(self) -> float:
        """The next instant at which `tick` may decide on its own."""
        if self.speaking_since is not None:
            return min(self.speaking_since + LONG_SPEECH_S, self.max_detect_s)
        if self.last_words_at is not None:
            pause = HELLO_PAUSE_S if is_hello(self.heard) else PAUSE_S
            return min(self.last_words_at + pause, self.max_detect_s)
        return self.max_detect_s

    def tick(self, at_s: float) -> Optional[Verdict]:
        """Decide from time alone: a long stretch of speech, a pause after the words, or the end of the wait."""
        if self.verdict:
            return self.verdict
        if self.speaking_since is not None and at_s - self.speaking_since >= LONG_SPEECH_S:
            return self._decide("machine", "length", at_s)
        if at_s < self.due():
            return None
        if self.speaking_since is None and self.last_words_at is not None:
            return self._decide("human", "short_greeting" if is_hello(self.heard) else "pause", at_s)
        if at_s >= self.max_detect_s:
            return self._decide("unknown", "timeout", at_s)
        return None
