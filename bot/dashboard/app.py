"""The dashboard's aiohttp application and the server that runs it (inside ``moodbot run`` or on its own)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import discord
import jinja2
from aiohttp import web
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.cogs.moderation.cards import describe_reasons
from bot.dashboard import auth, pages
from bot.dashboard.access import DiscordUnavailableError, NoAccessError
from bot.dashboard.csrf import csrf_middleware
from bot.dashboard.keys import CONFIG, STORES, DiscordLogin, Stores
from bot.dashboard.urls import DiscordUrls
from bot.settings import Settings
from bot.store import AsyncStore
from bot.store.dashboard import DashboardStore
from bot.store.history import HistoryStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "moodbot_session"
SESSION_MAX_AGE = 7 * 24 * 3600
#: Everything comes from this origin: no CDN, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as readable pages (escaped like every other page), with the security headers on every answer."""
    try:
        response = await handler(request)
    except NoAccessError as refused:
        response = await _error(request, 403, str(refused))
    except DiscordUnavailableError as unavailable:
        response = await _error(request, 502, str(unavailable))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = await _error(request, error.status, error.text or error.reason)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _error(request: web.Request, status: int, message: str) -> web.Response:
    return await pages.render(request, "error.html", {"status": status, "message": message}, status=status)


async def create_app(settings: Settings, store: AsyncStore, client: discord.Client) -> web.Application:
    """The dashboard over ``store``, asking Discord through ``client`` (the bot, or a REST-only login).

    The cookie key is ``MOODBOT_DASHBOARD_SESSION_KEY`` if set, else the one kept in the database: logins survive
    restarts, and dashboard processes over one database accept each other's cookies."""
    dashboard = settings.dashboard
    if not dashboard.client_secret:
        raise ValueError("the dashboard needs DISCORD_CLIENT_SECRET (the OAuth2 client secret of the application)")
    base_url = dashboard.base_url
    stores = Stores(store, HistoryStore(store), DashboardStore(store))
    key = dashboard.session_key or await stores.dashboard.session_key()
    app = web.Application(middlewares=[error_pages])
    storage = EncryptedCookieStorage(
        base64.urlsafe_b64decode(key), cookie_name=SESSION_COOKIE, httponly=True, samesite="Lax",
        secure=base_url.startswith("https://"), max_age=SESSION_MAX_AGE,
    )
    setup_sessions(app, storage)
    app.middlewares.append(csrf_middleware(base_url))
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
        filters={"reasons": describe_reasons},  # a flag's reasons as the mod-log card says them
    )
    app[CONFIG] = DiscordLogin(
        client, DiscordUrls(settings.discord_api_base), base_url, dashboard.client_secret, dashboard.client_id
    )
    app[STORES] = stores
    app.router.add_get("/login", auth.login)
    app.router.add_get("/oauth/callback", auth.callback)
    app.router.add_post("/logout", auth.logout)
    app.router.add_routes(pages.routes)
    app.router.add_static("/static", HERE / "static")
    return app


class DashboardServer:
    """Serves :func:`create_app` on ``MOODBOT_DASHBOARD_HOST:MOODBOT_DASHBOARD_PORT``."""

    def __init__(self, settings: Settings, store: AsyncStore, client: discord.Client) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        dashboard = self.settings.dashboard
        app = await create_app(self.settings, self.store, self.client)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, dashboard.host, dashboard.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("dashboard listening on http://%s:%d (public URL %s)", dashboard.host, self.port, dashboard.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
