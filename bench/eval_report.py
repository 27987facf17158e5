"""Does the trend report tell the truth? Raw vs corrected shares on held-out tagged CCP photos (issue 17.1).

The correction's rates come from the "calibration" split (closetai.data.tags; `closetai calibrate-report`
writes them beside the model). This scores on the "report-eval" split, which nothing fits on: each
photo's tagged classes are the truth; the report's raw share of a class is the share of photos where
the detector found it (best score >= the model's threshold, as the web app stores detections); the
corrected share is the report's estimate (adjusted classify-and-count with its bootstrap interval), and
probabilistic counting (PCC) is printed beside it for comparison.

  python bench/eval_report.py [--model models/closetai-ccp15.pt] [--data ../shared/data/ccp]
                              [--scores report-eval.scores.json]

--scores: the report-eval photos' best scores, as `closetai calibrate-report MODEL DATA --split
report-eval --out FILE` writes them (inference is the slow part; without it this runs it here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from closetai.quantify import Rates, estimate_shares, load_rates, probabilistic_count, rates_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "closetai-ccp15.pt"))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ccp"))
    p.add_argument("--scores", help="report-eval scores file (default: run the model here)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    rates = load_rates(a.model)
    if rates is None:
        print(f"no current rates beside {a.model}: run `closetai calibrate-report {a.model} {a.data}` first",
              file=sys.stderr)
        return 2
    if a.scores:
        held = Rates.from_json(json.loads(Path(a.scores).read_text()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scores.json"
            subprocess.run([sys.executable, "-m", "closetai", "calibrate-report", a.model, a.data,
                            "--split", "report-eval", "--out", str(out), "--quiet"], check=True, cwd=ROOT)
            held = Rates.from_json(json.loads(out.read_text()))
    if held.info.get("split") != "report-eval":
        print(f"{a.scores}: not report-eval photos (split {held.info.get('split')!r})", file=sys.stderr)
        return 2
    if held.model_sha256 != rates.model_sha256:
        print("the report-eval scores come from another model file than the rates", file=sys.stderr)
        return 2
    overlap = set(held.photo_ids) & set(rates.photo_ids)
    if overlap:
        print(f"{len(overlap)} photos are in both the calibration and the evaluation set", file=sys.stderr)
        return 2
    classes = rates.classes
    held_idx = [held.classes.index(c) for c in classes]
    truth = held.truth[:, held_idx].mean(axis=0)
    found = held.found(rates.threshold)[:, held_idx]
    sets, counts = np.unique(found, axis=0, return_counts=True)
    est = estimate_shares(sets, counts, rates, seed=a.seed)
    pcc = probabilistic_count(rates.scores, rates.truth, held.scores[:, held_idx])
    inside = (est.low <= truth) & (truth <= est.high)

    print(f"report-eval: {len(held.truth)} tagged CCP photos; rates from {len(rates.truth)} calibration photos "
          f"({rates_path(a.model).name}), threshold {rates.threshold}")
    print(f"{'class':<12} {'truth':>6} {'raw':>6} {'ACC':>6} {'95% interval':>14} {'PCC':>6}  inside")
    for i, c in enumerate(classes):
        print(f"{c:<12} {truth[i]:6.1%} {est.raw[i]:6.1%} {est.share[i]:6.1%} "
              f"{f'{est.low[i]:.1%}-{est.high[i]:.1%}':>14} {pcc[i]:6.1%}  {'yes' if inside[i] else 'NO'}")
    mae = {name: float(np.abs(v - truth).mean()) for name, v in (("raw", est.raw), ("ACC", est.share), ("PCC", pcc))}
    print("mean absolute error (percentage points): "
          + ", ".join(f"{k} {v * 100:.2f}" for k, v in mae.items()))
    print("Spearman of the popularity order vs truth: "
          + ", ".join(f"{k} {spearman(v, truth):.3f}" for k, v in (("raw", est.raw), ("ACC", est.share), ("PCC", pcc))))
    print(f"truth inside the 95 % interval: {int(inside.sum())} of {len(classes)} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
