"""Fit the similar-items match scale (closetai.insights.similar.MatchScale) for a model file, on CCP training photos.

    python scripts/fit_match_scale.py [--model models/closetai-ccp15.pt] [--ccp ../shared/data/ccp]
                                      [--photos 150] [--seed 2]

Writes models/<model>.match.json (~30 kB), which the web app loads next to the model: per class, the
look cosines (closetai.vision.embed.look_parts) of pairs of different garments of that class from
different photos, at each percentile. Garments are cut out with their annotated masks. The photos are
outside the model's validation split (bench/eval_similar.py reports there) and are not the ones the
whitening was fitted on (scripts/fit_embedding.py takes every n-th training photo; this takes the ones
half-way between), so the scale is not fitted on vectors the whitening has already pulled together.
It also prints, as a check on these same training photos, where an augmented copy of a garment lands
on the scale (it should be near the top). Refit whenever the model or its whitening changes: the file
records the model's sha256 and embedding name, and the app ignores a file fitted on others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

from fit_embedding import collect, training_predictor  # noqa: E402

from closetai.insights.similar import MatchScale, match_scale_path  # noqa: E402
from closetai.vision.embed import COLOUR_WEIGHT, look_parts  # noqa: E402


def scale_photos(ccp: Path, val_files: list[str], n: int) -> list[str]:
    """n labelled training photos half-way between the ones fit_embedding.training_photos takes."""
    from closetai.training.data.ccp import CCPDataset

    val = {Path(f).stem for f in val_files}
    rest = [i for i in CCPDataset(ccp).ids if i not in val]
    step = max(2, len(rest) // n)
    return [f"{i}.jpg" for i in rest[step // 2::step][:n]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "closetai-ccp15.pt"))
    ap.add_argument("--ccp", default=str(REPO.parent / "shared" / "data" / "ccp"))
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", help="default: next to the model (models/<name>.match.json)")
    a = ap.parse_args(argv)

    from closetai import sha256_file

    started = time.perf_counter()
    loaded = training_predictor(a.model)
    if loaded is None:
        return 2
    predictor, val_files = loaded
    files = scale_photos(Path(a.ccp), val_files, a.photos)
    d = collect(predictor, Path(a.ccp), files, copies=1, seed=a.seed)
    colour_weight = predictor.whitening.colour_weight if predictor.whitening is not None else COLOUR_WEIGHT
    num_classes = len(predictor.class_names)
    vectors = predictor.vectors_from_parts(d["appearance"], d["classes"], d["colours"])
    meta = {"num_classes": num_classes, "colour_weight": colour_weight, "model_sha256": sha256_file(a.model),
            "embedding": predictor.info["embedding"]}
    orig = d["original"]
    photos = [k.split("/")[0] for k in d["keys"]]
    looks = look_parts(vectors, num_classes, colour_weight)
    scale = MatchScale.fit(looks[orig], list(d["labels"][orig]), list(d["keys"][orig]),
                           list(np.array(photos)[orig]), **meta)
    # Check on these training photos: each augmented copy against its original.
    first = {k: i for i, (k, o) in enumerate(zip(d["keys"], orig, strict=True)) if o}
    copy_pct = [float(scale.percent(d["labels"][i], [looks[i] @ looks[first[k]]])[0])
                for i, (k, o) in enumerate(zip(d["keys"], orig, strict=True)) if not o and k in first]
    scale.info = {"photos": len(files), "garments": int(orig.sum()), "seed": a.seed, "date": str(date.today()),
                  "classes_with_own_scale": sorted(scale.quantiles),
                  "augmented_copy_percent_median": round(float(np.median(copy_pct)), 1),
                  "command": "python scripts/fit_match_scale.py"}
    out = Path(a.out) if a.out else match_scale_path(a.model)
    out.write_text(json.dumps(scale.to_json(), separators=(",", ":")) + "\n")
    print(f"{len(files)} training photos, {int(orig.sum())} garments; own scale for {len(scale.quantiles)} classes "
          f"({', '.join(sorted(scale.quantiles))}), the rest use all classes'")
    print("look cosine of different garments, per class: 10th / 50th / 90th percentile")
    for label, q in sorted(scale.quantiles.items()):
        print(f"  {label:<12} {q[10]:.3f} / {q[50]:.3f} / {q[90]:.3f}")
    print(f"an augmented copy of a garment (same training photos): median {np.median(copy_pct):.1f} %, "
          f"10th percentile {np.percentile(copy_pct, 10):.1f} % on the scale")
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
