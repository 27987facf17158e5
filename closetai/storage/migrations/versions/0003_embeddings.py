"""Embeddings table: one appearance vector per garment (photo detection or video track) for similar items.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
        sa.Column("detection_id", sa.Integer, sa.ForeignKey("detections.id", ondelete="CASCADE")),
        sa.Column("track_id", sa.Integer, sa.ForeignKey("tracks.id", ondelete="CASCADE")),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("model", sa.String(150), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("(detection_id IS NULL) <> (track_id IS NULL)", name="ck_embeddings_garment"),
        sqlite_autoincrement=True,
    )
    op.create_index("ux_embeddings_detection", "embeddings", ["detection_id"], unique=True)
    op.create_index("ux_embeddings_track", "embeddings", ["track_id"], unique=True)
    op.create_index("ix_embeddings_analysis", "embeddings", ["analysis_id"])
    op.create_index("ix_embeddings_model", "embeddings", ["model"])


def downgrade() -> None:
    op.drop_table("embeddings")
