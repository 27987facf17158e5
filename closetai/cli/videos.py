"""`closetai video`: garments tracked in a clip -> JSON + annotated mp4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from closetai import ClosetAIError, settings

DEFAULTS = settings.defaults()  # `closetai video` starts from the web app's video settings


def _cmd_video(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from closetai.analysis.track import tracker_config
    from closetai.analysis.video import analyse_video
    from closetai.media.video import VideoLimits, probe_video
    from closetai.training.evaluate import write_json_atomic
    from closetai.vision.predict import Predictor

    limits = VideoLimits(max_duration_s=a.max_duration, max_pixels=a.max_pixels)
    probe_video(a.clip, limits)  # fail on bad input before the model loads
    predictor = Predictor(a.model, device=a.device, min_score=a.min_score, threads=a.threads, min_size=a.min_size)
    with tqdm(total=0, unit="frame", desc=Path(a.clip).name, disable=a.quiet) as bar:
        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = analyse_video(predictor, a.clip, fps=a.fps or None, annotated_out=a.annotated,
                               on_progress=on_progress, batch_size=a.batch_size, limits=limits,
                               min_hits=a.min_hits, annotate_all_frames=a.all_frames,
                               tracker=tracker_config(shot_cuts=not a.no_cuts, reid=not a.no_reid))
    write_json_atomic(result.to_json(), a.json)
    counts = {}
    for t in result.tracks:
        counts[t.label] = counts.get(t.label, 0) + 1
    print(f"{a.clip}: {len(result.frames)} frames analysed, {len(result.tracks)} garments"
          + (f" ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))})" if counts else ""), file=sys.stderr)
    if result.error:
        raise ClosetAIError(f"{result.error}; partial results written to {a.json}")
    return 0


def _add_video_command(sub) -> None:
    s = sub.add_parser("video", help="track garments in a clip -> JSON (tracks, frames, timeline) + annotated mp4")
    s.add_argument("clip")
    s.add_argument("--json", required=True, help="output JSON file")
    s.add_argument("--annotated", help="write an annotated H.264 mp4 here")
    s.add_argument("--all-frames", action=argparse.BooleanOptionalAction, default=DEFAULTS["VIDEO_ANNOTATE_ALL_FRAMES"],
                   help="annotated video holds every frame at the clip's rate, overlays interpolated between "
                        "analysed frames (default); --no-all-frames: only the analysed frames, at --fps")
    s.add_argument("--fps", type=float, default=DEFAULTS["VIDEO_FPS"], help="analysis rate (0 = every frame)")
    s.add_argument("--model")
    s.add_argument("--device", default="auto")
    s.add_argument("--min-score", type=float)
    s.add_argument("--threads", type=int)
    s.add_argument("--batch-size", type=int, help="frames per forward pass (default: 1 on a CPU, 8 on a GPU)")
    s.add_argument("--min-size", type=int, help="inference short side (default: the model's); smaller is faster")
    s.add_argument("--min-hits", type=int, default=3, help="drop tracks seen in fewer analysed frames")
    s.add_argument("--no-cuts", action="store_true",
                   help="keep tracks across shot cuts by position (by default a cut ends position matching)")
    s.add_argument("--no-reid", action="store_true",
                   help="after a cut every garment is new (by default one that looks like a garment of an "
                        "earlier shot continues its track)")
    s.add_argument("--max-duration", type=float, default=DEFAULTS["VIDEO_MAX_DURATION_S"], help="seconds")
    s.add_argument("--max-pixels", type=int, default=DEFAULTS["VIDEO_MAX_PIXELS"], help="per frame")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_video)
