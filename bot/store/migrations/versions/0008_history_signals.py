"""Mood history keeps the moderation scores: per channel-hour, how many messages any moderation head flagged as
harmful (``mood_history.harmful``), and per head how many messages it scored, how many at or above its own flag
threshold and the sum of its scores (``mood_history_signals``). Still aggregates only: no text, no author.

One row per head (rather than columns per head) so that a new head in ``classifier.heads.tasks`` needs no migration.
Existing hours had no moderation heads: they keep 0 harmful messages and no signal rows.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.schema import Snowflake

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN on both backends: SQLite keeps the table (no batch copy), PostgreSQL fills the default at once
    op.add_column("mood_history", sa.Column("harmful", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.create_table(
        "mood_history_signals",
        sa.Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("channel_id", Snowflake, primary_key=True, autoincrement=False),
        sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("head", sa.Text, primary_key=True),
        sa.Column("scored", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("sum_score", sa.Double, nullable=False),
    )
    op.create_index("mood_history_signals_by_hour", "mood_history_signals", ["hour"])
