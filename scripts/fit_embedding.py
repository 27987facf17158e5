"""Fit the similar-items whitening (closetai.vision.embed.Whitening) for a model file, on CCP training photos.

    python scripts/fit_embedding.py [--model models/closetai-ccp15.pt] [--ccp ../shared/data/ccp]
                                    [--photos 150] [--copies 2] [--seed 1]

Writes models/<model>.embed.npz (~200 kB), which the Predictor loads next to the model. Only photos
outside the model's validation split are used (bench/eval_similar.py reports on that split). Each
garment (ground-truth mask) is seen as the original plus COPIES augmented copies, the same views
eval_similar makes. The class weight is chosen here, on the training photos alone: fitted on one half
of them and scored on the other (both ways), the largest weight in CLASS_WEIGHTS whose instance mAP@10
stays >= MIN_INSTANCE_MAP on both halves (a stronger class part trades instance recall for same-class
precision). Refit whenever the model is retrained: the file records the model's sha256, and a Predictor
ignores a file fitted on another model (its vectors are then the unwhitened ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from eval_similar import box_of, ccp_views, map_at_k, precision_at_k  # noqa: E402

from closetai.vision.embed import COLOUR_WEIGHT, Whitening, combine, fit_whitening, whitening_path  # noqa: E402

CLASS_WEIGHTS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
MIN_INSTANCE_MAP = 0.85


def training_photos(ccp: Path, val_files: list[str], n: int) -> list[str]:
    """n labelled CCP photos outside the validation split, spread evenly over the ids."""
    from closetai.training.data.ccp import CCPDataset

    val = {Path(f).stem for f in val_files}
    rest = [i for i in CCPDataset(ccp).ids if i not in val]
    return [f"{i}.jpg" for i in rest[::max(1, len(rest) // n)][:n]]


def training_predictor(model: str):
    """The model's Predictor on CPU and its recorded validation files, or None (with a message on stderr)
    when it records none: then training photos cannot be told apart (fit_match_scale.py shares this)."""
    from closetai.vision.predict import Predictor

    predictor = Predictor(model, device="cpu")
    val_files = predictor.meta.get("trained", {}).get("val_files")
    if not val_files:
        print("closetai: the model records no validation split; cannot tell training photos apart", file=sys.stderr)
        return None
    return predictor, val_files


def collect(predictor, ccp: Path, files: list[str], copies: int, seed: int) -> dict:
    parts: dict = {"appearance": [], "classes": [], "colours": [], "keys": [], "labels": [], "original": []}
    for rgb, masks, keys, labels, is_original in ccp_views(ccp, files, copies, seed):
        a, c, h = predictor.embed_regions(rgb, np.array([box_of(m) for m in masks]), np.stack(masks), parts=True)
        parts["appearance"].append(a)
        parts["classes"].append(c)
        parts["colours"].append(h)
        parts["keys"] += keys
        parts["labels"] += labels
        parts["original"] += [is_original] * len(keys)
    out = {k: np.concatenate(parts[k]) for k in ("appearance", "classes", "colours")}
    return out | {k: np.array(parts[k]) for k in ("keys", "labels", "original")}


def subset(d: dict, keep: np.ndarray) -> dict:
    return {k: v[keep] for k, v in d.items()}


def scores(d: dict, mean: np.ndarray, projection: np.ndarray, class_weight: float) -> tuple[float, float]:
    w = Whitening(mean, projection, class_weight, COLOUR_WEIGHT, "", {})
    v = combine(w.apply(d["appearance"]), d["classes"], d["colours"], class_weight, COLOUR_WEIGHT)
    orig = d["original"]
    return map_at_k(v, list(d["keys"])), precision_at_k(v[orig], list(d["labels"][orig]))[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "closetai-ccp15.pt"))
    ap.add_argument("--ccp", default=str(REPO.parent / "shared" / "data" / "ccp"))
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="default: next to the model (models/<name>.embed.npz)")
    a = ap.parse_args(argv)

    from closetai import sha256_file

    started = time.perf_counter()
    loaded = training_predictor(a.model)
    if loaded is None:
        return 2
    predictor, val_files = loaded
    files = training_photos(Path(a.ccp), val_files, a.photos)
    d = collect(predictor, Path(a.ccp), files, a.copies, a.seed)
    photo = np.array([k.split("/")[0] for k in d["keys"]])
    half_a = np.isin(photo, sorted(set(photo))[::2])
    halves = [(subset(d, half_a), subset(d, ~half_a)), (subset(d, ~half_a), subset(d, half_a))]
    fits = [fit_whitening(fit["appearance"], list(fit["keys"]), list(fit["labels"])) for fit, _ in halves]
    print(f"{len(files)} training photos, {len(d['keys'])} views ({a.copies} augmented copies per garment)")
    print(f"{'class weight':>12}  {'half B (fit on A)':>22}  {'half A (fit on B)':>22}   (instance mAP@10 / same-class P@10)")
    chosen, table = CLASS_WEIGHTS[0], {}
    for cw in CLASS_WEIGHTS:
        figures = [scores(test, mean, proj, cw) for (_fit, test), (mean, proj) in zip(halves, fits, strict=True)]
        table[cw] = figures
        print(f"{cw:>12.1f}  " + "  ".join(f"{m:>10.3f} / {p:.3f}" for m, p in figures))
        if min(m for m, _p in figures) >= MIN_INSTANCE_MAP:
            chosen = cw
    mean, projection = fit_whitening(d["appearance"], list(d["keys"]), list(d["labels"]))
    out = Path(a.out) if a.out else whitening_path(a.model)
    info = {"photos": len(files), "views": len(d["keys"]), "copies": a.copies, "seed": a.seed, "date": str(date.today()),
            "halves": {str(k): v for k, v in table.items()}, "command": "python scripts/fit_embedding.py"}
    Whitening(mean, projection, chosen, COLOUR_WEIGHT, sha256_file(a.model), info).save(out)
    print(f"class weight {chosen} (largest with instance mAP@10 >= {MIN_INSTANCE_MAP} on both halves); "
          f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
