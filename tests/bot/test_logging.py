"""The token never reaches the logs: SecretFilter on messages, arguments and tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logging_setup import REDACTED, SecretFilter, configure_logging
from tests.support.helpers import TOKEN


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(secrets) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    logger = logging.getLogger(f"test.secret.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_token_in_message_and_arguments_is_redacted() -> None:
    logger, stream = capture([TOKEN, None, ""])
    logger.info("connecting with %s", TOKEN)
    logger.warning(f"plain message {TOKEN} inside")
    logger.error("dict arg %(t)s", {"t": TOKEN})
    output = stream.getvalue()
    assert TOKEN not in output
    assert output.count(REDACTED) == 3
    assert "connecting with [REDACTED]" in output and "plain message [REDACTED] inside" in output


def test_token_in_a_traceback_is_redacted() -> None:
    logger, stream = capture([TOKEN])

    def login(token: str) -> None:
        raise RuntimeError(f"401 Unauthorized for token {token}")

    try:
        login(TOKEN)
    except RuntimeError:
        logger.exception("login failed")
    output = stream.getvalue()
    assert (
        "Traceback (most recent call last)" in output
        and "RuntimeError: 401 Unauthorized for token [REDACTED]" in output
    )
    assert TOKEN not in output


def test_chained_exception_with_token_in_cause() -> None:
    logger, stream = capture([TOKEN])
    try:
        try:
            raise ValueError(TOKEN)
        except ValueError as error:
            raise RuntimeError("wrapped") from error
    except RuntimeError as error:
        logger.error("failed", exc_info=error)
    assert TOKEN not in stream.getvalue() and "ValueError: [REDACTED]" in stream.getvalue()


def test_without_secrets_records_are_untouched() -> None:
    logger, stream = capture([None])
    logger.info("value %d and %s", 3, "x")
    assert stream.getvalue() == "INFO value 3 and x\n"


def test_configure_logging_scrubs_every_logger(restore_root_logging, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", secrets=[TOKEN])
    logging.getLogger("discord.http").info("headers: Authorization: Bot %s", TOKEN)
    logging.getLogger("moodbot").debug("token=%r", TOKEN)
    try:
        {}[TOKEN]
    except KeyError:
        logging.getLogger("bot.runner").exception("lookup failed")
    err = capsys.readouterr().err
    assert TOKEN not in err and err.count(REDACTED) == 3  # two messages and the KeyError line of the traceback
    assert "discord.http: headers: Authorization: Bot [REDACTED]" in err
    assert len(logging.getLogger().handlers) == 1 and logging.getLogger().level == logging.DEBUG
