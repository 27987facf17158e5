"""Bulk ingest: analyse every photo in a folder into the store, resumably.

Each photo goes through closetai.analyse.analyse_photo (the same path as a web upload) and is stored in
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
from closetai.analyse import analyse_photo
from closetai.store import Store, StoreError

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
