"""prepare_text: the exact string the model sees, for ordinary and hostile input."""

from __future__ import annotations

import pytest

from classifier.text import EmptyTextError, prepare_text


@pytest.mark.parametrize("text", ["", " ", "   \t  ", "\n\r\n", "\x00", "\x00\x01\x7f \x0b", "\u3000\u2003"])
def test_empty_and_whitespace_only_raise(text: str) -> None:
    with pytest.raises(EmptyTextError, match="empty text"):
        prepare_text(text)


def test_empty_text_error_is_a_value_error() -> None:
    assert issubclass(EmptyTextError, ValueError)


def test_whitespace_folds_and_control_bytes_become_spaces() -> None:
    assert prepare_text("  hello \t\n  world  ") == "hello world"
    assert prepare_text("nul\x00byte\x07bell\x1bescape") == "nul byte bell escape"


def test_lone_surrogates_become_replacement_characters() -> None:
    prepared = prepare_text("bad \udcff and \ud800 surrogates")
    assert prepared == "bad \ufffd and \ufffd surrogates"
    prepared.encode("utf-8")  # valid Unicode now


def test_nfc_normalisation() -> None:
    assert prepare_text("cafe\u0301") == "caf\u00e9"


def test_long_text_is_cut_not_rejected() -> None:
    text = "word " * 20_000  # 100,000 characters
    prepared = prepare_text(text)
    # cut at max_chars: 819 whole "word " (4,095 characters) and the "w" of the next word, nothing to strip
    assert len(prepared) == 4096 and prepared == ("word " * 820)[:4096]
    assert prepared.endswith(" word w")
    assert prepare_text("word " * 1000, max_chars=10) == "word word"  # a cut that ends on a space drops it
    assert len(prepare_text("x" * 100_000, max_chars=100)) == 100


@pytest.mark.parametrize(
    "text",
    [
        "zero\u200bwidth\u200djoiner\ufeff",
        "\u202eright-to-left override\u202c",
        "Z\u0351\u0307\u0313\u0308a\u0364\u0306\u0352l\u035b\u0315g\u0310\u0343o\u0363",
        "😀😀🔥💯",
        "```python\nprint('hi')\n```",
        "https://example.com/path?q=1&x=<script>",
        "@everyone <@123456789012345678> <@&987654321> free nitro",
    ],
)
def test_odd_input_is_kept_as_text(text: str) -> None:
    prepared = prepare_text(text)
    assert prepared and prepared == " ".join(prepared.split())
    prepared.encode("utf-8")
    assert prepare_text(prepared) == prepared  # idempotent: cache keys are stable


JUNK = {
    "see you tomorrow": ["  \t see you tomorrow \n ", "see\x00you\x00tomorrow", "see you tomorrow\x00",
                         b"see you tomorrow \xff\xfe".decode("utf-8", "replace"), "see you \udcff tomorrow"],
    "where is the link": ["\n\n   where   is the link   ", "\x00where is the link\x00\x00",
                          b"where is \xed\xa0\x80 the link".decode("utf-8", "replace"), "where\x0bis\x0cthe link"],
}


@pytest.mark.parametrize("clean", list(JUNK))
def test_junk_around_a_message_classifies_like_the_clean_message(shipped_classifier, clean: str) -> None:
    """White space around a few words, NUL bytes, invalid UTF-8 (as stdin decodes it) and lone surrogates (as
    argv decodes it) are cleaned away or ignored by the tokenizer: the same probabilities as the clean text."""
    [expected] = shipped_classifier.classify([prepare_text(clean)])
    for junk in JUNK[clean]:
        prepared = prepare_text(junk)
        assert prepared.replace("\ufffd", "").split() == clean.split(), junk
        [got] = shipped_classifier.classify([prepared])
        assert got.label == expected.label, junk
        assert [got.p_negative, got.p_neutral, got.p_positive] == pytest.approx(
            [expected.p_negative, expected.p_neutral, expected.p_positive], abs=1e-6
        ), junk
