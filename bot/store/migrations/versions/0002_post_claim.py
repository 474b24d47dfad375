"""Several processes on one database: a post claim on each flag, and an index for a flag's latest review.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.schema import Timestamp

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flags", sa.Column("post_claimed_until", Timestamp))
    op.create_index("flag_reviews_by_flag", "flag_reviews", ["flag_id", "id"])
