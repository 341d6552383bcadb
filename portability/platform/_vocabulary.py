"""The seeder's vocabulary: names, words, tags and phrases, and the texts composed from them.

Everything here is data or a pure function of a ``Dice``: the generator decides which record
gets what, this module only says what a bio, a caption, a message or an activity detail looks
like. Lists are tuples picked uniformly; ``_weighted`` repeats items so a uniform pick is a
weighted one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from portability.platform._dice import Dice
from portability.platform.shapes import Data

__all__ = [
    "ACTIVITY",
    "FIRST_NAMES",
    "LANGUAGES",
    "LAST_NAMES",
    "PRIVACY",
    "VIDEO_SIZES",
    "activity_detail",
    "ascii_fold",
    "bio",
    "caption",
    "message",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _weighted(weights: Mapping[str, int]) -> tuple[str, ...]:
    """A tuple in which each item appears ``weight`` times: a uniform pick is a weighted one."""
    return tuple(item for item, weight in weights.items() for _ in range(weight))


FIRST_NAMES = _words(
    "Anna Lukas Sofia Mateo Emma Noah Julia Elias Lea Jonas Marie Luca Chiara Leon Sara Hugo "
    "Camille Louis Inès Jakub Zuzana Ana João Matteo Giulia Ingrid Lars Aoife Seán Eleni "
    "Giorgos Zsófia Bence Ioana Andrei Kristýna Mikael Aino Jānis Rūta Maja Filip Nora Oskar "
    "Léa Chloé Björn Élodie Paweł Agnieszka Dimitra Nikos Laura Marco Pablo Lucía Olivia Liam"
)
LAST_NAMES = _words(
    "Müller Schmidt Rossi Russo García Martínez Dubois Laurent Kowalski Nowak Jansen de-Vries "
    "Peeters Silva Santos Novák Horváth Nagy Popescu Ionescu Andersson Johansson Nielsen "
    "Virtanen Murphy Kelly Papadopoulos Georgiou Kovačić Bērziņš Kazlauskas Tamm Borg Weber "
    "Fischer Moreau Bianchi Romano López Wagner Becker Hansen Berg Lindqvist O'Brien"
)
LANGUAGES = {
    "DE": "de", "AT": "de", "LI": "de", "CH": "de", "FR": "fr", "BE": "fr", "LU": "fr",
    "IT": "it", "ES": "es", "PT": "pt", "BR": "pt", "PL": "pl", "NL": "nl", "RO": "ro",
    "SE": "sv", "CZ": "cs", "GR": "el", "CY": "el", "HU": "hu", "DK": "da", "FI": "fi",
    "IE": "en", "NO": "nb", "SK": "sk", "BG": "bg", "HR": "hr", "LT": "lt", "SI": "sl",
    "LV": "lv", "EE": "et", "MT": "mt", "IS": "is", "TR": "tr",
}  # fmt: skip
_WORDS = _words(
    "today finally tried the new recipe with my best friend sunset over the city weekend vibes "
    "trying this trend again can't believe how fast this year went morning run by the river "
    "guess what happened next tutorial part two behind the scenes of our little studio "
    "first time skiing in the mountains rainy day playlist coffee and code my cat judging me "
    "road trip across the coast tiny apartment tour learning to dance street food market"
)
_TAGS = _words(
    "fyp foryou travel food recipe dance comedy music art diy fitness running skiing cats "
    "dogs coffee coding study booktok fashion style sunset nature football gaming tutorial "
    "berlin paris roma madrid warszawa amsterdam lisboa wien summer winter vlog"
)
_EMOJI = ("😂", "🔥", "✨", "❤️", "🙌", "😍", "🎶", "🌍", "☕", "🐱")
_BIOS = (
    "{w} and {w}. Based in {c}.",
    "Just here for the {t} videos",
    "{t} | {t} | {t}",
    "Making {t} content since 2019 {e}",
    "",
    "DM for collabs. {e}",
    "Student, {t} lover, occasional {t}.",
)
_CITIES = ("Berlin", "Paris", "Roma", "Madrid", "Warszawa", "Amsterdam", "Lisboa", "Wien", "Oslo")
_PHRASES = (
    "haha yes", "did you see this?", "omg 😂", "on my way", "can't tonight, tomorrow?",
    "that video was so good", "sending you the link", "ok", "👍", "where are you?",
    "happy birthday!! 🎉", "let me know when you're free", "lol", "I'll call you later",
    "this is literally us", "no way", "see you at 8", "thanks!", "did you finish it?",
    "it's raining again here", "what's the name of that song?",
)  # fmt: skip
VIDEO_SIZES = ((1080, 1920), (720, 1280), (1080, 1080), (1920, 1080), (2160, 3840))
PRIVACY = _weighted({"public": 80, "friends": 15, "private": 5})
ACTIVITY = _weighted({"watch": 45, "like": 30, "search": 12, "login": 8, "follow": 5})
_SOURCES = ("for_you", "following", "search", "profile", "share")
_FOLLOW_SOURCES = ("suggested", "profile", "search", "contacts")
_LOGIN_METHODS = ("password", "passkey", "sso")
_DEVICES = ("iPhone 15", "Pixel 8", "Galaxy S23", "iPad Air", "web/Firefox", "web/Chrome")
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "ł": "l", "đ": "d", "æ": "ae", "'": ""})


def ascii_fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return folded.encode("ascii", "ignore").decode().replace("-", "_")


def bio(dice: Dice) -> str:
    template = dice.pick(_BIOS)
    while "{" in template:
        template = (
            template.replace("{w}", dice.pick(_WORDS), 1)
            .replace("{t}", dice.pick(_TAGS), 1)
            .replace("{c}", dice.pick(_CITIES), 1)
            .replace("{e}", dice.pick(_EMOJI), 1)
        )
    return template


def caption(dice: Dice) -> tuple[str, list[str]]:
    pick = dice.pick
    words = " ".join([pick(_WORDS) for _ in range(dice.between(3, 14))]).capitalize()
    tags = list(dict.fromkeys([pick(_TAGS) for _ in range(dice.below(6))]))
    if dice.chance(0.5):
        words += " " + pick(_EMOJI)
    if tags:
        words += " #" + " #".join(tags)
    return words, tags


def message(dice: Dice) -> str:
    if dice.chance(0.7):
        return dice.pick(_PHRASES)
    return " ".join([dice.pick(_WORDS) for _ in range(dice.between(2, 16))]).capitalize()


def activity_detail(dice: Dice, kind: str) -> Data:
    pick = dice.pick
    if kind == "watch":
        duration = dice.between(3_000, 180_000)
        watched = min(duration, int(duration * dice.uniform() * 1.3))
        return {"watched_ms": watched, "completed": watched == duration, "source": pick(_SOURCES)}
    if kind == "like":
        return {"source": pick(_SOURCES)}
    if kind == "follow":
        return {"source": pick(_FOLLOW_SOURCES)}
    if kind == "search":
        query = " ".join([pick(_TAGS) for _ in range(dice.between(1, 4))])
        return {"query": query, "results": dice.below(500)}
    return {
        "device": pick(_DEVICES),
        "ip": f"203.0.113.{dice.between(1, 255)}",
        "app_version": f"3{dice.below(10)}.{dice.below(20)}.{dice.below(5)}",
        "method": pick(_LOGIN_METHODS),
    }
