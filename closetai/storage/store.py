"""The one module that talks to the database (SQLAlchemy Core) and owns the media folder beside it.

Tables serve the photo path now and the video path and trend report later:
  analyses    one uploaded photo or video (kind 'photo' | 'video'), its source label, hashes, sizes, dates
  detections  every garment found: label, score, box, COCO RLE mask, dominant colour, mask area share
              (video detections also carry frame_index / time_s and the track they belong to)
  tracks      one garment followed through a video (counted once by the report)
  jobs        background work (video analysis): status, progress, heartbeat, error
  embeddings  one appearance vector per garment (a photo's detection or a video's track), for similar
              items (closetai.insights.similar); its id is the garment's "item id"

SQLite (a file in instance/) is the default; the code sticks to portable Core constructs so the same
URL-switch runs it on PostgreSQL. Media paths in rows are relative to `media_root`; the store writes
files to temporary names and renames them into place inside the same transaction that inserts the rows,
so a failure leaves neither a row nor a file behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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
    case,
    cast,
    create_engine,
    event,
    func,
    inspect,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection, Engine

from closetai import ClosetAIError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class NotFound(ClosetAIError):
    status = 404


class JobNotRunning(ClosetAIError):
    """A worker tried to finish a job that was meanwhile failed (e.g. by the restart sweep)."""

    status = 409


class AlreadyStored(ClosetAIError):
    """An upload whose content (sha256) is already stored or on its way in: `where` is Store.same_file's
    answer; the web layer turns it into a 409 linking to it (the caller may store it again on purpose)."""

    status = 409

    def __init__(self, message: str, where: dict[str, Any]):
        super().__init__(message)
        self.where = where


class StoreError(ClosetAIError):
    """The database or media folder could not be written (disk full, permissions, locked database)."""

    status = 503


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


@dataclass
class NewDetection:
    """One detection to store. `mask_rle` is the COCO RLE dict; `crop` optional JPEG bytes."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask_rle: dict | None = None
    colour_name: str | None = None
    colour_hex: str | None = None
    colour_share: float | None = None
    area_share: float | None = None
    crop_jpeg: bytes | None = None
    frame_index: int | None = None
    time_s: float | None = None
    track_no: int | None = None  # video: links to the NewTrack with this track_no
    person: int | None = None  # photo: id of the person wearing it (NewAnalysis.people)
    embedding: Any = None  # (D,) float32 unit vector (closetai.vision.embed), photos only: a video's is its track's


@dataclass
class NewTrack:
    track_no: int
    label: str
    first_s: float
    last_s: float
    frames_seen: int
    best_score: float
    colour_name: str | None = None
    colour_hex: str | None = None
    crop_jpeg: bytes | None = None
    embedding: Any = None  # (D,) float32 unit vector of the best view


@dataclass
class NewAnalysis:
    kind: str
    filename: str
    sha256: str
    width: int
    height: int
    captured_at: datetime | None = None  # None: upload time
    source: str = ""
    model_name: str = ""
    taxonomy: str = ""
    min_score: float = 0.5
    files: dict[str, bytes] = field(default_factory=dict)  # {"photo": jpeg, "thumb": jpeg, "video": mp4}
    duration_s: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    embedding_model: str = ""  # names the garments' embedding vectors (Predictor.embedding_model)
    people: list[dict] | None = None  # [{"id", "box", "score", "mask" (RLE)}] (closetai.vision.people)


_HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Is process `pid` alive on this host?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_gone(name: str) -> bool:
    """True when a Store.tmp_path name says it was made on this host by a process that has exited."""
    parts = name.rsplit("~", 2)
    if len(parts) != 3 or parts[1] != _HOST or not parts[2].isdigit():
        return False
    return int(parts[2]) != os.getpid() and not pid_alive(int(parts[2]))


# "summary": a video's per-track JSON as `closetai video` writes it (minus frames) and its timeline:
# fields the tables do not hold (label votes, best box/time, the analysed frame times).
_FILE_NAMES = {"photo": "photo.jpg", "thumb": "thumb.jpg", "video": "video.mp4", "summary": "summary.json"}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # foreign_keys: SQLite ignores ON DELETE CASCADE without it. WAL + busy_timeout: the web server's
    # threads, a job worker and `closetai ingest` may write at once; readers never block the writer.
    # busy_timeout first: the journal_mode pragma itself needs a lock, and without a timeout a
    # connection opened while another process writes failed at once with "database is locked".
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Store:
    """Database + media folder. Create once per process; safe to share between threads."""

    def __init__(self, url: str, media_root: str | os.PathLike):
        self.url = url
        self.media_root = Path(media_root).resolve()
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    # -- schema -----------------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Bring the schema to the newest migration (idempotent) and create the media folder."""
        self.media_root.mkdir(parents=True, exist_ok=True)
        migrate(self.engine)
        self.sweep_leftovers()

    def tmp_path(self, prefix: str = "") -> Path:
        """A fresh path under media_root/.tmp whose name records this process (host and pid), so a
        restart can tell a dead process's leftovers from a live writer's (sweep_leftovers)."""
        return self.media_root / ".tmp" / f"{prefix}{uuid.uuid4().hex}~{_HOST}~{os.getpid()}"

    def sweep_leftovers(self, older_than_s: float = 3600) -> int:
        """Remove temp/trash folders a killed process left behind: at once when the process that made it
        (tmp_path) ran on this host and is gone, otherwise only old ones, since another process (a worker,
        `closetai ingest`) may be writing a fresh one right now."""
        import time

        removed = 0
        for parent in (self.media_root / ".tmp", self.media_root / ".trash"):
            if not parent.is_dir():
                continue
            for child in parent.iterdir():
                try:
                    if _owner_gone(child.name) or time.time() - child.stat().st_mtime > older_than_s:
                        shutil.rmtree(child, ignore_errors=True)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        from sqlalchemy.exc import OperationalError

        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database unavailable ({exc.orig}); try again shortly") from exc

    # -- media paths ------------------------------------------------------------------------------
    def media_path(self, relative: str | None) -> Path:
        """Absolute path of a stored media file; refuses anything outside media_root."""
        if not relative:
            raise NotFound("no such media file")
        path = (self.media_root / relative).resolve()
        if not path.is_relative_to(self.media_root) or not path.is_file():
            raise NotFound("no such media file")
        return path

    def _write_files(self, tmp_dir: Path, new: NewAnalysis, dets: list[NewDetection],
                     trks: list[NewTrack]) -> None:
        tmp_dir.mkdir(parents=True)
        for key, data in new.files.items():
            if key not in _FILE_NAMES:
                raise ValueError(f"unknown media file kind {key!r}")
            (tmp_dir / _FILE_NAMES[key]).write_bytes(data)
        if any(d.crop_jpeg for d in dets) or any(t.crop_jpeg for t in trks):
            (tmp_dir / "crops").mkdir()
        for i, d in enumerate(dets):
            if d.crop_jpeg:
                (tmp_dir / "crops" / f"d{i}.jpg").write_bytes(d.crop_jpeg)
        for t in trks:
            if t.crop_jpeg:
                (tmp_dir / "crops" / f"t{t.track_no}.jpg").write_bytes(t.crop_jpeg)

    # -- writes -----------------------------------------------------------------------------------
    def add_analysis(self, new: NewAnalysis, dets: list[NewDetection],
                     trks: list[NewTrack] | None = None, *, finish_job: int | None = None,
                     job_error: str | None = None) -> int:
        """Insert an analysis with its detections (and tracks), and its media files. Returns its id.

        Files go to a hidden temporary folder first; rows are inserted in one transaction; the folder is
        renamed into place before the commit. Any failure removes the folder and rolls the rows back.
        finish_job: a job marked 'done' (linked to this analysis, `job_error` noted) in the same
        transaction, so a crash can never leave a stored video whose job still says 'running'.
        """
        if new.kind not in ("photo", "video"):
            raise ValueError(f"kind must be 'photo' or 'video', not {new.kind!r}")
        trks = trks or []
        track_nos = {t.track_no for t in trks}
        for d in dets:
            if d.track_no is not None and d.track_no not in track_nos:
                raise ValueError(f"detection refers to unknown track_no {d.track_no}")
        now = utcnow()
        day = now.strftime("%Y/%m/%d")
        token = uuid.uuid4().hex
        rel_dir = f"{new.kind}s/{day}/{token}"
        final_dir = self.media_root / rel_dir
        tmp_dir = self.tmp_path("analysis-")
        try:
            self._write_files(tmp_dir, new, dets, trks)
        except OSError as exc:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise StoreError(f"cannot write media files ({exc.strerror})") from exc
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

        def rel(key: str) -> str | None:
            return f"{rel_dir}/{_FILE_NAMES[key]}" if key in new.files else None

        moved = False
        try:
            with self._begin() as conn:
                # Inside the insert's transaction (SQLite: one writer at a time), so of two uploads of the
                # same file at once only the first is counted by the report.
                copy_of = conn.execute(select(func.min(analyses.c.id)).where(
                    analyses.c.sha256 == new.sha256)).scalar() if new.sha256 else None
                analysis_id = conn.execute(analyses.insert().values(
                    kind=new.kind, source=new.source[:200], filename=new.filename[:255], sha256=new.sha256,
                    copy_of=copy_of,
                    width=int(new.width), height=int(new.height),
                    captured_at=new.captured_at or now, captured_from="exif" if new.captured_at else "upload",
                    created_at=now, model_name=new.model_name, taxonomy=new.taxonomy,
                    min_score=float(new.min_score), media_dir=rel_dir, photo_path=rel("photo"),
                    thumb_path=rel("thumb"), video_path=rel("video"), duration_s=new.duration_s,
                    fps=new.fps, frame_count=new.frame_count,
                    people=json.dumps(new.people) if new.people else None,
                )).inserted_primary_key[0]
                track_ids: dict[int, int] = {}
                for t in trks:
                    track_ids[t.track_no] = conn.execute(tracks.insert().values(
                        analysis_id=analysis_id, track_no=t.track_no, label=t.label, colour_name=t.colour_name,
                        colour_hex=t.colour_hex, first_s=t.first_s, last_s=t.last_s, frames_seen=t.frames_seen,
                        best_score=t.best_score,
                        crop_path=f"{rel_dir}/crops/t{t.track_no}.jpg" if t.crop_jpeg else None,
                    )).inserted_primary_key[0]
                if dets:
                    conn.execute(detections.insert(), [
                        {"analysis_id": analysis_id, "idx": i,
                         "track_id": track_ids.get(d.track_no) if d.track_no is not None else None,
                         "frame_index": d.frame_index, "time_s": d.time_s, "label": d.label,
                         "score": float(d.score), "x1": float(d.box[0]), "y1": float(d.box[1]),
                         "x2": float(d.box[2]), "y2": float(d.box[3]),
                         "mask_rle": json.dumps(d.mask_rle) if d.mask_rle else None,
                         "colour_name": d.colour_name, "colour_hex": d.colour_hex,
                         "colour_share": d.colour_share, "area_share": d.area_share,
                         "crop_path": f"{rel_dir}/crops/d{i}.jpg" if d.crop_jpeg else None,
                         "person": d.person}
                        for i, d in enumerate(dets)])
                _insert_embeddings(conn, analysis_id, new.embedding_model, dets, trks, track_ids)
                if finish_job is not None:
                    finished = conn.execute(jobs.update().where(jobs.c.id == finish_job, jobs.c.status == "running")
                                            .values(status="done", analysis_id=analysis_id, error=job_error,
                                                    finished_at=now, heartbeat_at=now))
                    if finished.rowcount == 0:  # failed by a restart sweep meanwhile: keep its verdict
                        raise JobNotRunning(f"job {finish_job} is no longer running; nothing stored")
                # Rename inside the transaction: if it fails the rows roll back; if the commit fails
                # the except below moves the folder away again.
                final_dir.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_dir, final_dir)
                moved = True
        except BaseException as exc:
            shutil.rmtree(final_dir if moved else tmp_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot store media files ({exc.strerror})") from exc
            raise
        return int(analysis_id)

    def delete_analysis(self, analysis_id: int) -> None:
        """Remove an analysis, its detections, tracks, jobs (cascade) and then its media folder.

        The rows go first, in one transaction that must delete the analysis row itself: of two
        concurrent deletes the database lets exactly one do that, the other gets NotFound (404), and
        only the winner touches the files. A crash between the commit and the removal leaves an
        orphaned folder (disk, not data), never rows whose files are gone."""
        row = self.get_analysis_row(analysis_id)
        with self._begin() as conn:
            # Explicit deletes as well as ON DELETE CASCADE: correct even where a database was
            # created without foreign keys enforced.
            conn.execute(embeddings.delete().where(embeddings.c.analysis_id == analysis_id))
            conn.execute(detections.delete().where(detections.c.analysis_id == analysis_id))
            conn.execute(tracks.delete().where(tracks.c.analysis_id == analysis_id))
            conn.execute(jobs.delete().where(jobs.c.analysis_id == analysis_id))
            if conn.execute(analyses.delete().where(analyses.c.id == analysis_id)).rowcount != 1:
                raise NotFound(f"analysis {analysis_id} not found")  # a concurrent delete won; rolled back
            # The first copy of a file deleted: the next one stored becomes the one the report counts.
            heir = conn.execute(select(func.min(analyses.c.id)).where(analyses.c.copy_of == analysis_id)).scalar()
            if heir is not None:
                conn.execute(analyses.update().where(analyses.c.id == heir).values(copy_of=None))
                conn.execute(analyses.update().where(analyses.c.copy_of == analysis_id).values(copy_of=heir))
        folder = self.media_root / row["media_dir"]
        if row["media_dir"] and folder.is_dir() and folder.resolve().is_relative_to(self.media_root):
            trash = self.media_root / ".trash" / self.tmp_path().name
            trash.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(folder, trash)  # atomic: a reader sees all of the files or none
            except FileNotFoundError:
                return
            shutil.rmtree(trash, ignore_errors=True)

    # -- reads ------------------------------------------------------------------------------------
    def get_analysis_row(self, analysis_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(analyses).where(analyses.c.id == analysis_id)).mappings().first()
        if row is None:
            raise NotFound(f"analysis {analysis_id} not found")
        return dict(row)

    def get_analysis(self, analysis_id: int) -> dict[str, Any]:
        """The analysis row plus "detections" (list of dicts, mask decoded from JSON) and "tracks"."""
        with self.engine.connect() as conn:
            row = conn.execute(select(analyses).where(analyses.c.id == analysis_id)).mappings().first()
            if row is None:
                raise NotFound(f"analysis {analysis_id} not found")
            det_rows = conn.execute(select(detections).where(detections.c.analysis_id == analysis_id)
                                    .order_by(detections.c.idx)).mappings().all()
            trk_rows = conn.execute(select(tracks).where(tracks.c.analysis_id == analysis_id)
                                    .order_by(tracks.c.track_no)).mappings().all()
        out = dict(row)
        out["detections"] = [_detection_dict(d) for d in det_rows]
        out["tracks"] = [dict(t) for t in trk_rows]
        # each person with the idx of the garments they wear (closetai.vision.people's JSON)
        people = json.loads(out["people"]) if out.get("people") else []
        for p in people:
            p["garments"] = [d["idx"] for d in out["detections"] if d.get("person") == p["id"]]
        out["people"] = people
        return out

    def get_detection(self, analysis_id: int, idx: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(detections).where(detections.c.analysis_id == analysis_id,
                                                        detections.c.idx == idx)).mappings().first()
        if row is None:
            raise NotFound(f"detection {idx} of analysis {analysis_id} not found")
        return _detection_dict(row)

    def list_analyses(self, limit: int = 20, offset: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first, each with "n_detections" and "labels" (distinct, by count)."""
        count = func.count(detections.c.id).label("n_detections")
        query = (select(analyses, count).select_from(analyses.outerjoin(detections))
                 .group_by(analyses.c.id).order_by(analyses.c.created_at.desc(), analyses.c.id.desc())
                 .limit(limit).offset(offset))
        if kind:
            query = query.where(analyses.c.kind == kind)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            ids = [r["id"] for r in rows]
            labels: dict[int, list[str]] = {i: [] for i in ids}
            for aid, label, _n in _labels_by_analysis(conn, detections, ids):
                labels[aid].append(label)
            # A clip's garments are its tracks, each counted once, as its page and the report count
            # them; its per-frame detections are not garments (issue 18: "76 items" vs "15 garments").
            # And its id is its job's, as on /videos and in the API.
            videos = [r["id"] for r in rows if r["kind"] == "video"]
            n_tracks: dict[int, int] = {}
            job_ids: dict[int, int] = {}
            if videos:
                for aid in videos:
                    labels[aid] = []
                for aid, label, n in _labels_by_analysis(conn, tracks, videos):
                    labels[aid].append(label)
                    n_tracks[aid] = n_tracks.get(aid, 0) + int(n)
                job_ids = dict(conn.execute(select(jobs.c.analysis_id, func.min(jobs.c.id))
                                            .where(jobs.c.analysis_id.in_(videos)).group_by(jobs.c.analysis_id)).all())
        for r in rows:
            r["labels"] = labels[r["id"]]
            if r["kind"] == "video":
                r["n_detections"] = n_tracks.get(r["id"], 0)
                r["video_id"] = job_ids.get(r["id"])
        return rows

    def count_analyses(self, kind: str | None = None) -> int:
        query = select(func.count()).select_from(analyses)
        if kind:
            query = query.where(analyses.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def find_by_sha256(self, sha256: str) -> list[int]:
        """Ids of analyses with this content hash (bulk ingest skips files it has seen)."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(analyses.c.id).where(analyses.c.sha256 == sha256)
                                               .order_by(analyses.c.id))]

    def same_file(self, sha256: str) -> dict[str, Any] | None:
        """Where a file with this content hash already is: {"kind": "photo"|"video", "analysis_id": id}
        for the first stored analysis, else {"kind": ..., "job_id": id} for a queued or running job (a
        clip still being analysed), else None."""
        ids = self.find_by_sha256(sha256) if sha256 else []
        if ids:
            return {"kind": self.get_analysis_row(ids[0])["kind"], "analysis_id": ids[0]}
        job_id = self.active_jobs_by_sha256().get(sha256) if sha256 else None
        if job_id is not None:
            return {"kind": self.get_job(job_id)["kind"], "job_id": job_id}
        return None

    # -- trend report (closetai.insights.report aggregates what these return) -----------------------------
    def report_items(self, sources: list[str] | None = None, since: date | None = None,
                     until: date | None = None, kind: str | None = None,
                     min_score: float | None = None) -> pd.DataFrame:
        """One row per counted garment (closetai.insights.report.ITEM_COLUMNS), every filter applied in SQL.

        Photos count each detection (score >= min_score); videos count each track once, with its best
        score. `since`/`until` are inclusive calendar days on captured_at.
        """
        import pandas as pd

        query = _counted_garments(sources, since, until, kind, min_score)
        with self.engine.connect() as conn:
            df = pd.read_sql(query, conn)
        df["captured_at"] = pd.to_datetime(df["captured_at"], format="ISO8601")
        return df

    def report_counts(self, sources: list[str] | None = None, since: date | None = None,
                      until: date | None = None, kind: str | None = None,
                      min_score: float | None = None) -> dict[str, pd.DataFrame]:
        """The counted garments of report_items, already grouped in SQL (closetai.insights.report.GarmentCounts).

        Fetching ~100k rows into pandas to group them there took ~0.45 s; these tables have at most a
        few thousand rows. Keys:
          cells       day ('YYYY-MM-DD'), label, colour_name, count
          label_sets  labels (list of the distinct labels of an analysis), analyses (how many analyses
                      have exactly that set), first, last (captured_at, ISO strings)
        """
        import pandas as pd

        dialect = self.engine.dialect.name
        g = _counted_garments(sources, since, until, kind, min_score, dialect=dialect).subquery("g")
        day = func.substr(g.c.captured_at, 1, 10).label("day")
        cells = (select(day, g.c.label, g.c.colour_name, func.count().label("count"))
                 .group_by(day, g.c.label, g.c.colour_name))
        per_analysis = _counted_garments(sources, since, until, kind, min_score, per_analysis=True,
                                         dialect=dialect).subquery("p")
        sets = (select(per_analysis.c.labels, func.count().label("analyses"),
                       func.min(per_analysis.c.captured_at).label("first"),
                       func.max(per_analysis.c.captured_at).label("last"))
                .group_by(per_analysis.c.labels))
        with self.engine.connect() as conn:
            out = {"cells": pd.read_sql(cells, conn), "label_sets": pd.read_sql(sets, conn), "pair_sets": None}
            # Worn together means by one person (issue 21): where a model found people, the sets are per
            # person; elsewhere per analysis, as label_sets. Only queried when some photo has people.
            if conn.execute(select(analyses.c.id).where(analyses.c.people.is_not(None)).limit(1)).first():
                groups = []
                for per_person in (True, False):
                    q = _counted_garments(sources, since, until, kind, min_score, per_analysis=True,
                                          dialect=dialect, per_person=per_person)
                    if q is not None:
                        sub = q.subquery("pp")
                        groups.append(pd.read_sql(select(sub.c.labels, func.count().label("analyses"))
                                                  .group_by(sub.c.labels), conn))
                out["pair_sets"] = pd.concat(groups, ignore_index=True)
        # "jeans\x1f,top\x1f": each label ends with \x1f so a comma inside a class name cannot split it.
        for key in ("label_sets", "pair_sets"):
            if out[key] is not None:
                out[key]["labels"] = out[key]["labels"].str[:-1].str.split(_LABEL_END + ",")
        return out

    def report_score_bins(self, edges, sources: list[str] | None = None, since: date | None = None,
                          until: date | None = None, kind: str | None = None,
                          min_score: float | None = None) -> pd.DataFrame:
        """Per class, how many analyses have their best counted score in each bin (closetai.insights.quantify's
        score_edges: bin j holds edges[j-1] <= best < edges[j]; analyses without the class are not
        listed). Columns label, bin, analyses: at most classes x bins rows."""
        import pandas as pd

        # Only the three columns it needs, grouped inside each part: from the covering index, without
        # the cast dates and colours of _counted_garments' rows (~2x faster at 100k detections).
        parts = []
        for media, table, score in (("photo", detections, detections.c.score), ("video", tracks, tracks.c.best_score)):
            if kind not in (None, media):
                continue
            q = (select(table.c.analysis_id, table.c.label, func.max(score).label("best"))
                 .select_from(table.join(analyses, table.c.analysis_id == analyses.c.id))
                 .where(analyses.c.kind == media, *_analysis_filters(sources, since, until)))
            if min_score is not None:
                q = q.where(score >= min_score)
            parts.append(q.group_by(table.c.analysis_id, table.c.label))
        best = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("best")
        k = len(edges) - 1
        which = case(*[(best.c.best >= float(edges[j - 1]), j) for j in range(k, 0, -1)], else_=0).label("bin")
        query = select(best.c.label, which, func.count().label("analyses")).group_by(best.c.label, which)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def report_version(self) -> tuple:
        """Changes whenever an analysis, detection or track is added or removed: a cache key for reports.

        Ids are never reused (AUTOINCREMENT), so insert-then-delete still moves max(id)."""
        with self.engine.connect() as conn:
            return (tuple(conn.execute(select(func.count(), func.max(analyses.c.id))).one())
                    + tuple(conn.execute(select(func.max(detections.c.id))).one())
                    + tuple(conn.execute(select(func.count(), func.max(tracks.c.id))).one()))

    def report_count_analyses(self, sources: list[str] | None = None, since: date | None = None,
                              until: date | None = None, kind: str | None = None) -> int:
        """Analyses matching the report's filters, with or without garments (the share denominator)."""
        query = select(func.count()).select_from(analyses).where(*_analysis_filters(sources, since, until))
        if kind:
            query = query.where(analyses.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def count_detections(self, analysis_id: int) -> int:
        """Detections stored for one analysis (ingest's summary line)."""
        query = select(func.count()).select_from(detections).where(detections.c.analysis_id == analysis_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def report_sources(self) -> list[str]:
        """Distinct non-empty source labels, for the report's filter form."""
        query = (select(analyses.c.source).where(analyses.c.source != "").distinct()
                 .order_by(analyses.c.source))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    # -- similar items (closetai.insights.similar keeps the vectors in memory; these feed it) ------------------
    def embedding_state(self, model: str) -> tuple[int, int]:
        """(rows made by `model`, max id of all rows): the in-memory index reloads when either moves
        (a reindex rewrites rows in place, which raises the first)."""
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).where(embeddings.c.model == model)).scalar_one()
            top = conn.execute(select(func.max(embeddings.c.id))).scalar_one()
        return int(n), int(top or 0)

    def load_embeddings(self, after_id: int = 0, model: str | None = None) -> dict[str, Any]:
        """Rows with id > after_id, in id order: {"ids", "analysis_ids", "labels", "vectors" (N, D) float32}.
        Rows of another dimension than the first are skipped (a half-finished reindex to a new size)."""

        query = (select(embeddings.c.id, embeddings.c.analysis_id, embeddings.c.label, embeddings.c.dim,
                        embeddings.c.vector).where(embeddings.c.id > after_id).order_by(embeddings.c.id))
        if model:
            query = query.where(embeddings.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        dim = rows[0][3] if rows else 0
        rows = [r for r in rows if r[3] == dim]
        vectors = (np.frombuffer(b"".join(r[4] for r in rows), dtype="<f2").reshape(len(rows), dim)
                   .astype(np.float32) if rows else np.zeros((0, 0), np.float32))
        return {"ids": np.array([r[0] for r in rows], dtype=np.int64),
                "analysis_ids": np.array([r[1] for r in rows], dtype=np.int64),
                "labels": [r[2] for r in rows], "vectors": vectors}

    def get_items(self, item_ids: list[int]) -> list[dict[str, Any]]:
        """Garments by item (embedding row) id, in the order asked, unknown ids left out. Each: id, kind
        ('photo' | 'video'), analysis_id, label, score, colour_name, colour_hex, crop_path, filename,
        source, idx (photo detection) or track_no and time_s (the video moment of its best view)."""
        if not item_ids:
            return []
        e, d, t, a = embeddings.c, detections.c, tracks.c, analyses.c
        best_time = (select(d.time_s).where(d.track_id == t.id).order_by(d.score.desc()).limit(1)
                     .scalar_subquery())
        photo_q = (select(e.id, e.analysis_id, e.label, literal("photo").label("kind"), d.score,
                          d.colour_name, d.colour_hex, d.crop_path, d.idx, literal(None).label("track_no"),
                          literal(None).label("time_s"), a.filename, a.source)
                   .select_from(embeddings.join(detections, d.id == e.detection_id).join(analyses, a.id == e.analysis_id))
                   .where(e.id.in_(item_ids)))
        video_q = (select(e.id, e.analysis_id, e.label, literal("video").label("kind"),
                          t.best_score.label("score"), t.colour_name, t.colour_hex, t.crop_path,
                          literal(None).label("idx"), t.track_no, best_time.label("time_s"), a.filename, a.source)
                   .select_from(embeddings.join(tracks, t.id == e.track_id).join(analyses, a.id == e.analysis_id))
                   .where(e.id.in_(item_ids)))
        with self.engine.connect() as conn:
            rows = {r["id"]: dict(r) for r in conn.execute(union_all(photo_q, video_q)).mappings()}
        return [rows[i] for i in item_ids if i in rows]

    def get_item(self, item_id: int) -> dict[str, Any]:
        found = self.get_items([item_id])
        if not found:
            raise NotFound(f"item {item_id} not found")
        return found[0]

    def items_of_analysis(self, analysis_id: int) -> dict[str, dict[int, int]]:
        """{"detections": {idx: item id}, "tracks": {track_no: item id}} of one analysis."""
        e = embeddings.c
        with self.engine.connect() as conn:
            dets = conn.execute(select(detections.c.idx, e.id).select_from(
                embeddings.join(detections, detections.c.id == e.detection_id)).where(e.analysis_id == analysis_id)).all()
            trks = conn.execute(select(tracks.c.track_no, e.id).select_from(
                embeddings.join(tracks, tracks.c.id == e.track_id)).where(e.analysis_id == analysis_id)).all()
        return {"detections": dict(dets), "tracks": dict(trks)}

    def garments_to_embed(self, model: str | None = None) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """Garments without an embedding made by `model` (None: every garment), grouped by analysis:
        {analysis_id: {"detections": [detection rows of a photo], "tracks": [track rows]}}."""
        e = embeddings.c
        fresh = select(e.detection_id).where(e.detection_id.is_not(None))
        fresh_t = select(e.track_id).where(e.track_id.is_not(None))
        if model is not None:
            fresh, fresh_t = fresh.where(e.model == model), fresh_t.where(e.model == model)
        else:
            fresh, fresh_t = fresh.where(literal(False)), fresh_t.where(literal(False))
        photo_dets = (select(detections).join(analyses, analyses.c.id == detections.c.analysis_id)
                      .where(analyses.c.kind == "photo", detections.c.id.not_in(fresh))
                      .order_by(detections.c.analysis_id, detections.c.idx))
        video_trks = select(tracks).where(tracks.c.id.not_in(fresh_t)).order_by(tracks.c.analysis_id, tracks.c.track_no)
        out: dict[int, dict[str, list[dict[str, Any]]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(photo_dets).mappings():
                out.setdefault(r["analysis_id"], {"detections": [], "tracks": []})["detections"].append(_detection_dict(r))
            for r in conn.execute(video_trks).mappings():
                out.setdefault(r["analysis_id"], {"detections": [], "tracks": []})["tracks"].append(dict(r))
        return dict(sorted(out.items()))

    def best_view(self, track_id: int) -> dict[str, Any] | None:
        """The track's highest-score detection row (its crop is that sighting's box)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(detections).where(detections.c.track_id == track_id)
                               .order_by(detections.c.score.desc(), detections.c.id).limit(1)).mappings().first()
        return _detection_dict(row) if row else None

    def put_embeddings(self, analysis_id: int, model: str, rows: list[dict[str, Any]]) -> int:
        """Insert or replace embeddings (reindex). rows: {"detection_id" or "track_id", "label", "vector"}.
        A replaced row keeps its id, so item links stay valid. Returns the rows written."""

        with self._begin() as conn:
            for r in rows:
                key = embeddings.c.detection_id if r.get("detection_id") is not None else embeddings.c.track_id
                value = r.get("detection_id") if r.get("detection_id") is not None else r["track_id"]
                fields = {"model": model, "dim": len(r["vector"]), "vector": to_blob(r["vector"]), "label": r["label"]}
                if conn.execute(embeddings.update().where(key == value).values(**fields)).rowcount == 0:
                    conn.execute(embeddings.insert().values(
                        analysis_id=analysis_id, detection_id=r.get("detection_id"), track_id=r.get("track_id"),
                        **fields))
        return len(rows)

    # -- jobs (video path; the runner lives elsewhere) --------------------------------------------
    def create_job(self, kind: str, analysis_id: int | None = None, total: int | None = None,
                   params: Mapping[str, Any] | None = None) -> int:
        with self._begin() as conn:
            return int(conn.execute(jobs.insert().values(
                kind=kind, analysis_id=analysis_id, status="queued", done=0, total=total,
                params=json.dumps(dict(params)) if params else None, created_at=utcnow(),
            )).inserted_primary_key[0])

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Update status/progress; stamps started_at, finished_at and heartbeat_at as status moves."""
        allowed = {"status", "done", "total", "error", "analysis_id", "params"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_job: unknown fields {sorted(unknown)}")
        if "status" in fields and fields["status"] not in JOB_STATUSES:
            raise ValueError(f"update_job: status must be one of {JOB_STATUSES}")
        if isinstance(fields.get("params"), Mapping):
            fields["params"] = json.dumps(dict(fields["params"]))
        now = utcnow()
        values = dict(fields, heartbeat_at=now)
        if fields.get("status") == "running":
            values["started_at"] = now
        if fields.get("status") in ("done", "failed"):
            values["finished_at"] = now
        with self._begin() as conn:
            if conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values)).rowcount == 0:
                raise NotFound(f"job {job_id} not found")

    def get_job(self, job_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        out = dict(row)
        out["params"] = json.loads(out["params"]) if out["params"] else {}
        return out

    def list_jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.id)
        if status:
            query = query.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def claim_job(self, job_id: int, params: Mapping[str, Any] | None = None) -> bool:
        """queued -> running, atomically: True for exactly one caller however many workers (threads or
        processes) race for the job. `params` (e.g. with the worker's identity) replace the stored ones."""
        now = utcnow()
        values: dict[str, Any] = {"status": "running", "started_at": now, "heartbeat_at": now}
        if params is not None:
            values["params"] = json.dumps(dict(params))
        with self._begin() as conn:
            return conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "queued")
                                .values(**values)).rowcount == 1

    def fail_job(self, job_id: int, error: str, only_if: tuple[str, ...] = ("queued", "running")) -> bool:
        """Mark a job failed unless it already finished (a sweep must not overwrite a 'done')."""
        now = utcnow()
        with self._begin() as conn:
            return conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(only_if))
                                .values(status="failed", error=error, finished_at=now, heartbeat_at=now)
                                ).rowcount == 1

    def job_for_analysis(self, analysis_id: int) -> int | None:
        """The job that produced an analysis (videos), if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(jobs.c.id).where(jobs.c.analysis_id == analysis_id)
                                .order_by(jobs.c.id.desc()).limit(1)).scalar_one_or_none()

    def recent_jobs(self, kind: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first, params decoded, with the analysis' track count when done."""
        n_tracks = (select(func.count()).select_from(tracks).where(tracks.c.analysis_id == jobs.c.analysis_id)
                    .scalar_subquery().label("n_tracks"))
        query = select(jobs, n_tracks).where(jobs.c.kind == kind).order_by(jobs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for r in rows:
            r["params"] = json.loads(r["params"]) if r["params"] else {}
        return rows

    # -- scale-out (issue 8): Celery workers take over a dead worker's job; fanned-out ingest --------
    def requeue_job(self, job_id: int, dead_worker: Mapping[str, Any] | None,
                    params: Mapping[str, Any]) -> bool:
        """running -> queued with new `params`, atomically, and only while the row still names
        `dead_worker` (the claim the caller found dead): of several workers taking over, one wins."""
        with self._begin() as conn:
            raw = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id, jobs.c.status == "running")
                               ).scalar_one_or_none()
            if raw is None or (json.loads(raw) if raw else {}).get("worker") != dead_worker:
                return False
            return conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running",
                                                    jobs.c.params == raw)
                                .values(status="queued", params=json.dumps(dict(params)), heartbeat_at=utcnow())
                                ).rowcount == 1

    def active_jobs_by_sha256(self, kinds: tuple[str, ...] = ("photo", "video")) -> dict[str, int]:
        """{content sha256: job id} of queued or running jobs: files already on their way into the store."""
        query = (select(jobs.c.id, jobs.c.params)
                 .where(jobs.c.kind.in_(kinds), jobs.c.status.in_(("queued", "running"))).order_by(jobs.c.id))
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for job_id, raw in conn.execute(query):
                sha = (json.loads(raw) if raw else {}).get("sha256")
                if sha:
                    out.setdefault(sha, int(job_id))
        return out

    def job_states(self, job_ids: list[int]) -> dict[int, dict[str, Any]]:
        """{id: {status, analysis_id, error}} for many jobs in one query per 500 (an ingest's progress)."""
        out: dict[int, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(job_ids), 500):
                query = (select(jobs.c.id, jobs.c.status, jobs.c.analysis_id, jobs.c.error)
                         .where(jobs.c.id.in_(job_ids[i:i + 500])))
                out.update({int(r["id"]): dict(r) for r in conn.execute(query).mappings()})
        return out


def _insert_embeddings(conn: Connection, analysis_id: int, model: str, dets: list[NewDetection],
                       trks: list[NewTrack], track_ids: dict[int, int]) -> None:
    """Embedding rows for the photo detections and tracks of a new analysis that carry a vector."""
    if not any(d.embedding is not None for d in dets) and not any(t.embedding is not None for t in trks):
        return
    det_ids = dict(conn.execute(select(detections.c.idx, detections.c.id)
                                .where(detections.c.analysis_id == analysis_id)).all())
    rows = [{"analysis_id": analysis_id, "detection_id": det_ids[i], "track_id": None, "label": d.label,
             "model": model, "dim": len(d.embedding), "vector": to_blob(d.embedding)}
            for i, d in enumerate(dets) if d.embedding is not None and d.track_no is None]
    rows += [{"analysis_id": analysis_id, "detection_id": None, "track_id": track_ids[t.track_no], "label": t.label,
              "model": model, "dim": len(t.embedding), "vector": to_blob(t.embedding)}
             for t in trks if t.embedding is not None]
    if rows:
        conn.execute(embeddings.insert(), rows)


def _labels_by_analysis(conn: Connection, table: Table, ids: list[int]) -> list:
    """(analysis_id, label, count) of a detections or tracks table for these analyses, most common first."""
    if not ids:
        return []
    return conn.execute(select(table.c.analysis_id, table.c.label, func.count())
                        .where(table.c.analysis_id.in_(ids))
                        .group_by(table.c.analysis_id, table.c.label)
                        .order_by(func.count().desc(), table.c.label)).all()


def _detection_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(row)
    d["mask_rle"] = json.loads(d["mask_rle"]) if d["mask_rle"] else None
    d["box"] = [d["x1"], d["y1"], d["x2"], d["y2"]]
    return d


_LABEL_END = "\x1f"


def _counted_garments(sources: list[str] | None, since: date | None, until: date | None,
                      kind: str | None, min_score: float | None, per_analysis: bool = False,
                      dialect: str = "sqlite", per_person: bool | None = None):
    """SELECT of one row per counted garment (report_items' columns): photo detections, video tracks.

    per_analysis: one row per analysis instead (analysis_id, captured_at, labels: its distinct labels,
    each followed by _LABEL_END, comma-separated). Grouped by analyses.id, which SQLite scans in order,
    so it needs no sort (~70 ms on 100k garments; a DISTINCT (analysis, label) self-join took ~180 ms).

    per_person (with per_analysis): True: one row per person wearing garments, in photos whose model
    found people; False: only the analyses without people (clips, and photos of a model without the
    class); None: every analysis.
    """
    a = analyses.c
    # captured_at as text: SQLAlchemy's per-row datetime parsing cost more than the query itself
    # (100k rows); pandas parses the ISO strings in one vectorised pass.
    when = cast(a.captured_at, String).label("captured_at")
    parts = []
    for media, table, score in (("photo", detections, detections.c.score), ("video", tracks, tracks.c.best_score)):
        if kind not in (None, media):
            continue
        if per_person and media == "video":
            continue  # tracks are not assigned to people
        if per_analysis:
            # group_concat(DISTINCT x) takes no separator argument in SQLite (it joins with ","), hence
            # the terminator; PostgreSQL's string_agg takes DISTINCT and the same "," explicitly.
            term = (table.c.label + _LABEL_END).distinct()
            labels = (func.string_agg(term, literal(",")) if dialect == "postgresql" else func.group_concat(term))
            columns = [a.id.label("analysis_id"), when, labels.label("labels")]
        else:
            columns = [a.id.label("analysis_id"), a.kind, a.source, when, table.c.label, score.label("score"),
                       table.c.colour_name, table.c.colour_hex]
        query = (select(*columns).select_from(table.join(analyses, table.c.analysis_id == a.id))
                 .where(a.kind == media, *_analysis_filters(sources, since, until)))
        if min_score is not None:
            query = query.where(score >= min_score)
        if per_person:
            query = query.where(a.people.is_not(None), detections.c.person.is_not(None))
            parts.append(query.group_by(a.id, detections.c.person))
            continue
        if per_person is False:
            query = query.where(a.people.is_(None))
        parts.append(query.group_by(a.id) if per_analysis else query)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _analysis_filters(sources: list[str] | None, since: date | None, until: date | None) -> list:
    """WHERE clauses on analyses shared by the report queries. `until` is inclusive: < the next day.

    A copy of a file stored again (copy_of set) is never counted: each distinct file (content sha256)
    counts once, as its first stored analysis, with that one's source and date (issue 17.2)."""
    clauses = [analyses.c.copy_of.is_(None)]
    if sources:
        clauses.append(analyses.c.source.in_(list(sources)))
    if since is not None:
        clauses.append(analyses.c.captured_at >= datetime.combine(since, datetime.min.time()))
    if until is not None and until < date.max:  # until 9999-12-31 has no next day and bounds nothing
        clauses.append(analyses.c.captured_at < datetime.combine(until + timedelta(days=1), datetime.min.time()))
    return clauses


MIGRATIONS = Path(__file__).with_name("migrations")
_PRE_MIGRATION_REVISION = "0001"  # the schema metadata.create_all made before migrations existed


# The blob encoding lives here, not in closetai.vision.embed: that module imports torch, and the database layer
# must not (an import inside a write transaction held SQLite's lock for seconds).
def to_blob(vector: np.ndarray) -> bytes:
    """float16 little-endian bytes: half the space of float32; cosine scores move by < 1e-3."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f2")
    if v.size != dim:
        raise ValueError(f"embedding blob holds {v.size} values, expected {dim}")
    return v.astype(np.float32)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations in closetai/storage/migrations up to `revision` (idempotent).

    A database made before migrations existed (tables, no alembic_version) is stamped with 0001 first.
    Several processes may start at once (web + workers): PostgreSQL serialises them with an advisory
    lock, SQLite with BEGIN IMMEDIATE; the later ones find the schema upgraded and carry on.
    """
    import time

    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import DBAPIError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(72620011)"))
                elif engine.dialect.name == "sqlite":
                    # The write lock before the first read: otherwise a process that read "no revision"
                    # just before another committed the schema would stamp it as pre-migration.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                current = MigrationContext.configure(conn).get_current_revision()
                if current == head and revision == "head":
                    return
                config.attributes["connection"] = conn
                if current is None and "analyses" in inspect(conn).get_table_names():
                    command.stamp(config, _PRE_MIGRATION_REVISION)
                    current = _PRE_MIGRATION_REVISION
                command.upgrade(config, revision)
            log.info("database schema %s to revision %s (%s)", "created" if current is None else
                     f"upgraded from revision {current}", revision if revision != "head" else head,
                     engine.url.render_as_string(hide_password=True))
            return
        except DBAPIError as exc:
            # Another process created the same tables a moment earlier ("already exists") or holds the
            # SQLite write lock: look again.
            if attempt == 4:
                raise StoreError(f"cannot migrate the database schema ({exc.orig})") from exc
            time.sleep(0.2 * (attempt + 1))


def store_from_env(instance: str | os.PathLike | None = None, database_url: str | None = None) -> Store:
    """The database and media folder the web app uses (app.py), for the CLI and the workers: `instance`
    or $CLOSETAI_INSTANCE, else instance/ beside app.py; `database_url` or $CLOSETAI_DATABASE_URL, else
    the SQLite file in it; $CLOSETAI_MEDIA_ROOT, else instance/media. Opens it; creates nothing."""
    from closetai import settings

    cfg = settings.load()
    folder = Path(instance or cfg["INSTANCE"] or Path(__file__).resolve().parents[2] / "instance")
    url = database_url or cfg["DATABASE_URL"] or default_sqlite_url(folder)
    return Store(url, cfg["MEDIA_ROOT"] or folder / "media")


def default_sqlite_url(instance_path: str | os.PathLike) -> str:
    return f"sqlite:///{Path(instance_path).resolve() / 'closetai.sqlite'}"

