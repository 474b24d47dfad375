"""Turning raw message text into the exact string the model sees (and the cache keys)."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    text = replace_surrogates(text)
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text[: max_chars * 2]))
    text = " ".join(text.split())[:max_chars].strip()
    if not text:
        raise EmptyTextError()
    return text


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (e.g. from undecodable argv bytes) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
