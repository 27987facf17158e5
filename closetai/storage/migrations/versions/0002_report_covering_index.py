"""Covering index on detections for the trend report (Store.report_counts reads its columns from the
index instead of rows that also hold each mask's RLE).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_detections_report", "detections",
                    ["analysis_id", "score", "label", "colour_name", "colour_hex"])


def downgrade() -> None:
    op.drop_index("ix_detections_report", table_name="detections")
