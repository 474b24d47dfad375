"""The schema of moodbot before Alembic (SQLite ``PRAGMA user_version = 1``); such files are stamped with this revision.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.schema import Snowflake, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UNPOSTED = sa.text("modlog_message_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("modlog_channel_id", Snowflake),
        sa.Column("flag_threshold", sa.Double),
        sa.Column(
            "auto_flag",
            sa.Boolean(create_constraint=True, name="guild_settings_auto_flag"),
            nullable=False,
            server_default=sa.true(),
        ),
        sa.CheckConstraint(
            "flag_threshold IS NULL OR flag_threshold BETWEEN 0.5 AND 1.0", name="guild_settings_flag_threshold"
        ),
    )
    op.create_table(
        "guild_channels",
        sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.CheckConstraint("kind IN ('live', 'disabled')", name="guild_channels_kind"),
    )
    op.create_table(
        "exempt_roles",
        sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("role_id", Snowflake, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "optouts",
        sa.Column("user_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "flags",
        sa.Column("id", Snowflake, primary_key=True),
        sa.Column("guild_id", Snowflake, nullable=False),
        sa.Column("channel_id", Snowflake, nullable=False),
        sa.Column("message_id", Snowflake, nullable=False),
        sa.Column("author_id", Snowflake, nullable=False),
        sa.Column("p_negative", sa.Double, nullable=False),
        sa.Column("excerpt", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("modlog_channel_id", Snowflake),
        sa.Column("modlog_message_id", Snowflake),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.UniqueConstraint("guild_id", "message_id", name="flags_guild_message"),
        sa.CheckConstraint("status IN ('open', 'confirmed', 'dismissed', 'deleted')", name="flags_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("flags_by_status", "flags", ["guild_id", "status", "id"])
    op.create_index("flags_unposted", "flags", ["modlog_message_id"], sqlite_where=UNPOSTED, postgresql_where=UNPOSTED)
    op.create_table(
        "flag_reviews",
        sa.Column("id", Snowflake, primary_key=True),
        sa.Column("flag_id", Snowflake, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
        sa.Column("moderator_id", Snowflake, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("old_status", sa.Text, nullable=False),
        sa.Column("new_status", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("action IN ('confirm', 'dismiss', 'delete')", name="flag_reviews_action"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "feedback",
        sa.Column("id", Snowflake, primary_key=True),
        sa.Column("flag_id", Snowflake, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("guild_id", Snowflake, nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("moderator_id", Snowflake, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("label IN (0, 1)", name="feedback_label"),
        sqlite_autoincrement=True,
    )
    op.create_index("feedback_by_namespace", "feedback", ["namespace", "guild_id"])
