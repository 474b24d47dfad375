"""The mod-log card of a flag: what it says (the message, why it was flagged, edits, deletion, the review)."""

from __future__ import annotations

import datetime as dt

import discord

from bot.store import Flag, FlagStatus
from classifier.flag_policy import Reason
from classifier.heads.tasks import SENTIMENT, TASKS
from classifier.inference.prediction import Prediction

#: ``/flagged reason:`` choices: a flag's strongest reason's head (sentiment's reason is strong negativity).
REASON_NAMES = {task.name: "Negative" if task is SENTIMENT else task.title for task in TASKS.values()}


STATUS_COLOURS = {
    FlagStatus.OPEN: discord.Colour.orange(),
    FlagStatus.CONFIRMED: discord.Colour.red(),
    FlagStatus.DISMISSED: discord.Colour.green(),
    FlagStatus.DELETED: discord.Colour.dark_grey(),
}


def flag_embed(flag: Flag, reviewer_id: int | None = None, reviewed_at: dt.datetime | None = None) -> discord.Embed:
    """The mod-log card of a flag; mentions inside embeds never ping. The text is the message's latest; an edited
    flag also shows what it was first flagged as, and a deleted message is marked (the title still ends with the
    status, which :func:`shown_status` reads)."""
    marks = [mark for mark, on in (("edited", flag.edited_at), ("deleted", flag.deleted_at)) if on is not None]
    embed = discord.Embed(
        title=" · ".join(["Flagged message", *marks, flag.status.value]),
        description=f">>> {discord.utils.escape_markdown(flag.excerpt)}",
        colour=STATUS_COLOURS[flag.status],
        timestamp=flag.created_at,
    )
    embed.add_field(name="Author", value=f"<@{flag.author_id}> (`{flag.author_id}`)")
    embed.add_field(name="Channel", value=f"<#{flag.channel_id}>")
    embed.add_field(name="Why", value=_titles(flag.first.reasons if flag.first else flag.reasons))
    was = f" (was {flag.first.p_negative:.2f})" if flag.first else ""
    embed.add_field(name="Sentiment", value=f"p_negative {flag.p_negative:.2f}{was}")
    embed.add_field(name="Message", value=_message_state(flag))
    if flag.edited_at is not None:
        embed.add_field(name="Edited", value=_edit_note(flag))
    if flag.first is not None:
        embed.add_field(
            name="Before the edit", value=f">>> {discord.utils.escape_markdown(flag.first.excerpt)}", inline=False
        )
    if reviewer_id is not None:
        when = discord.utils.format_dt(reviewed_at or discord.utils.utcnow(), "R")
        embed.add_field(name="Reviewed", value=f"{flag.status.value.title()} by <@{reviewer_id}> {when}")
    embed.set_footer(text=f"Flag #{flag.id}")
    return embed


def _message_state(flag: Flag) -> str:
    """A jump link, or when the message was deleted (by a moderator's Delete, the review says who)."""
    if flag.deleted_at is None:
        return f"[Jump to message]({flag.jump_url})"
    by = "" if flag.status is FlagStatus.DELETED else " (by whom unknown)"
    return f"Deleted {discord.utils.format_dt(flag.deleted_at, 'R')}{by}"


def _edit_note(flag: Flag) -> str:
    """When the message was last edited, and how the edit scores against the flag policy."""
    assert flag.edited_at is not None
    when = discord.utils.format_dt(flag.edited_at, "R")
    if flag.first is None:
        return f"{when}; flagged as edited"
    if flag.below_threshold:
        return f"{when}; now below the flag threshold: {describe_reasons(flag)}"
    return f"{when}; now {describe_reasons(flag)}"


def describe_reasons(flag: Flag) -> str:
    """Why a flag is raised now, strongest first: ``Offensive 0.97 · Threat 0.88`` or ``Negative 0.95``."""
    return _titles(flag.reasons)


def _titles(reasons: tuple[Reason, ...]) -> str:
    return " · ".join(reason.title for reason in reasons)


def rescored(flag: Flag, prediction: Prediction) -> list[Reason]:
    """The reasons a flag was first raised for, at an edit's scores: what its card shows once an edit no longer
    flags the message (a head this prediction lacks is left out; sentiment is always there)."""
    reasons = []
    for reason in flag.first.reasons if flag.first else flag.reasons:
        score = prediction.p_negative if reason.head == SENTIMENT.name else prediction.signal(reason.head)
        if score is not None:
            reasons.append(Reason(reason.head, reason.label, score))
    return reasons or [Reason(SENTIMENT.name, "negative", prediction.p_negative)]
