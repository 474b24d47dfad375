"""CSRF defence for every state-changing request: a per-session token and an ``Origin`` (or ``Referer``) check.

A request from another site fails both: it cannot read the token out of a page, and its browser names its own
origin. SameSite=Lax cookies are a third layer, not relied on.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import Session, get_session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def csrf_token(session: Session) -> str:
    """The session's token, made on first use."""
    if TOKEN_KEY not in session:
        session[TOKEN_KEY] = secrets.token_urlsafe(32)
    return str(session[TOKEN_KEY])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def csrf_middleware(allowed_origin: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Refuse (403) an unsafe request whose origin is not ``allowed_origin`` or whose token is missing or wrong."""
    expected_origin = _origin(allowed_origin)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in SAFE_METHODS:
            return await handler(request)
        claimed = request.headers.get("Origin") or request.headers.get("Referer")
        if not claimed or _origin(claimed) != expected_origin:
            raise web.HTTPForbidden(text="Refused: this request did not come from the dashboard's own pages.")
        session = await get_session(request)
        form = await request.post()
        sent = request.headers.get(HEADER) or str(form.get(FORM_FIELD, ""))
        expected = session.get(TOKEN_KEY)
        if not expected or not sent or not secrets.compare_digest(sent, str(expected)):
            raise web.HTTPForbidden(text="Refused: the form's security token is missing or stale; reload the page.")
        return await handler(request)

    return middleware
