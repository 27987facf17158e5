"""Jobs in a store's jobs table, set up by hand: a queued video job, one marked running by some worker
with a heartbeat of a given age, a pid that is certainly dead."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from closetai.jobs.runner import VideoSettings, create_video_job, save_upload
from closetai.storage.store import Store, jobs, utcnow
from tests.media_helpers import panned_frames, write_clip


def queued_video(store: Store, tmp_path: Path, n: int = 10) -> int:
    clip = write_clip(tmp_path / f"c{uuid.uuid4().hex[:6]}.mp4", panned_frames(n), fps=10)
    with open(clip, "rb") as f:
        upload = save_upload(store, f, "clip.mp4")
    return create_video_job(store, upload, "clip.mp4", "", VideoSettings())


def set_running(store: Store, job_id: int, worker: dict | None, heartbeat_age_s: float) -> None:
    params = store.get_job(job_id)["params"]
    if worker is not None:
        params["worker"] = worker
    assert store.claim_job(job_id, params)
    with store.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id)
                     .values(heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age_s)))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists (a zombie would still answer kill(pid, 0))
    return proc.pid


def uploads(store: Store) -> list[Path]:
    root = store.media_root / "uploads"
    return sorted(root.rglob("*")) if root.exists() else []
