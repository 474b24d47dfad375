"""The current schema as SQLAlchemy Core tables, for queries; the migrations in ``migrations/versions`` create it.

Column types render as the SQLite file has always had them (``INTEGER`` keys, ISO-8601 text times), and as
native types on PostgreSQL (``BIGINT`` for Discord's 64-bit ids, ``timestamptz``, ``bytea``).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

#: Discord ids are 64-bit: ``BIGINT`` on PostgreSQL; plain ``INTEGER`` (64-bit, a rowid alias as a key) on SQLite.
Snowflake = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Timestamp(sa.TypeDecorator[dt.datetime]):
    """A UTC instant to the millisecond: ISO-8601 text on SQLite (it sorts correctly), ``timestamptz`` elsewhere."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[object]:
        return dialect.type_descriptor(sa.Text() if dialect.name == "sqlite" else sa.DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> object:
        if value is None:
            return None
        value = value.astimezone(dt.UTC)
        return value.isoformat(timespec="milliseconds") if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def utcnow() -> dt.datetime:
    """Now, cut to what every backend stores, so that a copied database compares equal to its source."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


metadata = sa.MetaData()

guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("modlog_channel_id", Snowflake),
    sa.Column("flag_threshold", sa.Double),
    sa.Column("flag_on", sa.Text),  # comma-separated classifier.flag_policy.SIGNALS; NULL: the default policy
    sa.Column("language", sa.Text),  # classifier.language pin; NULL: detect per message
    sa.Column(
        "auto_flag",
        sa.Boolean(create_constraint=True, name="guild_settings_auto_flag"),
        nullable=False,
        server_default=sa.true(),
    ),
    # Whether eligible messages add to the guild's hourly mood aggregates (``mood_history``).
    sa.Column(
        "history",
        sa.Boolean(create_constraint=True, name="guild_settings_history"),
        nullable=False,
        server_default=sa.true(),
    ),
    sa.CheckConstraint(
        "flag_threshold IS NULL OR flag_threshold BETWEEN 0.5 AND 1.0", name="guild_settings_flag_threshold"
    ),
)

guild_channels = sa.Table(
    "guild_channels",
    metadata,
    sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.CheckConstraint("kind IN ('live', 'disabled')", name="guild_channels_kind"),
)

exempt_roles = sa.Table(
    "exempt_roles",
    metadata,
    sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("role_id", Snowflake, primary_key=True, autoincrement=False),
)

optouts = sa.Table(
    "optouts",
    metadata,
    sa.Column("user_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", Snowflake, primary_key=True),
    sa.Column("guild_id", Snowflake, nullable=False),
    sa.Column("channel_id", Snowflake, nullable=False),
    sa.Column("message_id", Snowflake, nullable=False),
    sa.Column("author_id", Snowflake, nullable=False),
    sa.Column("p_negative", sa.Double, nullable=False),  # sentiment, shown on every card
    # the strongest reason (its head, label and score) and, as JSON, every reason (classifier.flag_policy.Reason)
    sa.Column("head", sa.Text, nullable=False, server_default="sentiment"),
    sa.Column("label", sa.Text, nullable=False, server_default="negative"),
    sa.Column("score", sa.Double),
    sa.Column("reasons", sa.Text),
    sa.Column("excerpt", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),
    sa.Column("modlog_channel_id", Snowflake),
    sa.Column("modlog_message_id", Snowflake),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    # Until when one process owns posting this flag's card; a process that dies releases it by letting it lapse.
    sa.Column("post_claimed_until", Timestamp),
    # SHA-256 of the text last classified: an edit that leaves it unchanged (an embed update) changes nothing.
    sa.Column("text_hash", sa.Text),
    # The message's latest edit applied (Discord's edited_timestamp: later edits only) and when it was deleted.
    sa.Column("edited_at", Timestamp),
    sa.Column("deleted_at", Timestamp),
    # What the flag was raised with, kept by the first edit; excerpt, p_negative and reasons then follow the edits.
    sa.Column("first_excerpt", sa.Text),
    sa.Column("first_p_negative", sa.Double),
    sa.Column("first_reasons", sa.Text),
    # The latest edit scores below the policy: ``reasons`` then hold the first reasons' heads at their new scores.
    sa.Column("below_threshold", sa.Boolean, nullable=False, server_default=sa.false()),
    # Bumped by every change a card shows (edit, deletion, review): a card rendered at an older one is stale.
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("guild_id", "message_id", name="flags_guild_message"),
    sa.CheckConstraint("status IN ('open', 'confirmed', 'dismissed', 'deleted')", name="flags_status"),
    sa.Index("flags_by_status", "guild_id", "status", "id"),
    sa.Index("flags_by_head", "guild_id", "head", "id"),
    sa.Index(
        "flags_unposted",
        "modlog_message_id",
        sqlite_where=sa.text("modlog_message_id IS NULL"),
        postgresql_where=sa.text("modlog_message_id IS NULL"),
    ),
    sqlite_autoincrement=True,
)

flag_reviews = sa.Table(
    "flag_reviews",
    metadata,
    sa.Column("id", Snowflake, primary_key=True),
    sa.Column("flag_id", Snowflake, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
    sa.Column("moderator_id", Snowflake, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("old_status", sa.Text, nullable=False),
    sa.Column("new_status", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.CheckConstraint("action IN ('confirm', 'dismiss', 'delete')", name="flag_reviews_action"),
    sa.Index("flag_reviews_by_flag", "flag_id", "id"),
    sqlite_autoincrement=True,
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", Snowflake, primary_key=True),
    sa.Column("flag_id", Snowflake, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("guild_id", Snowflake, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),  # little-endian float32, as the embedding cache keeps them
    # class index in the head's classes: sentiment 0 negative / 1 neutral, a moderation head 0 other / 1 its signal
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("head", sa.Text, nullable=False, server_default="sentiment"),
    sa.Column("moderator_id", Snowflake, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.CheckConstraint("label IN (0, 1)", name="feedback_label"),
    sa.Index("feedback_by_namespace", "namespace", "guild_id"),
    sqlite_autoincrement=True,
)

#: Small values the bot processes share (key -> text), e.g. the hash of the application commands last synced.
app_state = sa.Table(
    "app_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

#: Hourly mood aggregates per guild and channel: counts per class and sums of the class probabilities, never a
#: message's text or author. ``hour`` counts whole hours since the Unix epoch (UTC), so rows add up by key.
mood_history = sa.Table(
    "mood_history",
    metadata,
    sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("negative", sa.Integer, nullable=False),
    sa.Column("neutral", sa.Integer, nullable=False),
    sa.Column("positive", sa.Integer, nullable=False),
    sa.Column("sum_p_negative", sa.Double, nullable=False),
    sa.Column("sum_p_positive", sa.Double, nullable=False),
    # messages at least one moderation head scored at or above its own flag threshold
    sa.Column("harmful", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Index("mood_history_by_hour", "hour"),
)

#: Per guild, channel, hour and moderation head: the messages the head scored (a path without the head adds
#: nothing), how many of them at or above its own flag threshold, and the sum of its scores. Aggregates only.
mood_history_signals = sa.Table(
    "mood_history_signals",
    metadata,
    sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
    sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("head", sa.Text, primary_key=True),
    sa.Column("scored", sa.Integer, nullable=False),
    sa.Column("flagged", sa.Integer, nullable=False),
    sa.Column("sum_score", sa.Double, nullable=False),
    sa.Index("mood_history_signals_by_hour", "hour"),
)

#: Every state-changing dashboard action: who (a Discord user id), what, when.
dashboard_audit = sa.Table(
    "dashboard_audit",
    metadata,
    sa.Column("id", Snowflake, primary_key=True),
    sa.Column("guild_id", Snowflake, nullable=False),
    sa.Column("user_id", Snowflake, nullable=False),
    sa.Column("user_name", sa.Text, nullable=False),  # as Discord showed it at the time
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("dashboard_audit_by_guild", "guild_id", "id"),
    sqlite_autoincrement=True,
)
