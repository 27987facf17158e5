"""People in a photo (issue 21): analyses.people (JSON list: id, box, score, RLE mask of each person the
model found) and detections.person (the id of the person wearing the garment, NULL for nobody). Rows
from before, and photos analysed by a model without the person class, have none.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("analyses", sa.Column("people", sa.Text, nullable=True))
    op.add_column("detections", sa.Column("person", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("detections") as batch:
        batch.drop_column("person")
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("people")
