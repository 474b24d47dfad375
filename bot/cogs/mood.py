"""``/mood``: the sentiment of a channel's recent history, with a trend, the most negative messages and a chart."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.chart import mood_chart
from bot.client import MoodBot
from bot.ui import confidence_bar, send_ephemeral
from classifier.inference.prediction import Prediction
from classifier.inference.worker import ClassificationError
from classifier.text import EmptyTextError

DEFAULT_MESSAGES, MAX_MESSAGES = 200, 1000
MAX_HOURS = 14 * 24
MOST_NEGATIVE = 3
STEADY_WITHIN = 0.1  # on the mood scale, -1 to +1


@dataclass(frozen=True)
class Scored:
    """One classified message of the summary."""

    created_at: dt.datetime
    jump_url: str
    prediction: Prediction


def mood_score(prediction: Prediction) -> float:
    """``p_positive - p_negative``: +1 positive, -1 negative, near 0 for neutral (or split) messages."""
    return prediction.p_positive - prediction.p_negative


def trend(scores: list[float]) -> str:
    """Average of the second half minus the first half, in words."""
    if len(scores) < 4:
        return "not enough messages"
    half = len(scores) // 2
    change = sum(scores[half:]) / (len(scores) - half) - sum(scores[:half]) / half
    if abs(change) < STEADY_WITHIN:
        return f"steady ({change:+.2f})"
    return f"{'improving' if change > 0 else 'worsening'} ({change:+.2f} from the first half to the second)"


def summary_embed(channel: discord.abc.GuildChannel, scored: list[Scored], skipped: int) -> discord.Embed:
    """Counts, label shares, average mood, trend and the most negative messages (oldest-first ``scored``)."""
    scores = [mood_score(s.prediction) for s in scored]
    average = sum(scores) / len(scores)
    embed = discord.Embed(title=f"Mood of #{channel.name}", colour=discord.Colour.blurple())
    embed.description = (
        f"**{len(scored)}** messages from {discord.utils.format_dt(scored[0].created_at)} "
        f"to {discord.utils.format_dt(scored[-1].created_at)} ({skipped} skipped: bots, opted-out members, no text)"
    )
    for label in ("positive", "neutral", "negative"):
        share = sum(s.prediction.label == label for s in scored) / len(scored)
        embed.add_field(name=label.title(), value=f"{share:.0%}")
    embed.add_field(
        name="Average mood (positive − negative)", value=f"`{confidence_bar((average + 1) / 2)}` {average:+.2f}"
    )
    embed.add_field(name="Trend", value=trend(scores), inline=False)
    worst = sorted(scored, key=lambda s: -s.prediction.p_negative)[:MOST_NEGATIVE]
    lines = [
        f"{s.prediction.p_negative:.0%} negative · [jump]({s.jump_url})"
        for s in worst
        if s.prediction.label == "negative"
    ]
    embed.add_field(name="Most negative", value="\n".join(lines) or "none", inline=False)
    embed.set_image(url="attachment://mood.png")
    return embed


class Mood(commands.Cog):
    """Channel mood summaries, computed in batches through the shared worker."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    @app_commands.command(name="mood", description="The mood of a channel's recent messages, with a chart")
    @app_commands.describe(
        channel="Channel to read (default: this one)",
        messages=f"How many recent messages to read (default {DEFAULT_MESSAGES}, at most {MAX_MESSAGES})",
        hours=f"Only messages from the last N hours (at most {MAX_HOURS})",
        share="Post the summary in the channel instead of only to you",
    )
    @app_commands.guild_only()
    @app_commands.checks.cooldown(2, 60.0, key=lambda i: i.user.id)
    async def mood(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
        messages: app_commands.Range[int, 1, MAX_MESSAGES] = DEFAULT_MESSAGES,
        hours: app_commands.Range[int, 1, MAX_HOURS] | None = None,
        share: bool = False,
    ) -> None:
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel) or interaction.guild is None:
            await send_ephemeral(interaction, "Pick a text channel.")
            return
        if not self._may_read(target, interaction):
            await send_ephemeral(interaction, f"I can't read the history of {target.mention} for you.")
            return
        await interaction.response.defer(ephemeral=not share, thinking=True)
        messages = max(1, min(messages, MAX_MESSAGES))  # Discord enforces the ranges; a compatible server might not
        after = discord.utils.utcnow() - dt.timedelta(hours=max(1, min(hours, MAX_HOURS))) if hours else None
        scored, skipped = await self._score_history(target, messages, after)
        if not scored:
            await interaction.followup.send(
                f"No messages with text to analyse in {target.mention}.", ephemeral=not share
            )
            return
        title = f"Mood in #{target.name}"
        png = await asyncio.to_thread(
            mood_chart,
            [s.created_at for s in scored],
            [mood_score(s.prediction) for s in scored],
            [s.prediction.label for s in scored],
            title,
        )
        await interaction.followup.send(
            embed=summary_embed(target, scored, skipped),
            file=discord.File(io.BytesIO(png), filename="mood.png"),
            ephemeral=not share,
        )

    def _may_read(self, channel: discord.TextChannel, interaction: discord.Interaction) -> bool:
        """Both the bot and the member may read the channel's history."""
        me, member = channel.guild.me, interaction.user
        if not isinstance(member, discord.Member):
            return False
        return all(
            channel.permissions_for(who).read_message_history and channel.permissions_for(who).view_channel
            for who in (me, member)
        )

    async def _score_history(
        self, channel: discord.TextChannel, limit: int, after: dt.datetime | None
    ) -> tuple[list[Scored], int]:
        """Classify recent eligible messages (oldest first); also returns how many were skipped."""
        history = [m async for m in channel.history(limit=limit, after=after, oldest_first=False)][::-1]
        authors = {m.author.id for m in history if not m.author.bot}
        opted_out = {author for author in authors if await self.bot.store.is_opted_out(author)}  # once per author
        eligible = [m for m in history if not m.author.bot and m.content.strip() and m.author.id not in opted_out]
        pin = (await self.bot.store.guild_config(channel.guild.id)).language
        results = await self.bot.worker.classify_many([m.content for m in eligible], pin, return_exceptions=True)
        outcomes = zip(eligible, results, strict=True)
        scored = [Scored(m.created_at, m.jump_url, r) for m, r in outcomes if isinstance(r, Prediction)]
        failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, EmptyTextError)]
        if failures and not scored:
            raise ClassificationError(str(failures[0]))
        return scored, len(history) - len(scored)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Mood(bot))
