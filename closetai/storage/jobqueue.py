"""The jobs table as a queue: create, claim, progress, finish or fail, take over (issue 8).
The runners that execute jobs live in closetai.jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from closetai.storage.engine import StoreBase
from closetai.storage.errors import NotFound
from closetai.storage.schema import JOB_STATUSES, jobs, tracks, utcnow


class JobQueue(StoreBase):
    """Job rows: what background work (video analysis, queued photos) exists and how far it is."""

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
