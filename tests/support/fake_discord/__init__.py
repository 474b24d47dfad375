"""A fake Discord (REST + gateway) on loopback for end-to-end tests with a real discord.py client."""

from .models import (
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionCallback,
    RecordedRequest,
)
from .seed import Seed, seed_default
from .server import FakeDiscordServer

__all__ = [
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscordServer",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "InteractionCallback",
    "RecordedRequest",
    "Seed",
    "seed_default",
]
