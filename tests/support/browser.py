"""A real headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright on its own thread and event loop.

The bot and the fake Discord run on the test's event loop; the browser gets a loop of its own, so one browser can
serve a whole module while each test keeps its function-scoped loop. A test hands the browser a coroutine function
``steps(page)`` with :meth:`Chromium.run`, awaited from the test's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, Page, Playwright, async_playwright

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
#: What works on this machine: no sandbox (root in a container), no GPU, nothing phoning home.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


class Chromium:
    """One browser process; each :meth:`run` gets a fresh context (cookies) and page."""

    def __init__(self) -> None:
        if not CHROMIUM.is_file():
            raise RuntimeError(
                f"{CHROMIUM} is missing: run tests/support/system_packages.sh chromium (make test does)"
            )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chromium", daemon=True)
        self._thread.start()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._call(self._launch()).result()

    def _call(self, coroutine: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    async def _launch(self) -> None:
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)

    async def _steps(self, steps: Callable[[Page], Awaitable[T]], options: dict[str, Any]) -> T:
        assert self._browser is not None
        context = await self._browser.new_context(viewport=VIEWPORT, **options)  # type: ignore[arg-type]
        try:
            return await steps(await context.new_page())
        finally:
            await context.close()

    async def run(self, steps: Callable[[Page], Awaitable[T]], **context_options: Any) -> T:
        """Run ``steps(page)`` in a new browser context (a new cookie jar: a new visitor)."""
        return await asyncio.wrap_future(self._call(self._steps(steps, context_options)))

    def close(self) -> None:
        async def shutdown() -> None:
            if self._browser is not None:
                await self._browser.close()
            if self._playwright is not None:
                await self._playwright.stop()

        try:
            self._call(shutdown()).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
