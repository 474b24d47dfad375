"""Flags follow their message: an edit re-scores the flag in place (keeping what it was first flagged as) and a
deletion is recorded; ``revision`` counts the changes a card shows, so card writers can tell a stale card.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.schema import Timestamp

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flags", sa.Column("text_hash", sa.Text))
    op.add_column("flags", sa.Column("edited_at", Timestamp))
    op.add_column("flags", sa.Column("deleted_at", Timestamp))
    op.add_column("flags", sa.Column("first_excerpt", sa.Text))
    op.add_column("flags", sa.Column("first_p_negative", sa.Double))
    op.add_column("flags", sa.Column("first_reasons", sa.Text))
    op.add_column("flags", sa.Column("below_threshold", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("flags", sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
