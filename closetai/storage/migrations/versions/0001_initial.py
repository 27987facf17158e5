"""Initial schema: analyses, tracks, detections, jobs (as created by metadata.create_all before
migrations existed; Store.init_schema stamps such databases with this revision).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Long on purpose: a migration is a frozen snapshot of the schema, one create_table per table, never edited.
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("captured_at", sa.DateTime, nullable=False),
        sa.Column("captured_from", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("taxonomy", sa.String(100), nullable=False),
        sa.Column("min_score", sa.Float, nullable=False),
        sa.Column("media_dir", sa.String(255), nullable=False),
        sa.Column("photo_path", sa.String(255)),
        sa.Column("thumb_path", sa.String(255)),
        sa.Column("video_path", sa.String(255)),
        sa.Column("duration_s", sa.Float),
        sa.Column("fps", sa.Float),
        sa.Column("frame_count", sa.Integer),
        sa.CheckConstraint("kind IN ('photo', 'video')", name="ck_analyses_kind"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_analyses_created_at", "analyses", ["created_at"])
    op.create_index("ix_analyses_captured_at", "analyses", ["captured_at"])
    op.create_index("ix_analyses_sha256", "analyses", ["sha256"])
    op.create_index("ix_analyses_source", "analyses", ["source"])

    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
        sa.Column("track_no", sa.Integer, nullable=False),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("colour_name", sa.String(30)),
        sa.Column("colour_hex", sa.String(7)),
        sa.Column("first_s", sa.Float, nullable=False),
        sa.Column("last_s", sa.Float, nullable=False),
        sa.Column("frames_seen", sa.Integer, nullable=False),
        sa.Column("best_score", sa.Float, nullable=False),
        sa.Column("crop_path", sa.String(255)),
    )
    op.create_index("ix_tracks_analysis", "tracks", ["analysis_id"])

    op.create_table(
        "detections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("track_id", sa.Integer, sa.ForeignKey("tracks.id", ondelete="CASCADE")),
        sa.Column("frame_index", sa.Integer),
        sa.Column("time_s", sa.Float),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("x2", sa.Float, nullable=False),
        sa.Column("y2", sa.Float, nullable=False),
        sa.Column("mask_rle", sa.Text),
        sa.Column("colour_name", sa.String(30)),
        sa.Column("colour_hex", sa.String(7)),
        sa.Column("colour_share", sa.Float),
        sa.Column("area_share", sa.Float),
        sa.Column("crop_path", sa.String(255)),
    )
    op.create_index("ix_detections_analysis", "detections", ["analysis_id"])
    op.create_index("ix_detections_label", "detections", ["label"])
    op.create_index("ix_detections_track", "detections", ["track_id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("analyses.id", ondelete="CASCADE")),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("params", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    for table in ("jobs", "detections", "tracks", "analyses"):
        op.drop_table(table)
