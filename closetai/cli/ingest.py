"""`closetai ingest`: a folder of photos and clips into the web app's database, here or on workers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from closetai import ClosetAIError
from closetai.cli.common import _add_store_options, _open_store, settings_load, video_settings


def _cmd_ingest(a: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from closetai.ingest import ingest_folder

    store = _open_store(a)
    broker = a.broker_url or settings_load()["BROKER_URL"]
    if broker:
        return _ingest_on_workers(a, store, broker)

    def load_predictor():
        from closetai.vision.predict import Predictor

        return Predictor(a.model, device=a.device, threads=a.threads)

    def progress(files, total):
        return tqdm(files, total=total, unit="photo", desc="ingest", disable=a.quiet)

    started = time.perf_counter()
    summary = ingest_folder(a.folder, store, load_predictor, source=a.source, recursive=a.recursive,
                            pattern=a.glob, limit=a.limit, min_score=a.min_score, progress=progress)
    for path, why in summary.unreadable:
        print(f"unreadable: {path}: {why}", file=sys.stderr)
    for path, why in summary.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    videos_ok = 0
    if summary.videos_skipped and not summary.interrupted:
        videos_ok, interrupted = _ingest_videos(a, store, summary.videos_skipped, load_predictor)
        summary.interrupted = interrupted
    line = summary.line().split(", ")
    line = [part for part in line if not part.endswith("video ingest not supported yet")]
    if summary.videos_skipped:
        line.append(f"{videos_ok} of {len(summary.videos_skipped)} videos stored")
    print(f"{a.folder}: {', '.join(line)} in {time.perf_counter() - started:.0f} s; database {store.url}")
    if summary.interrupted:
        print("closetai: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if not summary.ingested and not summary.already and not videos_ok:
        raise ClosetAIError(f"nothing could be read in {a.folder}")
    return 0


def _ingest_on_workers(a: argparse.Namespace, store, broker: str) -> int:
    """`closetai ingest` with a broker: one job per new file for `closetai worker` processes, then a
    progress bar over the jobs and the same summary line as the in-process ingest (or, with --no-wait,
    what was queued)."""
    import time

    from kombu.exceptions import OperationalError
    from tqdm import tqdm

    from closetai.ingest import collect_jobs, queue_folder
    from closetai.jobs.worker import CeleryJobRunner

    started = time.perf_counter()
    settings = video_settings()
    runner = CeleryJobRunner(broker)
    try:
        fan = queue_folder(a.folder, store, runner.submit, source=a.source, recursive=a.recursive,
                           pattern=a.glob, limit=a.limit, min_score=a.min_score, video_settings=settings)
    except OperationalError as exc:
        raise ClosetAIError(f"cannot reach the broker ({exc}); the jobs made so far stay queued and are "
                            "sent again when this command is run again") from exc
    summary = fan.summary
    n_videos = len(summary.videos_skipped)
    if a.no_wait:
        print(f"{a.folder}: {len(fan.jobs)} files queued for the workers ({fan.submitted} sent now), "
              f"{len(summary.already)} already ingested, {len(summary.unreadable)} unreadable; "
              f"database {store.url}")
        return 0
    with tqdm(total=len(fan.jobs), unit="file", desc="ingest (workers)", disable=a.quiet) as bar:
        collect_jobs(fan, store, on_finished=bar.update)
    for path, why in summary.unreadable:
        print(f"unreadable: {path}: {why}", file=sys.stderr)
    for path, why in summary.failed + summary.videos_failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    line = [part for part in summary.line().split(", ") if not part.endswith("video ingest not supported yet")]
    if n_videos:
        line.append(f"{summary.videos_stored} of {n_videos} videos stored")
    print(f"{a.folder}: {', '.join(line)} in {time.perf_counter() - started:.0f} s; database {store.url}")
    if summary.interrupted:
        print("closetai: interrupted; the queued files go on in the workers: run the same command again "
              "to wait for them", file=sys.stderr)
        return 130
    if not summary.ingested and not summary.already and not summary.videos_stored:
        raise ClosetAIError(f"nothing could be read in {a.folder}")
    return 0


def _ingest_videos(a: argparse.Namespace, store, videos: list[Path], load_predictor) -> tuple[int, bool]:
    """Clips found by `closetai ingest`: each through the web's video job (closetai.jobs.runner), one at a time.
    Returns (stored or already stored, interrupted)."""

    from closetai.jobs.runner import ingest_video

    settings = video_settings()
    predictor, ok = None, 0
    try:
        for path in videos:
            try:
                if predictor is None and not store.find_by_sha256(_sha256(path)):
                    predictor = load_predictor()
                outcome, job_id, error = ingest_video(store, path, predictor, source=a.source, settings=settings)
            except ClosetAIError as exc:
                print(f"unreadable: {path}: {exc}", file=sys.stderr)
                continue
            if outcome == "failed":
                print(f"failed: {path}: {error}", file=sys.stderr)
                continue
            ok += 1
            if error:  # stored, but only the part before the damage
                print(f"partial: {path}: {error}", file=sys.stderr)
            if not a.quiet:
                print(f"{outcome}: {path}" + (f" (video job {job_id})" if job_id else ""), file=sys.stderr)
    except KeyboardInterrupt:
        return ok, True
    return ok, False


def _sha256(path: Path) -> str:
    from closetai import sha256_file

    return sha256_file(path)


def _add_ingest_command(sub) -> None:
    s = sub.add_parser("ingest", help="analyse every photo in a folder into the web app's database (resumable)")
    s.add_argument("folder")
    s.add_argument("--source", default="", help='label for the report, e.g. "Milan street 2026-10"')
    s.add_argument("--recursive", action="store_true")
    s.add_argument("--glob", help="only file names matching this pattern, e.g. '1*.jpg'")
    s.add_argument("--limit", type=int, help="at most this many photos (in path order)")
    s.add_argument("--model")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.add_argument("--min-score", type=float)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--broker-url", help="queue the files for `closetai worker` processes (default $CLOSETAI_BROKER_URL; "
                                        "unset: analyse here)")
    s.add_argument("--no-wait", action="store_true", help="with a broker: queue the files and return at once")
    _add_store_options(s)
    s.set_defaults(func=_cmd_ingest)
