"""Dashboard test helpers: log a browser in through the fake Discord's OAuth, post forms as the page would, keep
screenshots, and seed flags straight into the bot's database."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import APIResponse, Page

from bot.store import Flag, Store
from classifier.flag_policy import Reason
from tests.support.helpers import REPO_ROOT

#: ``MOODBOT_DOCS_SCREENSHOTS=1``: also copy each page's screenshot into docs/dashboard/ (for the README).
DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "dashboard"


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    """A full-page PNG of ``page`` under ``folder`` (the test's tmp folder)."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MOODBOT_DOCS_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path


async def csrf_token(page: Page) -> str:
    """The CSRF token of the page the browser shows (every page with a form carries it)."""
    return await page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


async def post_form(page: Page, base: str, path: str, form: dict[str, Any], **headers: str) -> APIResponse:
    """POST ``form`` with the browser's cookies, as a same-origin form would (``Origin`` overridable)."""
    return await page.request.post(
        base + path, form=form, headers={"Origin": base, **headers}, max_redirects=0
    )


def add_flags(
    database: Path, guild_id: int, channel_id: int, author_id: int, excerpts: list[str],
    message_ids: list[int] | None = None, reasons: Sequence[Reason] = (),
) -> list[Flag]:
    """Open flags straight into the bot's database (before the bot starts), on made-up message ids unless given,
    each with ``reasons`` (none: sentiment's negative at 0.9)."""
    flags = []
    with Store.open_sync(database) as store:
        first_message_id = 10_000 + store.last_flag_id()
        ids = message_ids or [first_message_id + index for index in range(len(excerpts))]
        for text, message_id in zip(excerpts, ids, strict=True):
            flag = store.add_flag(
                guild_id=guild_id, channel_id=channel_id, message_id=message_id,
                author_id=author_id, p_negative=0.9, text=text, vector=np.zeros(8, np.float32), namespace="test",
                reasons=reasons,
            )
            assert flag is not None
            flags.append(flag)
    return flags


def flash_text(html: str) -> list[str]:
    return re.findall(r'<p class="flash">(.*?)</p>', html)
