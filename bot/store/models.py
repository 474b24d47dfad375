"""What the store hands out: guild settings, flags, reviews, and the errors a caller can act on."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field

from classifier.flag_policy import DEFAULT_FLAG_ON, DEFAULT_FLAG_THRESHOLD, Reason
from classifier.heads.sentiment import NEGATIVE, NEUTRAL
from classifier.heads.tasks import SENTIMENT
from classifier.text import replace_surrogates

EXCERPT_CHARS = 300
#: Sentiment feedback labels are class indices of ``classifier.heads.sentiment.CLASSES``. Before three-way heads a
#: dismissal was stored as 1 meaning "positive"; 1 is now neutral, which is what a dismissal means, so old rows keep
#: their sense. A moderation head's feedback is 0 (other) or 1 (its signal).
LABEL_NEGATIVE, LABEL_NEUTRAL = NEGATIVE, NEUTRAL


class StoreError(ValueError):
    """The database cannot be used: an unsupported or malformed URL, or a schema written by a newer moodbot."""


class FlagStatus(enum.StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    DELETED = "deleted"


class ReviewAction(enum.StrEnum):
    """A moderator's decision on a flag, and the status and training label it leads to."""

    CONFIRM = "confirm"
    DISMISS = "dismiss"
    DELETE = "delete"

    @property
    def status(self) -> FlagStatus:
        return {"confirm": FlagStatus.CONFIRMED, "dismiss": FlagStatus.DISMISSED, "delete": FlagStatus.DELETED}[
            self.value
        ]

    @property
    def label(self) -> int:
        """Dismiss means a false flag, almost always ordinary text: neutral; confirm and delete mean negative."""
        return LABEL_NEUTRAL if self is ReviewAction.DISMISS else LABEL_NEGATIVE

    def label_for(self, head: str) -> int:
        """The training label this decision gives the head that raised the flag: for a moderation head, dismiss
        is 0 (other) and confirm or delete 1 (its signal)."""
        if head == SENTIMENT.name:
            return self.label
        return 0 if self is ReviewAction.DISMISS else 1


@dataclass(frozen=True)
class GuildConfig:
    """A guild's settings; ``flag_threshold`` is already resolved against the global default."""

    guild_id: int
    modlog_channel_id: int | None = None
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD
    flag_on: frozenset[str] = DEFAULT_FLAG_ON  # the signals that flag (classifier.flag_policy)
    language: str | None = None  # a language pin (classifier.language); None: detect per message
    auto_flag: bool = True
    history: bool = True  # eligible messages add to the hourly mood aggregates
    live_channels: frozenset[int] = field(default_factory=frozenset)
    disabled_channels: frozenset[int] = field(default_factory=frozenset)
    exempt_roles: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FlaggedAs:
    """A flag's text and scores as it was raised, before its message was edited."""

    excerpt: str
    p_negative: float
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Flag:
    """A flagged message (without its vector)."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    p_negative: float
    excerpt: str
    created_at: dt.datetime
    status: FlagStatus
    modlog_channel_id: int | None
    modlog_message_id: int | None
    reasons: tuple[Reason, ...] = ()  # strongest first; none given: sentiment's negative, as before reasons
    edited_at: dt.datetime | None = None  # the message's latest edit that re-scored the flag
    deleted_at: dt.datetime | None = None  # when the bot heard the message was deleted
    #: What it was first flagged as, once an edit replaced ``excerpt``, ``p_negative`` and ``reasons`` (else None).
    first: FlaggedAs | None = None
    below_threshold: bool = False  # the latest edit no longer passes the flag policy; ``reasons`` are its scores
    revision: int = 0  # bumped by each change a card shows

    def __post_init__(self) -> None:
        if not self.reasons:
            object.__setattr__(self, "reasons", (Reason(SENTIMENT.name, "negative", self.p_negative),))

    @property
    def head(self) -> str:
        """The head of the strongest reason."""
        return self.reasons[0].head

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id}/{self.channel_id}/{self.message_id}"


@dataclass(frozen=True)
class Review:
    """One row of a flag's review history."""

    flag_id: int
    moderator_id: int
    action: ReviewAction
    old_status: FlagStatus
    new_status: FlagStatus
    created_at: dt.datetime


class AlreadyReviewedError(Exception):
    """Another moderator changed the flag after this one looked (two clicks at the same moment): nothing written."""

    def __init__(self, flag: Flag, review: Review | None) -> None:
        by = f" by moderator {review.moderator_id}" if review else ""
        super().__init__(f"flag {flag.id} is already {flag.status.value}{by}")
        self.flag = flag
        self.review = review


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``text`` on one line, with an ellipsis when cut."""
    flat = " ".join(replace_surrogates(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def text_hash(text: str) -> str:
    """SHA-256 of ``text`` (hex): tells an edit that changed the text from an update that left it as classified."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
