"""Benchmark the video engine end to end: clip -> tracked garments + playable annotated H.264.

    python bench/bench_video.py [CLIP] [--seconds 15] [--fps 5] [--threads 2] [--model M]

Uses ../shared/data/videos/street-clip-b.mp4 (cut to --seconds) when present, else a generated
720x1280 clip (a CCP photo, or noise, panned). Prints frames/s analysed, total seconds, where the time
went (decode, inference, tracking, annotate+encode) and peak RSS. On CUDA it also runs at full frame
rate (target there: >= 60 frames/s analysed). Target on the 2-core CPU: <= 60 s for 15 s at 5 fps.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from closetai.analysis.video import analyse_video, default_batch_size  # noqa: E402
from closetai.media.video import H264Writer, iter_frames, probe_video  # noqa: E402
from closetai.vision.predict import Predictor  # noqa: E402

SHARED = ROOT.parent / "shared"


def make_clip(out: Path, seconds: float, source: Path | None) -> Path:
    """A `seconds`-long 720x1280 30 fps clip: the first seconds of `source` (with its sound), or a panned
    photo (silent)."""
    if source is not None and source.is_file():
        with H264Writer(out, fps=probe_video(source).fps, preset="ultrafast", audio_from=source) as w:
            for frame in iter_frames(source, fps=None):
                if frame.time >= seconds:
                    break
                w.write(frame.rgb)
        return out
    photo_path = SHARED / "data" / "ccp" / "photos" / "0010.jpg"
    if photo_path.is_file():
        from PIL import Image

        photo = np.asarray(Image.open(photo_path).convert("RGB").resize((900, 1350)))
    else:
        photo = np.random.default_rng(0).integers(0, 255, (1350, 900, 3), dtype=np.uint8)
    n = int(seconds * 30)
    with H264Writer(out, fps=30, preset="ultrafast") as w:
        for i in range(n):
            x = int(180 * i / n)
            w.write(photo[30:1310, x:x + 720])
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(predictor: Predictor, clip: Path, fps: float | None, batch_size: int | None, tmp: Path) -> dict:
    out = tmp / f"annotated-{fps or 'all'}.mp4"
    t0 = time.perf_counter()
    batch_size = batch_size or default_batch_size(predictor)
    result = analyse_video(predictor, clip, fps=fps, annotated_out=out, batch_size=batch_size)
    total = time.perf_counter() - t0
    with av.open(str(out)) as c:
        playable = c.streams.video[0].codec_context.name == "h264" and next(c.decode(video=0), None) is not None
    n = len(result.frames)
    return {"clip": clip.name, "clip_seconds": round(result.info.duration_s, 2), "analysis_fps": fps or "all",
            "device": str(predictor.device), "min_size": predictor.meta["config"]["min_size"],
            "batch_size": batch_size, "frames_analysed": n, "total_s": round(total, 2),
            "frames_per_s": round(n / total, 2), "tracks": len(result.tracks),
            "time_s": {k: round(v, 2) for k, v in result.timings.items()},
            "inference_s_per_frame": round(result.timings["inference"] / max(n, 1), 3),
            "annotated_playable_h264": playable, "peak_rss_mb": round(peak_rss_mb())}


def ab_rounds(predictor: Predictor, clip: Path, a: argparse.Namespace, tmp: Path) -> None:
    from closetai.vision.model import TEST_TIME_CHANGES

    plain = Predictor(a.model, device=a.device, threads=a.threads, min_size=a.min_size,
                      overrides=dict.fromkeys(TEST_TIME_CHANGES, False))
    plain(np.zeros((1280, 720, 3), dtype=np.uint8))
    for i in range(a.ab):
        for name, pred in (("with test-time changes", predictor), ("without", plain)):
            row = run(pred, clip, a.fps, a.batch_size, tmp)
            print(f"A/B round {i + 1} {name:>22s}: {row['total_s']:6.2f} s (inference {row['time_s']['inference']:.2f} s), "
                  f"{row['tracks']} tracks", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("clip", nargs="?", help="a clip to cut from (default: ../shared street-clip-b.mp4)")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--batch-size", type=int, help="frames per forward pass (default: 1 on a CPU, 8 on a GPU)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-size", type=int, help="inference short side (default: the model's)")
    p.add_argument("--model")
    p.add_argument("--device", default="auto")
    p.add_argument("--ab", type=int, default=0, metavar="ROUNDS",
                   help="also time the model without closetai.vision.model.TEST_TIME_CHANGES, alternating with it for "
                        "ROUNDS rounds in this process (the machine's drift hits both alike)")
    a = p.parse_args()
    source = Path(a.clip) if a.clip else SHARED / "data" / "videos" / "street-clip-b.mp4"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = make_clip(tmp / "bench.mp4", a.seconds, source)
        predictor = Predictor(a.model, device=a.device, threads=a.threads, min_size=a.min_size)
        predictor(np.zeros((1280, 720, 3), dtype=np.uint8))  # warm-up (allocator, cudnn autotune)
        rows = [run(predictor, clip, a.fps, a.batch_size, tmp)]
        if predictor.device.type == "cuda":
            rows.append(run(predictor, clip, None, max(a.batch_size or 8, 8), tmp))
        if a.ab:
            ab_rounds(predictor, clip, a, tmp)
    for row in rows:
        print(json.dumps(row))
        target = "" if row["analysis_fps"] == "all" else f" (target <= 60 s: {'met' if row['total_s'] <= 60 else 'MISSED'})"
        print(f"{row['clip_seconds']} s clip at {row['analysis_fps']} fps on {row['device']}: "
              f"{row['frames_analysed']} frames in {row['total_s']} s = {row['frames_per_s']} frames/s{target}; "
              f"peak RSS {row['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
