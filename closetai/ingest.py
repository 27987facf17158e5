"""Bulk ingest: analyse every photo in a folder into the store, resumably.

Two ways: ingest_folder analyses here, one photo after another; with a queue (CLOSETAI_BROKER_URL),
queue_folder makes one job per new file for the workers (closetai.jobs.worker) and collect_jobs waits for them.

Each photo goes through closetai.analysis.photo.analyse_photo (the same path as a web upload) and is stored in
its own transaction, so a killed run loses at most the photo in flight; a re-run skips every file whose
content sha256 is already stored. Unreadable files are collected and reported, never fatal.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from closetai import ClosetAIError
from closetai.analysis.photo import analyse_photo
from closetai.storage.store import Store, StoreError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"}


class IngestError(ClosetAIError):
    """The folder cannot be ingested at all (missing, not a folder, no photos)."""


@dataclass
class IngestSummary:
    ingested: list[tuple[Path, int]] = field(default_factory=list)  # (file, new analysis id)
    already: list[Path] = field(default_factory=list)  # content hash already stored
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # decoded, but analysis raised (a bug)
    videos_skipped: list[Path] = field(default_factory=list)
    videos_stored: int = 0  # queue_folder/collect_jobs only: clips of videos_skipped stored (now or before)
    videos_failed: list[tuple[Path, str]] = field(default_factory=list)  # (clip, why): refused or job failed
    garments: int = 0
    interrupted: bool = False

    @property
    def seen(self) -> int:
        return len(self.ingested) + len(self.already) + len(self.unreadable) + len(self.failed)

    def line(self) -> str:
        parts = [f"{len(self.ingested)} ingested ({self.garments} garments)",
                 f"{len(self.already)} already ingested", f"{len(self.unreadable)} unreadable"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed (analysis error; retried next run)")
        if self.videos_skipped:
            parts.append(f"{len(self.videos_skipped)} videos skipped: video ingest not supported yet")
        return ("interrupted: " if self.interrupted else "") + ", ".join(parts)


class _LazyPredictor:
    """Loads the model on first use: re-running over a finished folder (or one whose only new files are
    unreadable, which fail at decoding, before inference) never pays the seconds a model load takes."""

    def __init__(self, factory: Callable[[], object]):
        self._factory = factory
        self._predictor = None

    def _get(self):
        if self._predictor is None:
            self._predictor = self._factory()
        return self._predictor

    def __call__(self, *args, **kwargs):
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._get(), name)


def find_media(folder: str | os.PathLike, recursive: bool = False, pattern: str | None = None,
               ) -> tuple[list[Path], list[Path]]:
    """(photos, videos) in the folder, by suffix, sorted by path so runs and resumes go in one order.

    Suffixes only pick candidates; the content decides whether a "photo" is readable.
    """
    root = Path(folder)
    if not root.is_dir():
        raise IngestError(f"not a folder: {folder}")
    glob = pattern or "*"
    paths = root.rglob(glob) if recursive else root.glob(glob)
    files = sorted(p for p in paths if p.is_file() and not p.name.startswith("."))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    return photos, videos


def ingest_folder(folder: str | os.PathLike, store: Store, predictor_factory: Callable[[], object], *,
                  source: str = "", recursive: bool = False, pattern: str | None = None,
                  limit: int | None = None, min_score: float | None = None,
                  max_side: int | None = None, progress: Callable[[Iterator, int], Iterator] | None = None,
                  ) -> IngestSummary:
    """Analyse and store each new photo; returns what happened to every file.

    `predictor_factory` is called only when a first new, decodable photo turns up. `progress` wraps the file iterator (e.g. tqdm).
    KeyboardInterrupt stops the run cleanly: the summary so far is returned with interrupted=True.
    """
    photos, videos = find_media(folder, recursive, pattern)
    if limit is not None:
        photos = photos[:limit]
    if not photos and not videos:
        raise IngestError(f"no photos in {folder} (looked for {', '.join(sorted(PHOTO_SUFFIXES))})")
    summary = IngestSummary(videos_skipped=videos)
    predictor = _LazyPredictor(predictor_factory)
    extra = {} if max_side is None else {"max_side": max_side}
    files: Iterator[Path] = iter(photos)
    if progress is not None:
        files = progress(files, len(photos))
    try:
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                summary.unreadable.append((path, exc.strerror or str(exc)))
                continue
            if store.find_by_sha256(hashlib.sha256(data).hexdigest()):
                summary.already.append(path)
                continue
            try:
                analysis_id = analyse_photo(data, path.name, predictor=predictor, store=store, source=source,
                                            min_score=min_score, **extra)
            except StoreError:
                raise  # the database is the problem, not the file: stop rather than fail every file
            except ClosetAIError as exc:
                summary.unreadable.append((path, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001
                # A bug on one photo (a 1-pixel mask broke colour naming on CCP) must not end a run of
                # a thousand: it is reported with the file, and the next run retries the file.
                summary.failed.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            summary.ingested.append((path, analysis_id))
            summary.garments += store.count_detections(analysis_id)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


# ---- fanned out to queue workers (closetai.jobs.worker; CLOSETAI_BROKER_URL set) -------------------------

@dataclass
class FanOut:
    """A folder turned into jobs: `jobs` is (file, job id, kind) for each file on its way into the store,
    new ones and those an earlier run left queued or running; the rest is already in `summary`."""

    summary: IngestSummary
    jobs: list[tuple[Path, int, str]] = field(default_factory=list)
    submitted: int = 0

    @property
    def job_ids(self) -> list[int]:
        return [job_id for _, job_id, _ in self.jobs]


def queue_folder(folder: str | os.PathLike, store: Store, submit: Callable[[int], None], *, source: str = "",
                 recursive: bool = False, pattern: str | None = None, limit: int | None = None,
                 min_score: float | None = None, max_side: int | None = None, video_settings=None) -> FanOut:
    """One job per new file (kind 'photo' or 'video'), each handed to `submit` (a queue). Skips content
    already stored or already queued (sha256, as ingest_folder); a job an earlier run left 'queued' is
    submitted again, in case its message was lost (a duplicate message is a no-op: closetai.jobs.worker).

    Clips are probed here (a bad one is unreadable at once, as in the web upload); photos are decoded by
    the worker, whose job then fails with the reader's message (collect_jobs files it as unreadable).
    """
    from closetai import sha256_file
    from closetai.jobs.runner import VideoSettings, create_photo_job, create_video_job, save_upload

    photos, videos = find_media(folder, recursive, pattern)
    if limit is not None:
        photos = photos[:limit]
    if not photos and not videos:
        raise IngestError(f"no photos in {folder} (looked for {', '.join(sorted(PHOTO_SUFFIXES))})")
    out = FanOut(IngestSummary(videos_skipped=videos))
    summary = out.summary
    active = store.active_jobs_by_sha256()
    earlier: list[int] = []
    this_run: set[str] = set()
    for path, kind in [(p, "photo") for p in photos] + [(v, "video") for v in videos]:
        try:
            sha = sha256_file(path)
        except OSError as exc:
            summary.unreadable.append((path, exc.strerror or str(exc)))
            continue
        if sha in this_run or store.find_by_sha256(sha):
            if kind == "photo":
                summary.already.append(path)
            else:  # as `closetai ingest` counts clips: "N of M videos stored"
                summary.videos_stored += 1
            continue
        this_run.add(sha)
        if sha in active:
            out.jobs.append((path, active[sha], kind))
            earlier.append(active[sha])
            continue
        try:
            if kind == "photo":
                job_id = create_photo_job(store, path, source, sha256=sha, min_score=min_score, max_side=max_side)
            else:
                with open(path, "rb") as f:
                    upload = save_upload(store, f, path.name)
                job_id = create_video_job(store, upload, path.name, source, video_settings or VideoSettings())
        except StoreError:
            raise
        except (ClosetAIError, OSError) as exc:  # unreadable, or a clip refused by the probe: nothing queued
            why = str(exc) if isinstance(exc, ClosetAIError) else exc.strerror or str(exc)
            (summary.unreadable if kind == "photo" else summary.videos_failed).append((path, why))
            continue
        out.jobs.append((path, job_id, kind))
        submit(job_id)
        out.submitted += 1
    states = store.job_states(earlier)
    for job_id in earlier:
        if states.get(job_id, {}).get("status") == "queued":
            submit(job_id)
            out.submitted += 1
    return out


def collect_jobs(fan: FanOut, store: Store, on_finished: Callable[[int], None] | None = None,
                 poll_s: float = 0.5) -> IngestSummary:
    """Wait until every job of `fan` is done or failed and fill its summary as ingest_folder would:
    a done photo is ingested (its garments counted), a failed one unreadable (the reader's message) or
    failed (an internal error). Clips are counted in `videos_stored`. `on_finished(n)` is called with
    the number of jobs that finished since its last call (a progress bar). KeyboardInterrupt stops the
    wait (the jobs go on in the workers) with summary.interrupted set."""
    import time

    from closetai.jobs.runner import INTERNAL

    summary = fan.summary
    pending = set(fan.job_ids)
    states: dict[int, dict] = {}
    try:
        while pending:
            now = store.job_states(sorted(pending))
            finished = {i: s for i, s in now.items() if s["status"] in ("done", "failed")}
            finished.update({i: {"status": "failed", "error": "the job was deleted", "analysis_id": None}
                             for i in pending - set(now)})
            states.update(finished)
            pending -= set(finished)
            if finished and on_finished:
                on_finished(len(finished))
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        summary.interrupted = True
    for path, job_id, kind in fan.jobs:
        state = states.get(job_id)
        if state is None:
            continue
        if kind == "video":
            summary.videos_stored += state["status"] == "done"
            if state["status"] == "failed":
                summary.videos_failed.append((path, state["error"] or INTERNAL))
        elif state["status"] == "done" and state["analysis_id"] is not None:
            summary.ingested.append((path, int(state["analysis_id"])))
            summary.garments += store.count_detections(int(state["analysis_id"]))
        elif state["error"] == INTERNAL:
            summary.failed.append((path, state["error"]))
        else:
            summary.unreadable.append((path, state["error"] or "analysis failed"))
    return summary
