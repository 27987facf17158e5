"""The photo job: one file of a fanned-out `closetai ingest`, analysed by a worker as a web upload is
(closetai.analysis.photo)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from closetai import ClosetAIError, sha256_file
from closetai.analysis.photo import clean_text
from closetai.jobs.uploads import save_upload
from closetai.storage.store import Store

if TYPE_CHECKING:
    from closetai.jobs.lifecycle import JobContext


def create_photo_job(store: Store, path: Path, source: str = "", *, sha256: str | None = None,
                     min_score: float | None = None, max_side: int | None = None) -> int:
    """Queue one photo of a bulk ingest: the file is copied under media_root/uploads/ (a worker on another
    machine shares the media folder, not the ingest's folder) and analysed by run_photo_job."""
    with open(path, "rb") as f:
        upload = save_upload(store, f, path.name)
    try:
        params = {"upload": upload.relative_to(store.media_root).as_posix(), "filename": path.name,
                  "source": clean_text(source), "sha256": sha256 or sha256_file(upload), "min_score": min_score,
                  "max_side": max_side}
        return store.create_job("photo", total=1, params=params)
    except BaseException:
        shutil.rmtree(upload.parent, ignore_errors=True)
        raise


def run_photo_job(job_id: int, ctx: JobContext) -> None:
    """Analyse and store one queued photo (closetai.analysis.photo, as a web upload or the in-process ingest).
    The analysis rows and the job's 'done' are one transaction: a redelivered task stores nothing twice.
    An unreadable photo fails the job with the reader's message (ingest reports it as unreadable)."""
    from closetai.analysis.photo import ANALYSIS_MAX_SIDE, analyse_photo

    store = ctx.store
    params = store.get_job(job_id)["params"]
    upload = (store.media_root / params["upload"]).resolve()
    if not upload.is_relative_to(store.media_root) or not upload.is_file():
        raise ClosetAIError("the queued photo is gone (deleted or lost in a restart); ingest it again")
    max_side = params.get("max_side")
    analyse_photo(upload.read_bytes(), params.get("filename", upload.name), predictor=ctx.predictor, store=store,
                  source=params.get("source", ""), min_score=params.get("min_score"), lock=ctx.lock,
                  max_side=ANALYSIS_MAX_SIDE if max_side is None else max_side, finish_job=job_id)
