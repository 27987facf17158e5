"""The tables (SQLAlchemy Core) that the migrations in closetai/storage/migrations create.

Tables serve the photo path now and the video path and trend report later:
  analyses    one uploaded photo or video (kind 'photo' | 'video'), its source label, hashes, sizes, dates
  detections  every garment found: label, score, box, COCO RLE mask, dominant colour, mask area share
              (video detections also carry frame_index / time_s and the track they belong to)
  tracks      one garment followed through a video (counted once by the report)
  jobs        background work (video analysis): status, progress, heartbeat, error
  embeddings  one appearance vector per garment (a photo's detection or a video's track), for similar
              items (closetai.insights.similar); its id is the garment's "item id"

SQLite (a file in instance/) is the default; the code sticks to portable Core constructs so the same
URL-switch runs it on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

analyses = Table(
    "analyses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),
    Column("source", String(200), nullable=False, default=""),
    Column("filename", String(255), nullable=False, default=""),  # display only, never a path
    Column("sha256", String(64), nullable=False),  # of the bytes as uploaded ('' for rows from before hashes)
    # The first stored analysis of the same content, when this one is a copy stored again (NULL: the
    # first, or no hash). The report counts only rows where it is NULL, so a file counts once (issue 17.2).
    Column("copy_of", Integer),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("captured_at", DateTime, nullable=False),  # EXIF DateTimeOriginal, else upload time
    Column("captured_from", String(10), nullable=False, default="upload"),  # 'exif' | 'upload'
    Column("created_at", DateTime, nullable=False),
    Column("model_name", String(100), nullable=False, default=""),
    Column("taxonomy", String(100), nullable=False, default=""),
    Column("min_score", Float, nullable=False, default=0.5),
    Column("media_dir", String(255), nullable=False),  # all paths below are relative to media_root
    Column("photo_path", String(255)),
    Column("thumb_path", String(255)),
    Column("video_path", String(255)),
    Column("duration_s", Float),
    Column("fps", Float),
    Column("frame_count", Integer),
    # JSON [{"id", "box", "score", "mask"}] of the people a model with the person class found (issue 21)
    Column("people", Text),
    CheckConstraint("kind IN ('photo', 'video')", name="ck_analyses_kind"),
    # Never reuse a deleted id on SQLite: ids are permanent URLs and media is cached by them.
    sqlite_autoincrement=True,
)
Index("ix_analyses_created_at", analyses.c.created_at)
Index("ix_analyses_captured_at", analyses.c.captured_at)
Index("ix_analyses_sha256", analyses.c.sha256)
Index("ix_analyses_source", analyses.c.source)

tracks = Table(
    "tracks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("analysis_id", Integer, ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
    Column("track_no", Integer, nullable=False),
    Column("label", String(50), nullable=False),
    Column("colour_name", String(30)),
    Column("colour_hex", String(7)),
    Column("first_s", Float, nullable=False),
    Column("last_s", Float, nullable=False),
    Column("frames_seen", Integer, nullable=False),
    Column("best_score", Float, nullable=False),
    Column("crop_path", String(255)),
)
Index("ix_tracks_analysis", tracks.c.analysis_id)

detections = Table(
    "detections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("analysis_id", Integer, ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
    Column("idx", Integer, nullable=False),  # order within the photo / frame (score order)
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE")),
    Column("frame_index", Integer),
    Column("time_s", Float),
    Column("label", String(50), nullable=False),
    Column("score", Float, nullable=False),
    Column("x1", Float, nullable=False),
    Column("y1", Float, nullable=False),
    Column("x2", Float, nullable=False),
    Column("y2", Float, nullable=False),
    Column("mask_rle", Text),  # JSON {"size": [H, W], "counts": "..."} (COCO compressed RLE)
    Column("colour_name", String(30)),
    Column("colour_hex", String(7)),
    Column("colour_share", Float),  # share of the mask's pixels in the dominant colour cluster
    Column("area_share", Float),  # mask pixels / image pixels
    Column("crop_path", String(255)),
    Column("person", Integer),  # the id (in analyses.people) of the person wearing it; NULL: nobody
)
Index("ix_detections_analysis", detections.c.analysis_id)
Index("ix_detections_label", detections.c.label)
Index("ix_detections_track", detections.c.track_id)
# Covering index for the report (report_counts): the rows also hold each mask's RLE (~0.4 kB), and
# reading the columns the report needs from the index instead of the table is what keeps it fast.
Index("ix_detections_report", detections.c.analysis_id, detections.c.score, detections.c.label,
      detections.c.colour_name, detections.c.colour_hex)

# One row per garment: a photo detection (detection_id) or a video track (track_id, its best view).
# Vectors are float16 bytes (to_blob below) with their length and the model that made them, so
# `closetai reindex` can find rows a newer embedding made stale. label copies the garment's class: the
# similar-items index filters on it without a join.
embeddings = Table(
    "embeddings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("analysis_id", Integer, ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
    Column("detection_id", Integer, ForeignKey("detections.id", ondelete="CASCADE")),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE")),
    Column("label", String(50), nullable=False),
    Column("model", String(150), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    CheckConstraint("(detection_id IS NULL) <> (track_id IS NULL)", name="ck_embeddings_garment"),
    sqlite_autoincrement=True,  # item ids are permanent links
)
Index("ux_embeddings_detection", embeddings.c.detection_id, unique=True)
Index("ux_embeddings_track", embeddings.c.track_id, unique=True)
Index("ix_embeddings_analysis", embeddings.c.analysis_id)
# embedding_state counts one model's rows before every similar-items query: from this index, not by
# reading ~100k rows that each hold a 1 kB vector.
Index("ix_embeddings_model", embeddings.c.model)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("analysis_id", Integer, ForeignKey("analyses.id", ondelete="CASCADE")),
    Column("kind", String(20), nullable=False),
    Column("status", String(10), nullable=False, default="queued"),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer),
    Column("error", Text),
    Column("params", Text),  # JSON: what a worker (thread or a queue later) needs to run the job
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("heartbeat_at", DateTime),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_jobs_status"),
)
Index("ix_jobs_status", jobs.c.status)

JOB_STATUSES = ("queued", "running", "done", "failed")


def utcnow() -> datetime:
    """Naive UTC: SQLite has no time zones, and naive UTC compares the same on PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)
