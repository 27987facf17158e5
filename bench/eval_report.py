"""Does the trend report tell the truth? Raw vs corrected shares on held-out tagged CCP photos (issue 17.1).

The correction's rates come from the "calibration" split (closetai.training.data.tags; `closetai calibrate-report`
writes them beside the model). This scores on the "report-eval" split, which nothing fits on: each
photo's tagged classes are the truth; the report's raw share of a class is the share of photos where
the detector found it (best score >= the model's threshold, as the web app stores detections); the
report's estimate is probabilistic counting on the stored detections' score bins with its bootstrap
interval (closetai.insights.quantify.pcc_from_bins), printed beside adjusted classify-and-count (ACC, what the
report's comparisons use), probabilistic counting with every score, and EM prior adjustment.

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

from closetai.insights.quantify import (  # noqa: E402
    Rates,
    bins_of_scores,
    estimate_shares,
    load_rates,
    outfit_shares,
    pcc_from_bins,
    probabilistic_count,
    rates_path,
    score_bin,
    score_edges,
)

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
    p.add_argument("--select", action="store_true",
                   help="instead: outfits on the calibration photos' two halves (what the page's choices were made on)")
    a = p.parse_args()

    rates = load_rates(a.model)
    if rates is not None and a.select:
        # Decide on the calibration photos alone: rates from one half, scored on the other, both ways.
        half = np.arange(len(rates.truth)) % 2 == 0
        for fit, test in ((half, ~half), (~half, half)):
            sub = Rates(rates.classes, rates.truth[fit], rates.scores[fit], rates.threshold)
            print_outfits(rates.truth[test], rates.scores[test], sub, a.seed)
        return 0
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
    # The report's estimate (closetai.insights.report): probabilistic counting on the stored detections' score
    # bins, with its bootstrap interval; and the same with EM prior adjustment.
    bins = bins_of_scores(held.scores[:, held_idx], rates.threshold)
    report = pcc_from_bins(bins, len(held.truth), rates, seed=a.seed)
    em = pcc_from_bins(bins, len(held.truth), rates, seed=a.seed, em=True)
    inside = {name: (e.low <= truth) & (truth <= e.high) for name, e in (("ACC", est), ("report", report), ("EM", em))}

    print(f"report-eval: {len(held.truth)} tagged CCP photos; rates from {len(rates.truth)} calibration photos "
          f"({rates_path(a.model).name}), threshold {rates.threshold}")
    print("raw: share of photos where the class was found; report: probabilistic counting on the stored "
          "detections' score bins (what /report shows), its 95 % interval; ACC: adjusted classify-and-count; "
          "PCC-all: probabilistic counting with every score (also those never stored); EM: report + EM prior "
          "adjustment")
    print(f"{'class':<11} {'truth':>6} {'raw':>6} {'report':>6} {'interval':>13} {'ACC':>6} {'interval':>13} "
          f"{'PCC-all':>7} {'EM':>6}")
    for i, c in enumerate(classes):
        print(f"{c:<11} {truth[i]:6.1%} {est.raw[i]:6.1%} {report.share[i]:6.1%} "
              f"{f'{report.low[i]:.1%}-{report.high[i]:.1%}':>13} {est.share[i]:6.1%} "
              f"{f'{est.low[i]:.1%}-{est.high[i]:.1%}':>13} {pcc[i]:7.1%} {em.share[i]:6.1%}")
    has = np.isfinite(est.share)  # ACC gives no estimate for a class the detector cannot tell apart
    methods = (("raw", est.raw), ("report", report.share), ("ACC", est.share), ("PCC-all", pcc),
               ("EM", em.share))
    print(f"mean absolute error (percentage points), all {len(classes)} classes: "
          + ", ".join(f"{k} {np.abs(v - truth).mean() * 100:.2f}" for k, v in methods if k != "ACC")
          + f"; ACC has no estimate for {int((~has).sum())} ({', '.join(np.array(classes)[~has])})")
    print(f"mean absolute error (percentage points), the {int(has.sum())} classes ACC estimates: "
          + ", ".join(f"{k} {np.abs(v[has] - truth[has]).mean() * 100:.2f}" for k, v in methods))
    print(f"Spearman of the popularity order vs truth, all {len(classes)} classes: "
          + ", ".join(f"{k} {spearman(v, truth):.3f}" for k, v in methods if k != "ACC")
          + f"; over the {int(has.sum())} ACC estimates: "
          + ", ".join(f"{k} {spearman(v[has], truth[has]):.3f}" for k, v in methods))
    print(f"truth inside the 95 % interval (of {len(classes)} classes; no estimate counts as outside): "
          + ", ".join(f"{k} {int(v.sum())}" for k, v in inside.items()))
    print_outfits(held.truth[:, held_idx], held.scores[:, held_idx], rates, a.seed)
    return 0


def print_outfits(truth: np.ndarray, scores: np.ndarray, rates: Rates, seed: int, top: int = 10) -> None:
    """Outfits (issue 21): the exact sets of clothing classes of a photo (closetai.insights.report.OUTFIT_CLASSES;
    CCP photos show one person, so a photo's tags are that person's outfit). The outfits scored are the `top` sets found most often, as the
    outfits page lists them."""
    from closetai.insights.report import OUTFIT_CLASSES

    keep = [i for i, c in enumerate(rates.classes) if c in OUTFIT_CLASSES]
    truth, scores = truth[:, keep], scores[:, keep]
    rates = Rates(tuple(rates.classes[i] for i in keep), rates.truth[:, keep], rates.scores[:, keep], rates.threshold)
    edges = score_edges(rates.threshold)
    est = outfit_shares(score_bin(scores, edges), rates, top=top, seed=seed)
    true_share = np.array([(truth == o).all(axis=1).mean() for o in est.outfits])
    inside = (est.low <= true_share) & (true_share <= est.high)
    print(f"\noutfits: the {len(est.outfits)} class sets found most often in the {est.n} photos, exactly "
          "(raw: photos whose found classes are the set; estimate: probabilistic counting of the set)")
    print(f"{'outfit':<44} {'truth':>6} {'raw':>6} {'estimate':>8} {'interval':>13}")
    for o, t, r, e, lo, hi in zip(est.outfits, true_share, est.raw, est.share, est.low, est.high, strict=True):
        name = " + ".join(np.array(rates.classes)[o]) or "(nothing)"
        print(f"{name[:44]:<44} {t:6.1%} {r:6.1%} {e:8.1%} {f'{lo:.1%}-{hi:.1%}':>13}")
    print(f"outfits, mean absolute error (percentage points): raw {np.abs(est.raw - true_share).mean() * 100:.2f}, "
          f"estimate {np.abs(est.share - true_share).mean() * 100:.2f}; truth inside the interval: "
          f"{int(inside.sum())} of {len(inside)}")


if __name__ == "__main__":
    raise SystemExit(main())
