"""Which option of an IVR menu serves a goal ("suivre un colis", "talk to billing"): lexical overlap, cheap.

Both texts are folded (controller/text.py), cut into content words (no function words, no menu verbs), lightly
stemmed (plural and verb endings dropped, then the first 5 letters: "réclamation" and "réclamer" meet; words
every menu says, "client", "service", "call", are no terms) and mapped
through a small French/English synonym table ("facture" = "billing" = "invoice"), so wording may differ. An
option scores its shared terms, plus half its precision (shared / its own terms) so that "réclamation colis"
prefers "une réclamation sur un colis" to "le suivi de colis". No shared term, or two options tied at the top:
no choice (the keypad action refuses; pressing a guess in an IVR is worse than waiting for the menu again).
Pure functions, microseconds per menu: nothing to offload from the hub.
"""
from __future__ import annotations

from dataclasses import dataclass

from controller.brain.menu import MenuOption
from controller.text import fold_words

_STOP = frozenset("""
le la les l un une des de du d au aux a en et ou sur par pour avec sans dans ce cet cette ces se sa son ses
vous votre vos nous notre nos je j me mon ma mes tu te ton ta tes il elle on y si s est etes etre avez avoir
qui que quoi quel quelle dont ne pas plus tout toute tous toutes veuillez merci svp cas afin
tapez taper tape appuyez appuyer composez faites touche chiffre parler joindre contacter demande concernant
client clients clientele appel appelez appelle service services
the an of to for your you if are is be and or on in at with about by from please would like want need my me i
press dial key number option speak talk reach get some any regarding want wish this that it
customer customers client call calling service services
""".split())
_SUFFIXES = ("ations", "ation", "ements", "ement", "ments", "ment", "ings", "ing", "ions", "ion", "eurs", "eur",
             "ees", "ee", "es", "er", "ez", "ed", "re", "e", "s", "x")
_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("suivre", "suivi", "track", "tracking", "where"),
    ("reclamation", "reclamer", "plainte", "plaindre", "complaint", "complain", "litige", "dispute"),
    ("facture", "facturation", "billing", "bill", "invoice", "paiement", "payer", "payment", "pay"),
    ("conseiller", "agent", "operateur", "operator", "representative", "humain", "human", "person", "personne"),
    ("commande", "commander", "order", "achat", "acheter", "purchase", "buy", "vente", "sales", "sale"),
    ("colis", "parcel", "package", "paquet"),
    ("livraison", "livrer", "delivery", "deliver", "shipping", "expedition"),
    ("compte", "account", "espace", "profil", "profile"),
    ("resiliation", "resilier", "cancel", "cancellation", "annuler", "annulation", "terminate"),
    ("abonnement", "subscription", "forfait", "plan", "offre", "offer"),
    ("technique", "technical", "panne", "depannage", "assistance", "breakdown", "outage", "fault", "repair"),
    ("particulier", "individual", "private", "residential"),
    ("professionnel", "entreprise", "business", "company", "pro", "societe"),
    ("francais", "french"), ("anglais", "english"), ("espagnol", "spanish"),
    ("rendez", "appointment", "booking", "reservation", "reserver", "book"),
    ("horaire", "hours", "ouverture", "opening"),
    ("remboursement", "rembourser", "refund", "reimbursement"),
    ("retour", "retourner", "return", "returns"),
    ("adresse", "address", "demenagement", "moving", "move"),
    ("contrat", "contract"), ("sinistre", "accident", "claim", "declarer", "declaration"),
    ("mot", "password", "passe", "identifiant", "login"),
    ("internet", "web", "fibre", "box", "wifi", "broadband"),
    ("mobile", "portable", "cellphone", "smartphone", "phone"),
    ("electricite", "electricity", "power", "energie", "energy"), ("gaz", "gas"),
    ("carte", "card"), ("pret", "credit", "loan", "emprunt"), ("epargne", "savings", "saving"),
    ("voyage", "travel", "trip", "vol", "flight"), ("bagage", "baggage", "luggage", "valise"),
    ("sante", "health", "medical", "medecin", "doctor"), ("urgence", "emergency", "urgent"),
    ("informations", "information", "info", "renseignement", "renseigner"),
    ("reecouter", "repeat", "ecouter", "listen", "again", "repeter"),
    ("precedent", "previous", "back"),
)


def stem(word: str) -> str:
    """A light stem: up to two plural or verb endings dropped (keeping 3+ letters: "orders", "order" -> "ord"),
    then at most 5 letters."""
    for _ in range(2):
        suffix = next((x for x in _SUFFIXES if word.endswith(x) and len(word) - len(x) >= 3), None)
        if suffix is None:
            break
        word = word[: -len(suffix)]
    return word[:5]


_CANONICAL: dict[str, str] = {stem(w): group[0] for group in _SYNONYMS for w in group}


def terms(text: str) -> frozenset[str]:
    """The content terms of `text`, stemmed and mapped to their synonym group."""
    out = set()
    for word in fold_words(text).split():
        if word in _STOP or word.isdigit() or len(word) < 2:
            continue
        s = stem(word)
        out.add(_CANONICAL.get(s, s))
    return frozenset(out)


@dataclass(frozen=True)
class Choice:
    """The option chosen for a goal (None: none fits), with each option's score for the record."""

    option: MenuOption | None
    reason: str
    scores: dict[str, float]


def choose_option(options: list[MenuOption], goal: str) -> Choice:
    """The option whose label serves `goal` best; reason "no_option_matches" or "ambiguous" when none is chosen."""
    wanted = terms(goal)
    scored: list[tuple[float, MenuOption]] = []
    for option in options:
        own = terms(option.label)
        shared = len(own & wanted)
        scored.append((round(shared + (0.5 * shared / len(own) if own else 0.0), 4), option))
    scores = {o.keys: s for s, o in scored}
    ranked = sorted(scored, key=lambda pair: -pair[0])
    if not ranked or ranked[0][0] <= 0:
        return Choice(None, "no_option_matches", scores)
    if len(ranked) > 1 and ranked[1][0] == ranked[0][0]:
        return Choice(None, "ambiguous", scores)
    return Choice(ranked[0][1], "matched", scores)
