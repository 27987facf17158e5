"""Analyses (one photo or video each) with their detections, tracks and media files.

Media paths in rows are relative to `media_root`; the store writes files to temporary names and renames
them into place inside the same transaction that inserts the rows, so a failure leaves neither a row
nor a file behind."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from closetai.storage.embeddings import _insert_embeddings
from closetai.storage.engine import StoreBase
from closetai.storage.errors import JobNotRunning, NotFound, StoreError
from closetai.storage.records import NewAnalysis, NewDetection, NewTrack, _detection_dict
from closetai.storage.schema import analyses, detections, embeddings, jobs, tracks, utcnow

# "summary": a video's per-track JSON as `closetai video` writes it (minus frames) and its timeline:
# fields the tables do not hold (label votes, best box/time, the analysed frame times).
_FILE_NAMES = {"photo": "photo.jpg", "thumb": "thumb.jpg", "video": "video.mp4", "summary": "summary.json"}


class AnalysisStore(StoreBase):
    """Adding, deleting and reading analyses. same_file also asks the job queue (JobQueue, composed
    beside this class into Store) for files still on their way in."""

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
        trks = trks or []
        _check_new(new, dets, trks)
        now = utcnow()
        rel_dir = f"{new.kind}s/{now.strftime('%Y/%m/%d')}/{uuid.uuid4().hex}"
        final_dir = self.media_root / rel_dir
        tmp_dir = self._stage_files(new, dets, trks)
        moved = False
        try:
            with self._begin() as conn:
                analysis_id = _insert_rows(conn, new, dets, trks, rel_dir, now)
                if finish_job is not None:
                    _finish_job(conn, finish_job, analysis_id, job_error, now)
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

    def _stage_files(self, new: NewAnalysis, dets: list[NewDetection], trks: list[NewTrack]) -> Path:
        """The analysis' media files in a fresh hidden folder (removed again if writing fails)."""
        tmp_dir = self.tmp_path("analysis-")
        try:
            self._write_files(tmp_dir, new, dets, trks)
        except OSError as exc:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise StoreError(f"cannot write media files ({exc.strerror})") from exc
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return tmp_dir

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

    def count_detections(self, analysis_id: int) -> int:
        """Detections stored for one analysis (ingest's summary line)."""
        query = select(func.count()).select_from(detections).where(detections.c.analysis_id == analysis_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _labels_by_analysis(conn: Connection, table: Table, ids: list[int]) -> list:
    """(analysis_id, label, count) of a detections or tracks table for these analyses, most common first."""
    if not ids:
        return []
    return conn.execute(select(table.c.analysis_id, table.c.label, func.count())
                        .where(table.c.analysis_id.in_(ids))
                        .group_by(table.c.analysis_id, table.c.label)
                        .order_by(func.count().desc(), table.c.label)).all()


def _check_new(new: NewAnalysis, dets: list[NewDetection], trks: list[NewTrack]) -> None:
    if new.kind not in ("photo", "video"):
        raise ValueError(f"kind must be 'photo' or 'video', not {new.kind!r}")
    track_nos = {t.track_no for t in trks}
    for d in dets:
        if d.track_no is not None and d.track_no not in track_nos:
            raise ValueError(f"detection refers to unknown track_no {d.track_no}")


def _insert_rows(conn: Connection, new: NewAnalysis, dets: list[NewDetection], trks: list[NewTrack],
                 rel_dir: str, now: datetime) -> int:
    """The analysis row, its tracks, detections and embeddings, inside the caller's transaction."""
    def rel(key: str) -> str | None:
        return f"{rel_dir}/{_FILE_NAMES[key]}" if key in new.files else None

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
    return int(analysis_id)


def _finish_job(conn: Connection, job_id: int, analysis_id: int, job_error: str | None, now: datetime) -> None:
    finished = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running")
                            .values(status="done", analysis_id=analysis_id, error=job_error,
                                    finished_at=now, heartbeat_at=now))
    if finished.rowcount == 0:  # failed by a restart sweep meanwhile: keep its verdict
        raise JobNotRunning(f"job {job_id} is no longer running; nothing stored")
