"""Turning raw message text into the exact string the model sees (and the cache keys)."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class EmptyTextError(ValueError):
    """The text has nothing left to classify once cleaned."""

    def __init__(self) -> None:
        super().__init__("empty text")


def prepare_text(text: str, max_chars: int = 4096) -> str:
    """Clean ``text`` for the model: valid Unicode, no control bytes, folded white space, bounded length.

    Lone surrogates become U+FFFD, NUL and other control characters become spaces, runs of white
    space fold to one space, and the result is cut to ``max_chars`` (the tokenizer truncates
    further to the model's limit). Raises :class:`EmptyTextError` when nothing is left.
    """
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text[: max_chars * 2]))
    text = " ".join(text.split())[:max_chars].strip()
    if not text:
        raise EmptyTextError()
    return text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
