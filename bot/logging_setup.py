"""Logging configuration: one stderr handler, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "[REDACTED]"


class SecretFilter(logging.Filter):
    """Replaces each secret in a record's rendered message (and traceback text) with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def configure_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Send logs to stderr at ``level`` with ``secrets`` scrubbed; quiet noisy libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosqlite's debug lines show every statement's parameters: message excerpts, the dashboard's session key
    for noisy in ("matplotlib", "PIL", "urllib3", "filelock", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
