"""analyses.copy_of: the first stored analysis of the same content (sha256), when a file was stored again;
the trend report counts each file once (issue 17.2). Existing rows are filled from their hashes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("analyses", sa.Column("copy_of", sa.Integer, nullable=True))  # SQLite: a plain ADD COLUMN
    op.execute("UPDATE analyses SET copy_of = (SELECT min(b.id) FROM analyses b WHERE b.sha256 = analyses.sha256 "
               "AND b.id < analyses.id) WHERE sha256 != ''")


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("copy_of")
