"""Language routing: which encoder reads a chat message.

all-mpnet-base-v2 has an English-only vocabulary, so text in another language reaches it as subword soup and its
mood is a guess; multilingual-e5-small reads it properly but is a little weaker on English. The gate sends a message
to the English encoder only when it looks English, and everything else to the multilingual one.

The rule, in order (letters are counted after URLs, mentions and custom emoji are dropped):

1. no letters at all (empty, emoji, a bare link): English path, language unknown;
2. mostly non-Latin letters: multilingual, with lingua's language (the script alone settles the path);
3. romanised Hindi ("Hinglish": a few of its common function words): multilingual, "hi". lingua has no model of
   Hindi in Latin letters and reads it as English, Tagalog or Indonesian, yet UMSAB's Hindi, on which the
   multilingual head is trained, is Hinglish;
4. fewer than ``min_latin_letters`` Latin letters and no accented letter: English path, language unknown. lingua
   cannot tell "brb" from Norwegian, and on a chat server short English messages are the common case;
5. otherwise lingua's confidence that the text is English decides: at least ``min_english_confidence`` goes English.
   The threshold is low on purpose: lingua spreads its confidence over close languages even for plain English chat.

lingua is imported lazily and its detector is built once per process; :meth:`LanguageGate.preload` loads every
model up front (slow and memory-hungry), which should happen off the event loop at startup, since otherwise the
first message of each script pays for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import ConfidenceValue, LanguageDetector

log = logging.getLogger(__name__)

ENGLISH = "english"
MULTILINGUAL = "multilingual"
AUTO = "auto"
PATHS = (ENGLISH, MULTILINGUAL)

# What servers speak (lingua Language names). Fewer languages load faster and use less memory; each one also gives
# lingua an alternative to English, which keeps a foreign message from defaulting to it.
DETECTED_LANGUAGES = (
    "ENGLISH", "SPANISH", "PORTUGUESE", "FRENCH", "GERMAN", "ITALIAN", "DUTCH", "TURKISH", "POLISH", "RUSSIAN",
    "UKRAINIAN", "ARABIC", "HINDI", "INDONESIAN", "VIETNAMESE", "JAPANESE", "CHINESE", "KOREAN", "SWEDISH", "DANISH",
    "BOKMAL", "FINNISH", "GREEK", "CZECH", "ROMANIAN", "HUNGARIAN", "TAGALOG", "PERSIAN", "URDU", "BENGALI", "THAI",
    "HEBREW",
)  # fmt: skip

LINGUA_CHUNK = 16  # texts per lingua call: lingua holds the GIL for a whole call

MIN_LATIN_LETTERS = 15
MIN_ENGLISH_CONFIDENCE = 0.1
# Frequent Hindi/Urdu function words and chat words as written in Latin letters, none of them an English word
# ("to", "me", "main" are left out on purpose) nor a frequent word of another language lingua detects ("se").
HINGLISH_WORDS = frozenset(
    """
    hai hain hoon hun nahi nahin nhi kya kyu kyun kyon mein mai hoga hogi tha thi raha rahi rahe rha rhe kar karo
    karna karke kuch bahut bohot bhai yaar yar aap apka apki apke tum tumhara tera teri mera meri mujhe hum humko
    yeh woh aur bhi toh ko ki ka ke ho hu ji abhi kaise kaisa accha acha achha sab sabko iska uska jab phir agar
    lekin matlab pyaar pyar dekho chal bas wala wali wale gaya gayi diya kiya liya kal aaj
    """.split()
)
HINGLISH_MIN_WORDS = 2  # distinct marker words
HINGLISH_MIN_SHARE = 0.1  # of all words

# ISO 639-1 (the language a guild may pin; any of them, not only those lingua detects: e5 reads about a hundred).
ISO_639_1 = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en
    eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja
    jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb
    nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq
    sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """.split()
)

# Not language: links, Discord mentions / channels / roles / custom emoji / timestamps / commands, @handles.
_NOISE = re.compile(r"https?://\S+|www\.\S+|<a?:\w+:\d+>|<(?:@[!&]?|#)\d+>|<t:-?\d+(?::\w)?>|</[\w -]+:\d+>|@\w+")
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Route:
    """Which encoder reads a message (``path``: :data:`ENGLISH` or :data:`MULTILINGUAL`) and the language seen
    (ISO 639-1 code, or None when unknown, too short to tell, or not asked because a guild pinned the path).
    The language is lingua's best guess and can differ from the path: a mixed message may go English as "es"."""

    path: str
    language: str | None


def parse_language_pin(value: str | None) -> str | None:
    """A guild's language setting, normalised: None (detect; also for "auto" and ""), "english", "multilingual",
    or a lower-case ISO 639-1 code. Anything else is a :class:`ValueError` that says what is allowed."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"language pin must be a string, got {type(value).__name__}")
    pin = value.strip().lower()
    if pin in ("", AUTO):
        return None
    if pin in PATHS or pin in ISO_639_1:
        return pin
    raise ValueError(
        f"unknown language pin {value!r}: expected 'auto' (detect per message), 'english' (always the English "
        "encoder), 'multilingual' (always the multilingual encoder) or a two-letter ISO 639-1 language code "
        "such as 'en', 'de', 'ru' or 'ja'"
    )


@lru_cache(maxsize=64)
def _pinned_route(pin: str) -> Route:
    """The route a parsed, non-auto pin fixes: a path pin skips detection, a language pin picks its path."""
    if pin in PATHS:
        return Route(pin, None)
    return Route(ENGLISH if pin == "en" else MULTILINGUAL, pin)


@lru_cache(maxsize=4096)
def _is_latin(char: str) -> bool:
    return "LATIN" in unicodedata.name(char, "")


@dataclass(frozen=True)
class _Letters:
    """What the script decision needs: the text lingua should read and its letter counts."""

    clean: str
    letters: int
    latin: int
    accented: bool  # a Latin letter outside ASCII: rare in English chat, telling even in short text


def _letters(text: str) -> _Letters:
    clean = _NOISE.sub(" ", text)
    letters = latin = 0
    accented = False
    for char in clean:
        if char.isalpha():
            letters += 1
            if char.isascii():
                latin += 1
            elif _is_latin(char):
                latin += 1
                accented = True
    return _Letters(clean, letters, latin, accented)


def _is_hinglish(text: str) -> bool:
    words = [word.lower() for word in _WORD.findall(text)]
    markers = len(HINGLISH_WORDS.intersection(words))
    return markers >= HINGLISH_MIN_WORDS and markers >= HINGLISH_MIN_SHARE * len(words)


_detector_lock = threading.Lock()
_detector: LanguageDetector | None = None


def _get_detector(preload: bool = False) -> LanguageDetector:
    """The process's one lingua detector, built once under a lock (its models hold most of the memory)."""
    global _detector
    if _detector is not None:
        return _detector
    with _detector_lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            started = time.perf_counter()
            builder = LanguageDetectorBuilder.from_languages(*(getattr(Language, name) for name in DETECTED_LANGUAGES))
            if preload:
                builder = builder.with_preloaded_language_models()
            else:
                log.info(
                    "language models load on first use of each script: call LanguageGate.preload() at startup, "
                    "off the event loop, to keep that pause out of message handling"
                )
            _detector = builder.build()
            log.info(
                "language detector ready in %.1f s (%d languages, models %s)",
                time.perf_counter() - started,
                len(DETECTED_LANGUAGES),
                "preloaded" if preload else "loaded on demand",
            )
        return _detector


class LanguageGate:
    """Decides per message whether the English or the multilingual encoder reads it (see the module docstring).

    Thread-safe; the lingua detector behind it is shared by every gate in the process.
    """

    def __init__(
        self, min_latin_letters: int = MIN_LATIN_LETTERS, min_english_confidence: float = MIN_ENGLISH_CONFIDENCE
    ) -> None:
        self.min_latin_letters = min_latin_letters
        self.min_english_confidence = min_english_confidence

    @staticmethod
    def preload() -> None:
        """Load every language model now (blocking and slow; lingua releases the GIL meanwhile): run it in a worker
        thread at startup, e.g. ``await asyncio.to_thread(gate.preload)``. Does nothing once the detector exists."""
        _get_detector(preload=True)

    def route(self, text: str, pin: str | None = None) -> Route:
        """The route for one message; ``pin`` is the guild's language setting (see :func:`parse_language_pin`)."""
        return self.route_many([text], pin)[0]

    def route_many(self, texts: Sequence[str], pin: str | None = None) -> list[Route]:
        """Routes for a batch of messages, in order. lingua reads the texts that need it in chunks: a chunk is
        spread over lingua's threads (faster where cores are free), and the GIL, which lingua holds while it
        detects, is let go between chunks, so a large batch in a worker thread does not stall the event loop."""
        parsed = parse_language_pin(pin)
        if parsed is not None:
            return [_pinned_route(parsed)] * len(texts)
        routes: list[Route | None] = []
        pending: list[tuple[int, _Letters]] = []
        for index, text in enumerate(texts):
            letters = _letters(text)
            route = self._route_without_lingua(letters)
            routes.append(route)
            if route is None:
                pending.append((index, letters))
        if pending:
            detector = _get_detector()
            for start in range(0, len(pending), LINGUA_CHUNK):
                chunk = pending[start : start + LINGUA_CHUNK]
                values = detector.compute_language_confidence_values_in_parallel([item.clean for _, item in chunk])
                for (index, letters), confidences in zip(chunk, values, strict=True):
                    routes[index] = self._route_with_lingua(letters, confidences)
        return routes  # type: ignore[return-value]  # every None was filled above

    def _route_without_lingua(self, letters: _Letters) -> Route | None:
        """The route the letters alone settle, or None when lingua has to read the text."""
        if letters.letters == 0:
            return Route(ENGLISH, None)
        if letters.latin * 2 < letters.letters:
            return None  # non-Latin script: multilingual for sure, lingua only names the language
        if _is_hinglish(letters.clean):
            return Route(MULTILINGUAL, "hi")
        if letters.latin < self.min_latin_letters and not letters.accented:
            return Route(ENGLISH, None)
        return None

    def _route_with_lingua(self, letters: _Letters, confidences: list[ConfidenceValue]) -> Route:
        best = confidences[0] if confidences else None  # lingua sorts them, most likely first
        language = best.language.iso_code_639_1.name.lower() if best is not None and best.value > 0 else None
        if letters.latin * 2 < letters.letters:
            return Route(MULTILINGUAL, language)
        english = next((value.value for value in confidences if value.language.name == "ENGLISH"), 0.0)
        return Route(ENGLISH if english >= self.min_english_confidence else MULTILINGUAL, language)
