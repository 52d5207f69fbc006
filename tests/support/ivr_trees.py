"""Generated IVR trees for bench/ivr.py: 2-4 levels, French or English, the right key stated in each menu
(kept beside the other test peers, so that `make bench` runs only benchmarks).

Each tree is a scenario `ivr:` mapping (fssim/ivr_tree.py) plus its goal (the words given to the keypad action)
and the keys that reach it. Every option of a tree is a distinct topic; the options off the goal's path lead to
other goals (a wrong key takes the wrong branch) and some menus offer "star to hear it again" (a loop back).
The wording varies: label first or key first, keys as digits or words, several verbs, a greeting or a recap.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

# (French label, French goal words, English label, English goal words): goal words paraphrase the label
TOPICS = [
    ("le suivi de votre colis", "suivre mon colis", "tracking your parcel", "track my parcel"),
    ("une réclamation", "me plaindre", "a complaint", "complain"),
    ("la facturation", "une question sur ma facture", "billing", "a question about my bill"),
    ("les commandes", "passer une commande", "orders", "place an order"),
    ("la livraison", "un problème de livraison", "delivery", "a delivery problem"),
    ("votre compte client", "accéder à mon compte", "your customer account", "access my account"),
    ("la résiliation", "résilier", "cancellations", "cancel"),
    ("les abonnements", "changer d'abonnement", "subscriptions", "change my subscription"),
    ("l'assistance technique", "signaler une panne", "technical support", "report a technical fault"),
    ("les particuliers", "en tant que particulier", "private customers", "as a private customer"),
    ("les professionnels", "pour mon entreprise", "business customers", "for my business"),
    ("les remboursements", "être remboursé", "refunds", "get a refund"),
    ("les retours", "retourner un article", "returns", "return an item"),
    ("les rendez-vous", "prendre rendez-vous", "appointments", "book an appointment"),
    ("les horaires d'ouverture", "connaître les horaires", "opening hours", "know the opening hours"),
    ("internet et la fibre", "ma connexion internet", "internet and broadband", "my internet connection"),
    ("la téléphonie mobile", "mon téléphone portable", "mobile phones", "my mobile phone"),
    ("les cartes bancaires", "ma carte bancaire", "bank cards", "my bank card"),
    ("les crédits", "un prêt", "loans", "a loan"),
    ("l'épargne", "mon épargne", "savings", "my savings"),
    ("les sinistres", "déclarer un sinistre", "insurance claims", "file a claim"),
    ("les bagages", "une valise perdue", "baggage", "my lost luggage"),
    ("l'électricité", "l'électricité", "electricity", "electricity"),
    ("le gaz", "le gaz", "gas", "gas"),
    ("les urgences", "une urgence", "emergencies", "an emergency"),
    ("les informations générales", "des renseignements", "general information", "some information"),
]
COMPANIES = ["Colis Express", "Banque Horizon", "Télécom Plus", "Énergie Verte", "Air Atlantique", "Assur Plus"]
KEYS = "123456789"
WORDS = {"fr": {"1": "un", "2": "deux", "3": "trois", "4": "quatre", "5": "cinq", "6": "six", "7": "sept",
                "8": "huit", "9": "neuf", "*": "étoile", "#": "dièse", "0": "zéro"},
         "en": {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
                "8": "eight", "9": "nine", "*": "star", "#": "pound", "0": "zero"}}
LABEL_FIRST = {"fr": ["Pour {label}, tapez {key}.", "Pour {label}, appuyez sur la touche {key}.",
                      "Pour {label}, faites le {key}.", "Si vous appelez pour {label}, composez le {key}."],
               "en": ["For {label}, press {key}.", "To reach {label}, dial {key}.",
                      "If you are calling about {label}, press {key}.", "For {label}, please press {key}."]}
KEY_FIRST = {"fr": ["Tapez {key} pour {label}.", "Appuyez sur {key} pour {label}."],
             "en": ["Press {key} for {label}.", "Select {key} for {label}."]}
REPEAT = {"fr": "Pour réécouter ce message, tapez {key}.", "en": "To hear these options again, press {key}."}
GREETING = {"fr": "Bienvenue chez {company}.", "en": "Welcome to {company}."}
RECAP = {"fr": "Vous avez choisi {label}.", "en": "You chose {label}."}
JOIN = {"fr": ", puis ", "en": ", then "}


@dataclass
class Tree:
    name: str
    language: str
    ivr: dict[str, Any]
    goal: str  # the words the keypad action is given
    goal_name: str
    keys: list[str]  # the keys that reach the goal, one per level
    first_keys: list[str]  # the first key each menu on the path offers (the naive policy's choice)


def _say_key(rng: random.Random, language: str, key: str) -> str:
    return WORDS[language][key] if key in "*#0" or rng.random() < 0.3 else key


def _prompt(rng: random.Random, language: str, options: list[tuple[str, str]], preamble: str) -> str:
    templates = LABEL_FIRST[language] if rng.random() < 0.6 else KEY_FIRST[language]
    parts = [preamble] if preamble else []
    for label, key in options:
        parts.append(rng.choice(templates).format(label=label, key=_say_key(rng, language, key)))
    return " ".join(parts)


def make_tree(index: int, rng: random.Random) -> Tree:
    language = "fr" if index % 2 == 0 else "en"
    levels = rng.randint(2, 4)
    widths = [rng.randint(2, 4) for _ in range(levels)]
    topics = rng.sample(TOPICS, sum(widths))
    label_at, goal_at = (0, 1) if language == "fr" else (2, 3)
    menus: dict[str, Any] = {}
    keys, first_keys, goal_words = [], [], []
    used, previous = 0, ""
    for level, width in enumerate(widths):
        mine = topics[used:used + width]
        used += width
        menu_keys = sorted(rng.sample(KEYS, width)) if rng.random() < 0.5 else rng.sample(KEYS, width)
        right = rng.randrange(width)
        keys.append(menu_keys[right])
        goal_words.append(mine[right][goal_at])
        options: dict[str, Any] = {}
        stated = []
        for i, (topic, key) in enumerate(zip(mine, menu_keys)):
            label = topic[label_at]
            stated.append((label, key))
            if i == right and level + 1 < levels:
                options[key] = f"m{level + 1}"
            else:
                options[key] = {"goal": f"g{level}_{i}", "say": RECAP[language].format(label=label)}
        if rng.random() < 0.3:
            stated.append(("", "*"))
            options["*"] = f"m{level}"
        first_keys.append(stated[0][1])
        if level == 0:
            preamble = GREETING[language].format(company=rng.choice(COMPANIES))
        else:
            preamble = RECAP[language].format(label=previous) if rng.random() < 0.5 else ""
        previous = mine[right][label_at]
        text_options = [(label, key) for label, key in stated if label]
        prompt = _prompt(rng, language, text_options, preamble)
        if "*" in options:
            prompt += " " + REPEAT[language].format(key=WORDS[language]["*"])
        menus[f"m{level}"] = {"prompt": prompt, "options": options}
    goal_name = f"g{levels - 1}_{right}"
    ivr = {"start": "m0", "timeout_s": 6, "max_failures": 3, "menus": menus,
           "not_understood": "Je n'ai pas compris." if language == "fr" else "Sorry, I did not understand.",
           "goodbye": "Au revoir." if language == "fr" else "Goodbye."}
    return Tree(f"t{index:02d}", language, ivr, JOIN[language].join(goal_words), goal_name, keys, first_keys)

