"""Discord's OAuth2 and API addresses, all derived from ``DISCORD_API_BASE`` (so a fake Discord serves them too)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class DiscordUrls:
    api_base: str  # e.g. https://discord.com/api/v10

    @property
    def origin(self) -> str:
        parts = urlsplit(self.api_base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def authorize(self) -> str:
        return f"{self.origin}/oauth2/authorize"

    @property
    def token(self) -> str:
        return f"{self.origin}/api/oauth2/token"

    def api(self, path: str) -> str:
        return f"{self.api_base}{path}"


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (``/...``, not ``//host`` nor ``/\\host``), else ``default``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
        ch in target for ch in "\r\n\\"
    ):
        return default
    return target
