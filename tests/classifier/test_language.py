"""The language gate with the real lingua detector: scripts, Latin-script languages, Hinglish, short English chat,
text without letters, guild pins, and the share of the multilingual chat set it routes right."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from classifier.evaluation.data import load_tsv
from classifier.language import ENGLISH, MULTILINGUAL, LanguageGate, Route, parse_language_pin
from tests.support.helpers import CHAT_SETS, REPO_ROOT


@pytest.fixture(scope="module")
def gate() -> LanguageGate:
    return LanguageGate()


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Привет всем, когда начинается турнир?", "ru"),
        ("Дякую всім, це був чудовий вечір!", "uk"),
        ("هل يمكن لأحد أن يرسل رابط الدعوة مرة أخرى؟", "ar"),
        ("今日の配信は何時から始まりますか？", "ja"),
        ("今晚的比赛几点开始？", "zh"),
        ("오늘 밤 게임 몇 시에 시작해요?", "ko"),
        ("Ευχαριστώ πολύ για τη βοήθεια, ήταν υπέροχο!", "el"),
        ("आज का मैच कितने बजे शुरू होगा?", "hi"),
        ("Wann fängt das Turnier am Samstag an?", "de"),
        ("¿Alguien sabe dónde se cambia el apodo?", "es"),
        ("Ce serveur est nul, les modos sont des incapables.", "fr"),
        ("Alguém sabe a que horas começa o evento?", "pt"),
        ("Grazie mille a tutti, è stata una serata fantastica!", "it"),
        ("Bu sunucu gerçekten harika, herkese teşekkürler!", "tr"),
        ("Czy ktoś może wysłać link do streama jeszcze raz?", "pl"),
        ("Kan iemand de link naar de stream nog een keer sturen?", "nl"),
    ],
)
def test_clear_non_english_messages_go_multilingual(gate: LanguageGate, text: str, language: str) -> None:
    assert gate.route(text) == Route(MULTILINGUAL, language)


@pytest.mark.parametrize(
    "text",
    [
        "where can I report a bug in the bot?",
        "the new update deleted my loadout, this is awful",
        "thanks everyone, that stream was a whole mood",
    ],
)
def test_clear_english_messages_go_english(gate: LanguageGate, text: str) -> None:
    assert gate.route(text) == Route(ENGLISH, "en")


@pytest.mark.parametrize(
    "text",
    [
        "kya haal hai bhai, sab theek?",
        "yeh server bilkul bakwaas hai, mods bekaar hain",
        "thank you yaar, aaj ka stream ekdum mast tha!",
        "mujhe interest nhi",
    ],
)
def test_hinglish_goes_multilingual_as_hindi(gate: LanguageGate, text: str) -> None:
    """lingua reads romanised Hindi as English or Tagalog; the multilingual head is trained on it."""
    assert gate.route(text) == Route(MULTILINGUAL, "hi")


@pytest.mark.parametrize("text", ["lol gg", "brb", "ok", "gg ez", "ty", "np", "lets gooo", "nope, not yet"])
def test_short_english_chat_goes_english(gate: LanguageGate, text: str) -> None:
    assert gate.route(text) == Route(ENGLISH, None)


def test_short_text_with_accented_letters_is_still_detected(gate: LanguageGate) -> None:
    assert gate.route("Danke schön!") == Route(MULTILINGUAL, "de")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "👍", "😂😂😂 🔥", "https://example.com/some/long/path?query=1", "<@123456789> <:pog:98765>", "42!!"],
)
def test_text_without_letters_goes_english_with_no_language(gate: LanguageGate, text: str) -> None:
    assert gate.route(text) == Route(ENGLISH, None)


def test_links_and_mentions_do_not_count_as_letters(gate: LanguageGate) -> None:
    """A Russian message with a link is still Russian; an English one with a mention is still short English."""
    assert gate.route("смотрите https://example.com/watch?v=abcdefghijklmnop") == Route(MULTILINGUAL, "ru")
    assert gate.route("<@123456789012345678> @somebody_with_a_long_handle gg") == Route(ENGLISH, None)


def test_route_many_matches_route_in_order(gate: LanguageGate) -> None:
    texts = ["brb", "Wann fängt das Turnier an?", "", "今晚的比赛几点开始？", "where can I report a bug in the bot?"]
    assert gate.route_many(texts) == [gate.route(text) for text in texts]
    assert gate.route_many([]) == []


def test_routes_from_many_threads_agree(gate: LanguageGate) -> None:
    texts = ["Привет всем, как дела?", "where can I report a bug in the bot?", "Merci beaucoup pour votre aide !"] * 8
    with ThreadPoolExecutor(max_workers=4) as pool:
        routes = list(pool.map(gate.route, texts))
    assert routes == gate.route_many(texts)


@pytest.mark.parametrize("pin", [None, "auto", "AUTO", "", "  "])
def test_auto_pins_detect(gate: LanguageGate, pin: str | None) -> None:
    assert gate.route("Привет всем, как дела?", pin) == Route(MULTILINGUAL, "ru")
    assert gate.route("brb", pin) == Route(ENGLISH, None)


def test_path_pins_fix_the_path_without_detection(gate: LanguageGate) -> None:
    assert gate.route("Привет всем, как дела?", "english") == Route(ENGLISH, None)
    assert gate.route("where can I report a bug in the bot?", "multilingual") == Route(MULTILINGUAL, None)
    assert gate.route_many(["brb", "Привет"], " Multilingual ") == [Route(MULTILINGUAL, None)] * 2


def test_language_pins_pick_the_path_from_the_code(gate: LanguageGate) -> None:
    assert gate.route("where can I report a bug in the bot?", "de") == Route(MULTILINGUAL, "de")
    assert gate.route("Привет всем, как дела?", "en") == Route(ENGLISH, "en")
    assert gate.route("brb", "EN") == Route(ENGLISH, "en")
    assert gate.route("ok", "km") == Route(MULTILINGUAL, "km")  # any ISO 639-1 code, not only those lingua detects


def test_parse_language_pin_normalises() -> None:
    assert [parse_language_pin(v) for v in (None, "", "auto", " Auto ")] == [None] * 4
    assert parse_language_pin("ENGLISH") == ENGLISH
    assert parse_language_pin("multilingual") == MULTILINGUAL
    assert parse_language_pin(" De ") == "de"


@pytest.mark.parametrize("pin", ["klingon", "xx", "eng", "en-US", "german", "e", "english multilingual"])
def test_invalid_pins_say_what_is_allowed(gate: LanguageGate, pin: str) -> None:
    for call in (lambda: parse_language_pin(pin), lambda: gate.route("brb", pin)):
        with pytest.raises(ValueError) as raised:
            call()
        message = str(raised.value)
        assert repr(pin) in message
        assert all(word in message for word in ("'auto'", "'english'", "'multilingual'", "ISO 639-1"))


def test_non_string_pin_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_language_pin(7)  # type: ignore[arg-type]


def test_multilingual_chat_set_goes_multilingual(gate: LanguageGate) -> None:
    """Every line is non-English; its .languages sidecar names each line's language."""
    chat = load_tsv(CHAT_SETS / "multilingual_chat.tsv", three_way=True)
    languages = (CHAT_SETS / "multilingual_chat.languages").read_text(encoding="utf-8").split("\n")[:-1]
    routes = gate.route_many(chat.texts)
    wrong = [text for text, route in zip(chat.texts, routes, strict=True) if route.path != MULTILINGUAL]
    assert len(wrong) / len(routes) <= 0.1, wrong  # measured 0.036
    detected = [route.language == language for route, language in zip(routes, languages, strict=True)]
    assert sum(detected) / len(detected) >= 0.9  # measured 0.988


def test_english_chat_sets_go_english(gate: LanguageGate) -> None:
    """Short, slangy English chat is what the short-text rule and the low confidence bar are for."""
    texts = [
        text
        for name in ("neutral", "negative", "positive_slang", "benign_negative", "harmful")
        for text in load_tsv(CHAT_SETS / f"{name}_chat.tsv", three_way=name != "harmful").texts
    ]
    wrong = [text for text, route in zip(texts, gate.route_many(texts), strict=True) if route.path != ENGLISH]
    assert len(wrong) / len(texts) <= 0.03, wrong  # measured 0.004


def test_importing_the_module_does_not_import_lingua() -> None:
    code = "import sys, classifier.language; assert 'lingua' not in sys.modules, 'lingua imported eagerly'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
