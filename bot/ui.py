"""Presentation helpers shared by the cogs: a text confidence bar, and private answers to interactions."""

from __future__ import annotations

import discord

BAR_WIDTH = 10


def confidence_bar(confidence: float, width: int = BAR_WIDTH) -> str:
    """``███████░░░`` for 0.7."""
    filled = round(confidence * width)
    return "█" * filled + "░" * (width - filled)


async def send_ephemeral(interaction: discord.Interaction, content: str, **kwargs: object) -> None:
    """Answer ``interaction`` privately, whether or not it was already answered or deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)  # type: ignore[arg-type]
