"""`closetai detect`: garments in photos -> JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from closetai import ClosetAIError


def _cmd_detect(a: argparse.Namespace) -> int:
    from closetai.media.imageio import load_rgb, save_jpeg  # noqa: F401
    from closetai.training.evaluate import write_json_atomic
    from closetai.vision.annotate import annotate
    from closetai.vision.people import with_people
    from closetai.vision.predict import Predictor

    predictor = Predictor(a.model, device=a.device, min_score=a.min_score, threads=a.threads)
    results, failed = [], []
    for path in a.images:
        try:
            rgb, _ = load_rgb(path)
        except ClosetAIError as exc:
            failed.append(str(exc))
            continue
        dets = predictor(rgb)
        items, people = with_people(dets)
        results.append({"image": Path(path).name, "width": rgb.shape[1], "height": rgb.shape[0],
                        "model": {"name": predictor.info["name"], "taxonomy": predictor.info["taxonomy"]},
                        "detections": items, "people": people})
        if a.annotate:
            from PIL import Image

            Path(a.annotate).mkdir(parents=True, exist_ok=True)
            Image.fromarray(annotate(rgb, dets)).save(Path(a.annotate) / f"{Path(path).stem}.png")
        print(f"{path}: {len(dets)} garments" + (f" ({', '.join(dets.labels)})" if len(dets) else ""),
              file=sys.stderr)
    if failed:
        raise ClosetAIError("; ".join(failed))
    if a.json == "-":
        print(json.dumps(results))
    else:
        write_json_atomic(results, a.json)
    return 0


def _add_detect_command(sub) -> None:
    s = sub.add_parser("detect", help="find garments in photos -> JSON (masks as COCO RLE)")
    s.add_argument("images", nargs="+")
    s.add_argument("--json", required=True, help="output file, or - for stdout")
    s.add_argument("--model")
    s.add_argument("--min-score", type=float)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.add_argument("--annotate", help="folder for annotated PNGs")
    s.set_defaults(func=_cmd_detect)
