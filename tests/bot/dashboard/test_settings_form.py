"""The settings form's values are checked as the store checks them: every refused field is named with its reason,
and accepted values arrive in the store's own spelling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.dashboard.settings_form import FLAG_ON_CHOICES, FormValues, InvalidSettingsError, parse
from bot.store import GuildConfig

STORED = FormValues.of(GuildConfig(1))


def test_the_stored_settings_parse_back_to_themselves() -> None:
    wanted = parse(STORED)
    assert (wanted.flag_threshold, wanted.flag_on, wanted.language) == (0.9, {"harmful", "negative"}, None)
    assert STORED.flag_on in FLAG_ON_CHOICES and STORED.language == "auto"


@pytest.mark.parametrize(("language", "pin"), [("", None), ("auto", None), (" AUTO ", None), ("English", "english"),
                                              ("multilingual", "multilingual"), ("DE", "de"), ("ja", "ja")])
def test_language_pins_are_normalised(language: str, pin: str | None) -> None:
    assert parse(replace(STORED, language=language)).language == pin


@pytest.mark.parametrize("flag_on", FLAG_ON_CHOICES)
def test_every_flag_signal_choice_is_accepted(flag_on: str) -> None:
    assert ",".join(sorted(parse(replace(STORED, flag_on=flag_on)).flag_on)) == flag_on


def test_every_refused_field_is_named_with_its_reason() -> None:
    with pytest.raises(InvalidSettingsError) as refused:
        parse(replace(STORED, threshold="0.3", flag_on="spam", language="xx"))
    errors = refused.value.errors
    assert set(errors) == {"threshold", "flag_on", "language"}
    assert errors["threshold"] == "The flag threshold must be a number between 0.5 and 1.0, not '0.3'."
    assert "harmful, negative" in errors["flag_on"] and errors["language"].startswith("unknown language pin 'xx'")
    with pytest.raises(InvalidSettingsError, match="must be a number"):
        parse(replace(STORED, threshold="lots"))
