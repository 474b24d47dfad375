"""Hourly mood aggregates (``mood_history``), the per-guild ``history`` switch and the dashboard's audit log.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.schema import Snowflake, Timestamp

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # ADD COLUMN keeps the table (a batch copy would drop unnamed
        # CHECKs of files written before Alembic); Alembic's add_column would leave the boolean's CHECK out
        op.execute(
            "ALTER TABLE guild_settings ADD COLUMN history BOOLEAN NOT NULL DEFAULT 1 "
            "CONSTRAINT guild_settings_history CHECK (history IN (0, 1))"
        )
    else:
        op.add_column("guild_settings", sa.Column("history", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_table(
        "mood_history",
        sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("negative", sa.Integer, nullable=False),
        sa.Column("neutral", sa.Integer, nullable=False),
        sa.Column("positive", sa.Integer, nullable=False),
        sa.Column("sum_p_negative", sa.Double, nullable=False),
        sa.Column("sum_p_positive", sa.Double, nullable=False),
    )
    op.create_index("mood_history_by_hour", "mood_history", ["hour"])
    op.create_table(
        "dashboard_audit",
        sa.Column("id", Snowflake, primary_key=True),
        sa.Column("guild_id", Snowflake, nullable=False),
        sa.Column("user_id", Snowflake, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("dashboard_audit_by_guild", "dashboard_audit", ["guild_id", "id"])
