"""Flags say why (the heads, labels and scores that raised them); guilds choose the flag signals and may pin a
language; feedback names the head it teaches. Every existing flag was raised by sentiment's ``negative``.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flags", sa.Column("head", sa.Text, nullable=False, server_default="sentiment"))
    op.add_column("flags", sa.Column("label", sa.Text, nullable=False, server_default="negative"))
    op.add_column("flags", sa.Column("score", sa.Double))
    op.add_column("flags", sa.Column("reasons", sa.Text))
    op.execute("UPDATE flags SET score = p_negative")
    op.add_column("guild_settings", sa.Column("flag_on", sa.Text))
    op.add_column("guild_settings", sa.Column("language", sa.Text))
    op.add_column("feedback", sa.Column("head", sa.Text, nullable=False, server_default="sentiment"))
    op.create_index("flags_by_head", "flags", ["guild_id", "head", "id"])
